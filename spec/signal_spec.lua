-- aio.signal and aio.on_signal: signals sent to ourselves.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- Our pid, from /proc (the first field of /proc/self/stat).
local function getpid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return math.tointeger(pid)
end

local pid = getpid()

local function kill(sig)
  assert(os.execute(("kill -%s %d"):format(sig, pid)))
end

describe("aio.signal", function()
  it("wait returns the next delivery", function()
    run(function()
      local s <close> = aio.signal("SIGUSR1")
      local t = aio.spawn(function() return s:wait() end)
      aio.sleep(0)
      kill("USR1")
      assert.equal("SIGUSR1", t:await())
    end)
  end)

  it("counts deliveries nobody waits for: none is lost", function()
    run(function()
      local s <close> = aio.signal("USR2")
      for _ = 1, 3 do
        kill("USR2")
        -- one delivery at a time: the kernel merges a signal sent while
        -- the same one is still pending
        while not tostring(s):find(_ .. " pending") do aio.sleep(0.001) end
      end
      assert.equal("SIGUSR2", s:wait())
      assert.equal("SIGUSR2", s:wait())
      assert.equal("SIGUSR2", s:wait())
      assert.matches("0 pending", tostring(s))
    end)
  end)

  it("wakes one waiter per delivery, in order", function()
    run(function()
      local s <close> = aio.signal("SIGHUP")
      local order = {}
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = aio.spawn(function()
          s:wait()
          order[#order + 1] = i
        end)
      end
      aio.sleep(0)
      for i = 1, 3 do
        kill("HUP")
        tasks[i]:await()
      end
      assert.same({1, 2, 3}, order)
    end)
  end)

  it("a cancelled waiter leaves the delivery for the next one", function()
    run(function()
      local s <close> = aio.signal("SIGUSR1")
      for _ = 1, 10 do
        local t = aio.spawn(function() return s:wait() end)
        aio.sleep(0)
        kill("USR1")
        t:cancel()
        local ok, e = pcall(t.await, t)
        if not ok then
          assert.is_true(aio.is_error(e, "CancelledError"))
          assert.equal("SIGUSR1", s:wait())
        end
      end
    end)
  end)

  it("close wakes waiters with an error; a closed object raises", function()
    run(function()
      local s = aio.signal("SIGUSR1")
      local t = aio.spawn(function() return s:wait() end)
      aio.sleep(0)
      s:close()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.matches("closed", tostring(e))
      assert.has_error(function() s:wait() end,
                       "attempt to use a closed signal")
      s:close()
      for _ = 1, 10 do aio.signal("SIGUSR2") end -- left to __gc
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("raises on unknown or uncatchable signals", function()
    run(function()
      assert.has_error(function() aio.signal("SIGNOPE") end)
      assert.has_error(function() aio.signal() end)
      assert.has_error(function() aio.on_signal("SIGUSR1") end)
    end)
  end)
end)

describe("aio.on_signal", function()
  it("runs the handler in a new task per delivery", function()
    run(function()
      local got = {}
      local done = aio.event()
      local h = aio.on_signal("SIGUSR2", function(name)
        assert.is_not_nil(aio.current_task())
        aio.sleep(0) -- a handler may wait
        got[#got + 1] = name
        if #got == 2 then done:set() end
      end)
      kill("USR2")
      while #got < 1 do aio.sleep(0.001) end
      kill("USR2")
      -- A handle of on_signal does not keep the loop alive, so wait with
      -- something that does (done:wait() alone would be a deadlock).
      while not done:is_set() do aio.sleep(0.001) end
      assert.same({"SIGUSR2", "SIGUSR2"}, got)
      h:close()
      assert.has_error(function() h:wait() end)
    end)
  end)

  it("watching a signal does not keep the loop alive", function()
    local luaio = os.getenv("LUAIO")
    if not luaio then return end
    local p = assert(io.popen(luaio .. [[ -e '
      local aio = require "luaio"
      local s = aio.signal("SIGUSR1")
      aio.on_signal("SIGHUP", print)
      aio.spawn(function() aio.sleep(0.01) end)
      print("started")' 2>&1; echo "status $?"]]))
    local out = p:read("a")
    p:close()
    assert.matches("started", out)
    assert.matches("status 0", out)
  end)

  it("the luaio command leaves a watched SIGINT to the script, and takes "
     .. "it back once it is closed (issue 12, item 2)", function()
    local luaio = os.getenv("LUAIO")
    if not luaio then return end
    local p = assert(io.popen(luaio .. [[ -e '
      local aio = require "luaio"
      local s = aio.signal("SIGINT")
      local f = io.open("/proc/self/stat"); local pid = f:read("n"); f:close()
      local t = aio.spawn(function() return s:wait() end)
      aio.sleep(0)
      -- popen, not os.execute: system() ignores SIGINT while it waits
      io.popen("kill -INT " .. math.tointeger(pid)):close()
      print("got", t:await())
      s:close()
      io.popen("kill -INT " .. math.tointeger(pid)):close()
      aio.sleep(30)
      print("not interrupted")' 2>&1; echo "status $?"]]))
    local out = p:read("a")
    p:close()
    -- the first SIGINT is the script's alone; the second, once it closed
    -- its watcher, cancels the main task as the command does by default
    assert.matches("got\tSIGINT\n", out)
    assert.is_nil(out:find("not interrupted"))
    assert.matches("status 130", out)
  end)
end)
