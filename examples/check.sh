#!/bin/sh
# examples/check.sh NAME COMMAND...: run an embedding example and check
# what it prints.
set -eu
name=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; cat "$tmp/out"; exit 1; }
case $name in
game)
  "$@" > "$tmp/out" 2>&1 || fail "exit status $?"
  # Every scripted event happens, in a frame order that makes sense.
  for line in "hero moves to x=10" "hero moves to x=40" \
      "loaded hero.png (8192 bytes)" \
      "load failed: no such asset: missing.png" \
      "spark 1 fades" "spark 3 fades" "no task left"; do
    grep -q "$line" "$tmp/out" || fail "missing: $line"
  done
  frame() { grep "$1" "$tmp/out" | sed 's/^frame *\([0-9]*\):.*/\1/'; }
  [ "$(frame 'loaded hero.png')" -ge 3 ] || fail "asset loaded too early"
  [ "$(frame 'load failed')" -gt "$(frame 'loaded hero.png')" ] ||
    fail "the failed load settled before the first"
  [ "$(frame 'spark 3')" -ge "$(frame 'spark 1')" ] || fail "sparks order"
  ;;
tool)
  printf 'hello, luaio\n' > "$tmp/data"
  cat > "$tmp/script.lua" <<LUA
local aio = require "luaio"
local ticks = 0
local ticker = aio.spawn(function()
  while true do aio.sleep(0) ticks = ticks + 1 end
end)
-- Adler-32 in Lua, to compare with the C one.
local f = assert(io.open("$tmp/data", "rb")); local s = f:read("a"); f:close()
local a, b = 1, 0
for i = 1, #s do a = (a + s:byte(i)) % 65521; b = (b + a) % 65521 end
local want = string.format("%08x", (b << 16) | a)
local got = checksum("$tmp/data"):await()
print("checksum", got, got == want and "matches" or "DIFFERS")
local ok, err = pcall(function() return checksum("$tmp/none"):await() end)
print("missing", ok, err)
ticker:cancel()
LUA
  "$@" "$tmp/script.lua" > "$tmp/out" 2>&1 || fail "exit status $?"
  grep -q "^checksum	[0-9a-f]\{8\}	matches$" "$tmp/out" || fail checksum
  grep -q "^missing	false	cannot read $tmp/none$" "$tmp/out" || fail missing
  ;;
esac
cat "$tmp/out"
