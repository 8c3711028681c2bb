-- aio.wait_for.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- Burn the CPU without letting the loop run.
local function busy(s)
  local t0 = aio.time()
  while aio.time() - t0 < s do end
end

describe("aio.wait_for", function()
  it("returns every result when the work finishes in time", function()
    run(function()
      local a, b, c = aio.wait_for(function()
        aio.sleep(0.01)
        return 1, nil, 3
      end, 1)
      assert.are.same({1, nil, 3}, {a, b, c})
      local t = aio.spawn(function() aio.sleep(0.01) return "task" end)
      assert.equal("task", aio.wait_for(t, 1))
    end)
  end)

  it("never times out with s = nil", function()
    run(function()
      assert.equal(5, aio.wait_for(function() aio.sleep(0.02) return 5 end))
      assert.equal(6, aio.wait_for(function() return 6 end, nil))
    end)
  end)

  it("raises the inner error as it is", function()
    run(function()
      local e = {}
      local ok, got = pcall(aio.wait_for, function() error(e) end, 1)
      assert.is_false(ok)
      assert.equal(e, got)
    end)
  end)

  -- test_timeout_basic, for wait_for: the inner work saw CancelledError.
  it("on expiry cancels the work and raises TimeoutError", function()
    run(function()
      local saw
      local t = aio.spawn(function()
        local ok, e = pcall(aio.sleep, 10)
        saw = e
        error(e)
      end)
      local started = aio.time()
      local ok, e = pcall(aio.wait_for, t, 0.05)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.matches("^TimeoutError: ", tostring(e))
      assert.is_true(aio.time() - started >= 0.05)
      assert.is_true(aio.is_error(saw, "CancelledError"))
      assert.is_true(t:cancelled())
    end)
  end)

  -- test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started.
  it("with s <= 0 never starts a function", function()
    run(function()
      local started = false
      for _, s in ipairs({0, -1}) do
        local ok, e = pcall(aio.wait_for, function() started = true end, s)
        assert.is_false(ok)
        assert.is_true(aio.is_error(e, "TimeoutError"))
      end
      aio.sleep(0)
      assert.is_false(started)
    end)
  end)

  it("with s = 0 returns a finished task's results and cancels a pending "
     .. "one", function()
    run(function()
      local d = aio.spawn(function() return "ready" end)
      d:await()
      assert.equal("ready", aio.wait_for(d, 0))
      local p = aio.spawn(function() aio.sleep(1) end)
      local ok, e = pcall(aio.wait_for, p, 0)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(p:cancelled())
    end)
  end)

  -- test_wait_for_waits_for_task_cancellation, bpo-32751: the cleanup
  -- that waits (under a shield) finishes before TimeoutError.
  it("waits for the cancelled work's cleanup before raising", function()
    run(function()
      local cleaned = false
      local ok, e = pcall(aio.wait_for, function()
        local ok, err = pcall(aio.sleep, 10)
        aio.shield(function() aio.sleep(0.03) end)
        cleaned = true
        error(err)
      end, 0.01)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(cleaned)
    end)
  end)

  -- test_wait_for_cancel_suppressed, gh-86296: the work swallowed the
  -- cancellation and returned 42.
  it("returns the results of work that swallowed the cancellation",
     function()
    run(function()
      local r = aio.wait_for(function()
        local ok = pcall(aio.sleep, 10)
        assert(not ok)
        return 42
      end, 0.01)
      assert.equal(42, r)
    end)
  end)

  -- test_foreign_exception_on_timeout: an error raised by the cleanup
  -- replaces the TimeoutError.
  it("raises the cleanup's own error instead of TimeoutError", function()
    run(function()
      local e = {}
      local ok, got = pcall(aio.wait_for, function()
        pcall(aio.sleep, 10)
        error(e)
      end, 0.01)
      assert.is_false(ok)
      assert.equal(e, got)
    end)
  end)

  -- The caller cancelled while it waits for the work: the work is
  -- cancelled and waited for (cleanup included), then the caller's own
  -- CancelledError is raised; the cancel is never swallowed.
  it("on the caller's cancel cancels the work, waits for it, re-raises",
     function()
    run(function()
      local cleaned, inner = false
      local raised
      local w = aio.spawn(function()
        local ok, e = pcall(aio.wait_for, function()
          inner = aio.current_task()
          local ok, err = pcall(aio.sleep, 10)
          aio.shield(function() aio.sleep(0.03) end)
          cleaned = true
          error(err)
        end, 10)
        raised = e
        if not ok then error(e, 0) end
      end)
      aio.sleep(0.01)
      w:cancel()
      assert.is_false(pcall(w.await, w))
      assert.is_true(cleaned)
      assert.is_true(inner:cancelled())
      assert.is_true(aio.is_error(raised, "CancelledError"))
      assert.is_true(w:cancelled())
    end)
  end)

  it("on the caller's cancel without a timeout does the same", function()
    run(function()
      local inner = aio.spawn(function() aio.sleep(10) end)
      local w = aio.spawn(function() return aio.wait_for(inner) end)
      aio.sleep(0.01)
      w:cancel()
      local ok, e = pcall(w.await, w)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(inner:cancelled())
    end)
  end)

  -- The second wait, for the work to finish cancelling, is not interrupted
  -- by the caller's cancellation (it runs shielded); the cancel is then
  -- delivered at the caller's next wait (level-triggered).
  it("is not interrupted while the work finishes cancelling", function()
    run(function()
      local cleaned = false
      local result, after
      local w = aio.spawn(function()
        local ok, e = pcall(aio.wait_for, function()
          local ok, err = pcall(aio.sleep, 10)
          aio.shield(function() aio.sleep(0.05) end)
          cleaned = true
          error(err)
        end, 0.01)
        result = e
        after = select(2, pcall(aio.sleep, 0))
      end)
      aio.sleep(0.03) -- past the deadline, inside the cleanup
      w:cancel()
      pcall(w.await, w)
      assert.is_true(cleaned)
      assert.is_true(aio.is_error(result, "TimeoutError"))
      assert.is_true(aio.is_error(after, "CancelledError"))
    end)
  end)

  it("cancelled twice while the work cleans up still waits for it",
     function()
    run(function()
      local cleaned, raised = false
      local w = aio.spawn(function()
        local ok, e = pcall(aio.wait_for, function()
          local ok, err = pcall(aio.sleep, 10)
          aio.shield(function() aio.sleep(0.05) end)
          cleaned = true
          error(err)
        end, 10)
        raised = e
      end)
      aio.sleep(0.01)
      w:cancel()
      aio.sleep(0.01)
      w:cancel("again")
      pcall(w.await, w)
      assert.is_true(cleaned)
      assert.is_true(aio.is_error(raised, "CancelledError"))
    end)
  end)

  -- test_wait_for_race_condition, bpo-42130, gh-92824: an item handed over
  -- in the same tick as the caller's cancel is returned, not lost, and
  -- the cancel is not swallowed: the next wait raises it.
  it("returns an item handed over in the same tick as the caller's cancel",
     function()
    run(function()
      local inner = aio.spawn(function() aio.sleep(0) return "item" end)
      local got, after
      local w = aio.spawn(function()
        got = aio.wait_for(inner, 10)
        after = select(2, pcall(aio.sleep, 0))
      end)
      -- Runs right after inner finished, before w resumes.
      aio.spawn(function() aio.sleep(0) w:cancel() end)
      pcall(w.await, w)
      assert.equal("item", got)
      assert.is_true(aio.is_error(after, "CancelledError"))
      assert.is_false(inner:cancelled())
    end)
  end)

  -- bpo-42130: a result arriving in the same tick as the deadline is
  -- returned rather than lost.
  it("returns a result that arrives in the same tick as the deadline",
     function()
    run(function()
      local inner = aio.spawn(function() aio.sleep(0.01) return "item" end)
      aio.sleep(0) -- inner's sleep is due first
      local w = aio.spawn(function() return aio.wait_for(inner, 0.02) end)
      aio.sleep(0) -- w waits; its deadline is due second
      busy(0.05)  -- both are due when the loop next looks at its timers
      assert.equal("item", w:await())
      assert.is_false(inner:cancelled())
    end)
  end)

  -- Level-triggered: a caller that swallowed its cancel raises at once and
  -- starts nothing.
  it("raises at once and starts nothing in a cancelled caller", function()
    run(function()
      local started = false
      local raised
      local w = aio.spawn(function()
        pcall(aio.sleep, 10)
        raised = select(2, pcall(aio.wait_for, function()
          started = true
        end, 1))
      end)
      aio.sleep(0)
      w:cancel()
      w:await()
      aio.sleep(0)
      assert.is_true(aio.is_error(raised, "CancelledError"))
      assert.is_false(started)
    end)
  end)

  it("raises on bad arguments", function()
    run(function()
      assert.is_false(pcall(aio.wait_for, 1, 1))
      assert.is_false(pcall(aio.wait_for, function() end, "soon"))
      assert.is_false(pcall(aio.wait_for, function() end, 0 / 0))
      local ok, e = pcall(aio.wait_for, aio.current_task(), 1)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
    end)
  end)
end)
