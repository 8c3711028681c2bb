-- luaio.patterns.shutdown: hooks, the grace, cancellation, a second
-- signal; through sd:trigger() and through real signals sent to
-- ourselves (SIGUSR1 and SIGUSR2, which the luaio command leaves alone).
-- The SIGINT/SIGTERM path of a whole script is in scripts_spec.lua.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled
local until_ = S.wait_until

local function kill(sig)
  assert(os.execute(("kill -%s %d"):format(sig, aio.getpid())))
end

local function quiet() end -- on_error that keeps the output clean

describe("shutdown", function()
  it("runs the hooks, lets the work finish, and reports 'graceful'",
     function()
    run(function()
      local sd <close> = P.shutdown{signals = {}, grace = 10}
      local log = {}
      sd:on_shutdown(function(name) log[#log + 1] = "hook1 " .. name end)
      sd:on_shutdown(function()
        aio.sleep(0.001) -- a hook may wait
        log[#log + 1] = "hook2"
      end)
      local stop = aio.event()
      sd:on_shutdown(function() stop:set() end)
      local worker = sd:spawn(function()
        stop:wait()
        aio.sleep(0.005) -- finishing what it was doing
        log[#log + 1] = "worker done"
      end)
      local status, reason = sd:run(function()
        aio.sleep(0)
        assert.is_false(sd:stopping())
        sd:trigger()
        assert.is_true(sd:stopping())
      end)
      assert.equal(0, status)
      assert.equal("graceful", reason)
      assert.same({"hook1 trigger", "hook2", "worker done"}, log)
      assert.is_false(worker:cancelled())
      assert.same({0, "graceful"}, {sd:status()})
      assert.same({0, "graceful"}, {sd:wait()})
    end)
  end)

  it("run returns 'done' when the work ends without a shutdown", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}}
      local ran = false
      sd:on_shutdown(function() ran = true end)
      local other = sd:spawn(aio.sleep, 0.005)
      assert.same({0, "done"}, {sd:run(aio.sleep, 0.001)})
      assert.is_true(other:done()) -- run waited for all the work
      assert.is_false(ran)
      assert.is_nil(sd:status())
    end)
  end)

  it("cancels the work when the grace runs out: 'timeout', 124", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}, grace = 0.02}
      local cleaned = false
      local t0
      local status, reason = sd:run(function()
        sd:spawn(function()
          local ok = pcall(aio.sleep, math.huge) -- never finishes by itself
          cleaned = not ok
        end)
        t0 = aio.time()
        sd:trigger()
        aio.sleep(math.huge)
      end)
      assert.equal(124, status)
      assert.equal("timeout", reason)
      assert.is_true(cleaned)
      assert.is_true(aio.time() - t0 >= 0.02)
    end)
  end)

  it("a second trigger cancels at once: 'forced'", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}, grace = 1000}
      local work = sd:spawn(aio.sleep, math.huge)
      sd:trigger()
      aio.sleep(0)
      assert.is_false(work:done())
      sd:trigger()
      assert.same({1, "forced"}, {sd:wait()})
      assert_cancelled(work)
      sd:trigger() -- after the end: nothing more happens
    end)
  end)

  it("a second trigger cuts a hook that hangs, and names the signal",
     function()
    run(function()
      local sd <close> = P.shutdown{signals = {}, grace = 1000}
      local hook_cancelled = false
      sd:on_shutdown(function()
        local ok = pcall(aio.sleep, math.huge)
        hook_cancelled = not ok
      end)
      local work = sd:spawn(aio.sleep, math.huge)
      sd:trigger("SIGTERM")
      aio.sleep(0)
      sd:trigger("SIGTERM")
      assert.same({143, "forced"}, {sd:wait()})
      assert.is_true(hook_cancelled)
      assert_cancelled(work)
    end)
  end)

  it("a hook that fails is reported and the next one runs", function()
    run(function()
      local errors = {}
      local sd <close> = P.shutdown{signals = {}, on_error = function(e)
        errors[#errors + 1] = e
      end}
      local second = false
      sd:on_shutdown(function() error("hook broke", 0) end)
      sd:on_shutdown(function() second = true end)
      sd:trigger()
      assert.same({0, "graceful"}, {sd:wait()})
      assert.same({"hook broke"}, errors)
      assert.is_true(second)
    end)
  end)

  it("a signal starts the shutdown and a second one forces it", function()
    run(function()
      local sd <close> = P.shutdown{signals = {"SIGUSR1", "USR2"},
                                    grace = 1000}
      local names = {}
      sd:on_shutdown(function(name) names[#names + 1] = name end)
      local work = sd:spawn(aio.sleep, math.huge)
      aio.sleep(0)
      kill("USR2")
      until_(function() return #names == 1 end) -- the hooks ran
      assert.same({"SIGUSR2"}, names)
      assert.is_false(work:done())
      kill("USR1")
      assert.same({138, "forced"}, {sd:wait()}) -- 128 + SIGUSR1
      assert_cancelled(work)
    end)
  end)

  it("a signal with no work left ends the wait at once", function()
    run(function()
      local sd <close> = P.shutdown{signals = {"SIGUSR1"}}
      local waiter = aio.spawn(function() return sd:wait() end)
      aio.sleep(0)
      kill("USR1")
      assert.equal(0, waiter:await())
      assert.equal("graceful", select(2, sd:status()))
    end)
  end)

  it("run raises the error of its function, after the rest", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}}
      local other = sd:spawn(aio.sleep, 0.005)
      local ok, e = pcall(sd.run, sd, function() error("main failed", 0) end)
      assert.is_false(ok)
      assert.equal("main failed", e)
      assert.is_true(other:done())
    end)
  end)

  it("a cancelled run cancels the work and waits for it", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}}
      local cleaned = false
      local runner = aio.spawn(function()
        return sd:run(function()
          local ok = pcall(aio.sleep, math.huge)
          aio.shield(aio.sleep, 0.001) -- cleanup that waits
          cleaned = not ok
        end)
      end)
      aio.sleep(0)
      runner:cancel()
      assert_cancelled(runner)
      assert.is_true(cleaned)
    end)
  end)

  it("tracks tasks spawned elsewhere", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}, grace = 0.01}
      local t = aio.spawn(aio.sleep, math.huge)
      assert.equal(t, sd:track(t))
      sd:track(t) -- twice: once
      sd:trigger()
      assert.same({124, "timeout"}, {sd:wait()})
      assert_cancelled(t)
    end)
  end)

  it("close stops the signals, cancels the work, and then raises",
     function()
    run(function()
      local sd = P.shutdown{signals = {"SIGUSR1"}, on_error = quiet}
      local work = sd:spawn(aio.sleep, math.huge)
      aio.sleep(0)
      sd:close()
      assert_cancelled(work)
      assert.matches("<shutdown closed", tostring(sd))
      assert.has_error(function() sd:trigger() end)
      assert.has_error(function() sd:on_shutdown(print) end)
      sd:close() -- harmless
    end)
  end)

  it("close during a shutdown ends it", function()
    run(function()
      local sd = P.shutdown{signals = {}, grace = 1000}
      sd:on_shutdown(function() aio.sleep(math.huge) end)
      sd:trigger()
      local waiter = aio.spawn(function() return sd:wait() end)
      aio.sleep(0)
      sd:close()
      assert.equal(1, waiter:await())
    end)
  end)

  it("refuses hooks once started and work once over", function()
    run(function()
      local sd <close> = P.shutdown{signals = {}}
      sd:trigger()
      local ok, e = pcall(sd.on_shutdown, sd, print)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
      sd:wait()
      ok, e = pcall(sd.spawn, sd, print)
      assert.is_false(ok)
      assert.matches("shutdown is over", tostring(e))
    end)
  end)

  it("checks its options", function()
    run(function()
      assert.has_error(function() P.shutdown{signal = {}} end,
        "bad argument #1 to 'luaio.patterns.shutdown' " ..
        "(unknown option 'signal')")
      assert.has_error(function() P.shutdown{signals = {"SIGNOPE"}} end)
      assert.has_error(function() P.shutdown{signals = "SIGINT"} end)
      assert.has_error(function() P.shutdown{grace = -1} end)
      local sd <close> = P.shutdown{signals = {}}
      assert.has_error(function() sd:on_shutdown() end)
      assert.has_error(function() sd.trigger({}) end,
        "bad argument #1 to 'shutdown:trigger' (luaio.Shutdown expected)")
    end)
  end)
end)
