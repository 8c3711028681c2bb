-- The luaio command: options, exit status, error reports, signals.
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local function tmpfile(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

-- Run a shell command line; its output (stdout and stderr) and status.
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"status=$?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return out:gsub("status=%d+%s*$", ""), status
end

local function luaio(args) return sh(LUAIO .. " " .. args) end

describe("the luaio command", function()
  it("os.exit(code, true) closes the main chunk's and the tasks' "
     .. "to-be-closed variables, as lua5.4 closes its main chunk's "
     .. "(issue 12, item 4)", function()
    local s = tmpfile([[
      local aio = require "luaio"
      local a <close> = setmetatable({}, {__close = function()
        print("main chunk closed") end})
      aio.spawn(function()
        local b <close> = setmetatable({}, {__close = function()
          print("task closed") end})
        aio.sleep(10)
      end)
      aio.sleep(0)
      os.exit(3, true)
    ]])
    local out, status = luaio(s)
    os.remove(s)
    assert.equal(3, status)
    assert.equal("main chunk closed\ntask closed\n", out)
  end)

  it("runs a script whose top level waits, with arg as lua sets it", function()
    local s = tmpfile([[
      local aio = require "luaio"
      aio.sleep(0.01)
      print(arg[0] ~= nil, arg[1], arg[2], select("#", ...), ...)
      local t = aio.spawn(function() return "from a task" end)
      print(t:await())
    ]])
    local out, status = luaio(s .. " one two")
    os.remove(s)
    assert.equal(0, status)
    assert.equal("true\tone\ttwo\t2\tone\ttwo\nfrom a task\n", out)
  end)

  it("exits 1 with the error and its traceback when the script fails",
     function()
    local s = tmpfile([[
      local aio = require "luaio"
      local function inner() aio.sleep(0) error("it broke") end
      local t = aio.spawn(inner)
      t:set_name("worker")
      t:await()
    ]])
    local out, status = luaio(s)
    os.remove(s)
    assert.equal(1, status)
    assert.matches("it broke", out)
    assert.matches("stack traceback", out)
    assert.matches("task 'worker'", out)
    assert.matches("spawned at", out)
  end)

  it("reports an error object that is a table", function()
    local out, status = luaio("-e 'error({})'")
    assert.equal(1, status)
    assert.matches("error object is a table value", out)
    out, status = luaio([[-e 'error(setmetatable({}, {__tostring = function() return "custom!" end}))']])
    assert.equal(1, status)
    assert.matches("custom!", out)
  end)

  it("reports a syntax error and a missing file without crashing", function()
    local s = tmpfile("x = = 1")
    local out, status = luaio(s)
    os.remove(s)
    assert.equal(1, status)
    assert.matches("unexpected symbol", out)
    out, status = luaio("/nonexistent/script.lua")
    assert.equal(1, status)
    assert.matches("cannot open /nonexistent/script.lua", out)
  end)

  it("takes lua5.4's options: -e, -l, -v, -, --", function()
    local out, status = luaio("-e 'x = 40' -e 'print(x + 2)'")
    assert.equal(0, status)
    assert.equal("42\n", out)
    out, status = luaio("-v")
    assert.equal(0, status)
    assert.matches("^luaio %d+%.%d+%.%d+ on Lua 5%.4", out)
    out, status = luaio("-l string -e 'print(type(string.format))'")
    assert.equal("function\n", out)
    out, status = luaio("-l s=string -e 'print(s == string)'")
    assert.equal("true\n", out)
    out, status = sh("echo 'print(aio.sleep(0, \"stdin\"))' | " .. LUAIO .. " -")
    assert.equal(0, status)
    assert.equal("stdin\n", out)
    out, status = luaio("-x")
    assert.equal(1, status)
    assert.matches("unrecognized option '%-x'", out)
  end)

  it("runs everything in a protected call, as lua.c's pmain "
     .. "(issue 12, item 6)", function()
    local out, status = sh("echo 'print(1)' | " .. LUAIO .. " -e 'arg = 1' -")
    assert.equal(1, status)
    assert.not_matches("PANIC", out)
    assert.matches("'arg' is not a table", out)
    out, status = luaio("-e 'package = nil' -l string " ..
      "-e 'print(type(string))'")
    assert.not_matches("PANIC", out)
    assert.equal(0, status)
    assert.equal("table\n", out)
  end)

  it("-l stores what require returned, not package.loaded[name] "
     .. "(issue 12, item 6)", function()
    local out, status = luaio("-e 'package = {loaded = {string = 1}}' " ..
      "-l string -e 'print(type(string))'")
    assert.equal(0, status)
    assert.equal("table\n", out)
  end)

  it("honours -E anywhere among the options (issue 12, item 6)", function()
    local out, status = sh("LUA_PATH='/from/env/?.lua' LUA_INIT='print(1)' "
      .. LUAIO .. " -e 'x = 1' -E -e 'print(package.path)'")
    assert.equal(0, status)
    assert.not_matches("from/env", out)
    assert.not_matches("^1\n", out)
    assert.matches("%?%.lua", out)
  end)

  it("starts its messages with the name it was invoked by "
     .. "(issue 12, item 7)", function()
    local out, status = luaio("-e 'error(\"named\")'")
    assert.equal(1, status)
    assert.equal(1, out:find(LUAIO .. ": (command line):1: named", 1, true))
    out, status = luaio("-x")
    assert.equal(1, status)
    assert.equal(1, out:find(LUAIO .. ": unrecognized option", 1, true))
    assert.truthy(out:find("usage: " .. LUAIO, 1, true))
  end)

  it("runs the generational collector, as lua5.4 does, and a script "
     .. "may switch (issue 12, item 8)", function()
    local out, status = luaio("-e 'print(collectgarbage(\"incremental\"))' "
      .. "-e 'print(collectgarbage(\"generational\"))'")
    assert.equal(0, status)
    assert.equal("generational\nincremental\n", out)
  end)

  it("makes aio a global and waits inside -e", function()
    local out, status = luaio("-e 'print(aio.sleep(0.01, \"waited\"))'")
    assert.equal(0, status)
    assert.equal("waited\n", out)
  end)

  it("reports a task failure nobody retrieved, once", function()
    local out, status = luaio(
      "-e 'aio.spawn(function() error(\"unseen\") end) aio.sleep(0.01)'")
    assert.equal(0, status)
    local _, n = out:gsub("Task exception was never retrieved", "")
    assert.equal(1, n)
    assert.matches("unseen", out)
  end)

  it("cancels the main task on a deadlock instead of hanging", function()
    local out, status = luaio("-e 'aio.event():wait()'")
    assert.equal(1, status)
    assert.matches("deadlock", out)
  end)

  for _, sig in ipairs({{"INT", 130}, {"TERM", 143}}) do
    it("cancels the main task on SIG" .. sig[1] .. " so its cleanup runs",
       function()
      local out_file = os.tmpname()
      local s = tmpfile([[
        local cleanup <close> = setmetatable({}, {__close = function()
          aio.shield(function() aio.sleep(0.01) end)
          print("cleanup ran")
        end})
        io.stdout:write("ready\n") io.stdout:flush()
        aio.sleep(30)
      ]])
      local _, status = sh(string.format(
        "%s %s > %s & pid=$!; " ..
        "for i in $(seq 1 200); do grep -q ready %s && break; sleep 0.05; done; " ..
        "kill -%s $pid; wait $pid", LUAIO, s, out_file, out_file, sig[1]))
      local f = io.open(out_file)
      local out = f:read("a")
      f:close()
      os.remove(out_file)
      os.remove(s)
      assert.equal(sig[2], status)
      assert.matches("cleanup ran", out)
    end)
  end

  it("runs a busted suite as lua does", function()
    local spec = os.tmpname() .. "_spec.lua"
    local f = io.open(spec, "w")
    f:write([[
      describe("inside luaio", function()
        it("has tasks", function()
          assert.equal(3, aio.run(function() return aio.sleep(0, 3) end))
        end)
      end)
    ]])
    f:close()
    local out, status = luaio("$(command -v busted) " .. spec)
    os.remove(spec)
    assert.equal(0, status)
    assert.matches("1 success", out)
  end)
end)
