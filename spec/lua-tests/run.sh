#!/bin/sh
# spec/lua-tests/run.sh INTERPRETER: run a selection of the Lua 5.4.4 test
# suite (the files here) under INTERPRETER in its portable user mode
# (_U=true), as a compatibility check of the luaio command with lua5.4.
# Left out: coroutine.lua (the main chunk is a task, by design:
# docs/command.md), files that need the test C library (api, locals,
# attrib, code) and the long ones (errors, constructs, heavy, big).
set -u
interp=$1
cd "$(dirname "$0")" || exit 2
failed=0
for f in calls closure nextvar strings events vararg goto literals math sort \
    tpack utf8 bitwise pm db gc; do
  if out=$("$interp" -e "_U=true" "$f.lua" 2>&1) &&
      printf '%s\n' "$out" | grep -qi '^ok$'; then
    echo "ok $f.lua"
  else
    echo "FAILED $f.lua:"
    printf '%s\n' "$out" | tail -20
    failed=1
  fi
done
exit $failed
