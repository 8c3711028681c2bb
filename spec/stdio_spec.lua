-- aio.stdin, aio.stdout, aio.stderr: streams over whatever the standard
-- descriptors are (pipe, file, /dev/null), checked by running small
-- scripts under the luaio command.
local aio = require "luaio"
local S = require "support"
local run = S.run

local LUAIO = os.getenv("LUAIO") or "luaio"

-- Write a script to a temporary file; returns its path.
local function script(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write('local aio = require "luaio"\n', code)
  f:close()
  return path
end

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, how, status = p:close()
  return out, status
end

local numbered = script([[
aio.run(function()
  local n = 0
  for line in aio.stdin:lines() do
    n = n + 1
    aio.stdout:write(("%d:%s\n"):format(n, line))
  end
  aio.stderr:write("to stderr\n")
  aio.stdout:write("total " .. n .. "\n")
end)
]])

describe("stdio streams", function()
  teardown(function() os.remove(numbered) end)

  it("are made on first use, not when the module loads", function()
    assert.is_nil(rawget(aio, "stdin"))
    local out = shell(("%q -e %q < /dev/null"):format(LUAIO,
      'local aio = require "luaio"; print(rawget(aio, "stdout") == nil, ' ..
      'tostring(aio.stdout):match("stream (%a+)"), ' ..
      'rawget(aio, "stdout") ~= nil)'))
    assert.equal("true\tpipe\ttrue\n", out)
  end)

  it("read lines from a pipe and write to a pipe", function()
    local out = shell(("printf 'one\\ntwo\\r\\nthree' | %q %q 2>&1"):format(
      LUAIO, numbered))
    assert.equal("1:one\n2:two\n3:three\nto stderr\ntotal 3\n", out)
  end)

  it("read from a file and write to a file", function()
    local input, output = os.tmpname(), os.tmpname()
    local f = assert(io.open(input, "w"))
    for i = 1, 5000 do f:write("line ", i, "\n") end
    f:close()
    local _, status = shell(("%q %q < %q > %q 2>/dev/null"):format(LUAIO,
      numbered, input, output))
    assert.equal(0, status)
    f = assert(io.open(output))
    local text = f:read("a")
    f:close()
    os.remove(input)
    os.remove(output)
    assert.matches("^1:line 1\n2:line 2\n", text)
    assert.matches("\n5000:line 5000\ntotal 5000\n$", text)
  end)

  it("see EOF at once from /dev/null", function()
    local out = shell(("%q %q < /dev/null 2>/dev/null"):format(LUAIO,
                                                                numbered))
    assert.equal("total 0\n", out)
  end)

  it("reading stdin does not stop other tasks", function()
    local waiter = script([[
aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do ticks = ticks + 1; aio.sleep(0.001) end
  end)
  aio.stdout:write("ready\n")
  local line = aio.stdin:read_line()
  ticker:cancel()
  aio.stdout:write(("got %s after %s\n"):format(line,
    ticks >= 10 and "ticks" or "no ticks"))
end)
]])
    run(function()
      local p = assert(aio.subprocess(LUAIO, {waiter},
                                      {stdin = "pipe", stdout = "pipe"}))
      assert.equal("ready", p.stdout:read_line())
      aio.sleep(0.1)
      p.stdin:write("hello\n")
      assert.equal("got hello after ticks", p.stdout:read_line())
      assert.equal(0, p:wait().status)
    end)
    os.remove(waiter)
  end)

  it("a big write to a slow pipe reader arrives whole", function()
    local writer = script([[
aio.run(function()
  local chunk = string.rep("w", 65536)
  for _ = 1, 64 do assert(aio.stdout:write(chunk)) end
  assert(aio.stdout:flush())
end)
]])
    run(function()
      local p = assert(aio.subprocess(LUAIO, {writer}, {stdout = "pipe"}))
      local n = 0
      while true do
        local d = p.stdout:read(1000)
        if not d then break end
        n = n + #d
        aio.sleep(0)
      end
      assert.equal(64 * 65536, n)
      assert.equal(0, p:wait().status)
    end)
    os.remove(writer)
  end)
end)
