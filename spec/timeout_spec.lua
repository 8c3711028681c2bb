-- Timeout scopes: aio.timeout, aio.timeout_at (CPython test_timeouts,
-- Trio test_cancel_scope_nesting).
local aio = require "luaio"
local S = require "support"
local run = S.run

describe("aio.timeout", function()
  it("turns its own expiry into TimeoutError; the inside saw CancelledError",
     function() -- test_timeout_basic
    run(function()
      local seen, scope
      local ok, e = pcall(function()
        local t <close> = aio.timeout(0.01)
        scope = t
        local ok2, e2 = pcall(aio.sleep, 10)
        seen = e2
        error(e2)
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.equal("TimeoutError: timed out", tostring(e))
      assert.is_true(aio.is_error(seen, "CancelledError"))
      assert.is_true(scope:expired())
    end)
  end)

  it("leaves the task uncancelled after converting", function()
    run(function()
      pcall(function()
        local t <close> = aio.timeout(0.01)
        aio.sleep(10)
      end)
      assert.equal("ok", aio.sleep(0, "ok"))
      assert.equal("ok", aio.sleep(0.001, "ok"))
    end)
  end)

  it("does nothing when the body finishes in time", function()
    run(function()
      local scope
      do
        local t <close> = aio.timeout(10)
        scope = t
        aio.sleep(0.01)
      end
      assert.is_false(scope:expired())
    end)
  end)

  it("with zero or a past deadline raises even around sleep(0)", function()
    -- test_timeout_zero_sleep_zero
    run(function()
      for _, mk in ipairs({function() return aio.timeout(0) end,
                           function() return aio.timeout(-1) end,
                           function() return aio.timeout_at(aio.time() - 1) end}) do
        local ok, e = pcall(function()
          local t <close> = mk()
          aio.sleep(0)
        end)
        assert.is_false(ok)
        assert.is_true(aio.is_error(e, "TimeoutError"))
      end
    end)
  end)

  it("nested with the same deadline: only the outermost converts", function()
    -- test_nested_timeouts
    run(function()
      local outer, inner, innerseen
      local ok, e = pcall(function()
        local o <close> = aio.timeout(0.01)
        outer = o
        local ok2, e2 = pcall(function()
          local i <close> = aio.timeout(0.01)
          inner = i
          aio.sleep(10)
        end)
        innerseen = e2
        error(e2)
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(aio.is_error(innerseen, "CancelledError"))
      assert.is_true(outer:expired())
    end)
  end)

  it("an expired inner scope leaves the outer one running", function()
    run(function()
      local after
      do
        local o <close> = aio.timeout(10)
        local ok, e = pcall(function()
          local i <close> = aio.timeout(0.01)
          aio.sleep(10)
        end)
        assert.is_true(aio.is_error(e, "TimeoutError"))
        after = aio.sleep(0.001, "outer still running")
        assert.is_false(o:expired())
      end
      assert.equal("outer still running", after)
    end)
  end)

  it("inner fired and caught, loop busy past the outer: outer fires next wait",
     function() -- test_nested_timeouts_loop_busy
    run(function()
      local ok, e = pcall(function()
        local o <close> = aio.timeout(0.05)
        pcall(function()
          local i <close> = aio.timeout(0.01)
          aio.sleep(10)
        end)
        local t0 = os.clock()
        while os.clock() - t0 < 0.08 do end -- busy past the outer deadline
        aio.sleep(10)
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)

  it("an outside cancel stays CancelledError and expired() stays false",
     function() -- test_foreign_cancel_doesnt_timeout_if_not_expired
    run(function()
      local scope
      local t = aio.spawn(function()
        local s <close> = aio.timeout(10)
        scope = s
        aio.sleep(10)
      end)
      aio.sleep(0.01)
      t:cancel()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_false(scope:expired())
      assert.is_true(t:cancelled())
    end)
  end)

  it("an error raised by cleanup replaces the TimeoutError", function()
    -- test_foreign_exception_on_timeout
    run(function()
      local mine = {"cleanup failed"}
      local ok, e = pcall(function()
        local t <close> = aio.timeout(0.01)
        local ok2 = pcall(aio.sleep, 10)
        error(mine)
      end)
      assert.is_false(ok)
      assert.equal(mine, e)
    end)
  end)

  it("reschedule moves the deadline; nil never fires", function()
    -- test_reschedule, test_timeout_disabled
    run(function()
      local t0 = aio.time()
      do
        local t <close> = aio.timeout(0.01)
        t:reschedule(nil)
        assert.is_nil(t:when())
        aio.sleep(0.03)
        assert.is_false(t:expired())
      end
      local ok, e = pcall(function()
        local t <close> = aio.timeout(10)
        t:reschedule(0.01)
        assert.is_true(t:when() <= aio.time() + 0.01 + 1e-6)
        aio.sleep(10)
      end)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(aio.time() - t0 >= 0.04)
      local s = aio.timeout(nil)
      assert.matches("without deadline", tostring(s))
      getmetatable(s).__close(s)
    end)
  end)

  it("a scope without a deadline never fires", function()
    run(function()
      local t <close> = aio.timeout(nil)
      aio.sleep(0.01)
      assert.is_false(t:expired())
    end)
  end)

  it("stays cancelled (level-triggered) until the scope exits", function()
    run(function()
      local n = 0
      local ok, e = pcall(function()
        local t <close> = aio.timeout(0.01)
        for _ = 1, 3 do
          local ok2 = pcall(aio.sleep, 10)
          if not ok2 then n = n + 1 end
        end
        aio.sleep(0)
      end)
      assert.equal(3, n)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)

  it("refuses to be made outside a task and to close out of order", function()
    if not aio.current_task() then
      assert.has_error(function() aio.timeout(1) end)
    end
    run(function()
      local a = aio.timeout(10)
      local b = aio.timeout(10)
      assert.has_error(function() getmetatable(a).__close(a) end)
      getmetatable(b).__close(b)
      getmetatable(a).__close(a)
      aio.sleep(0)
    end)
  end)

  it("gives a TimeoutError the stack of the wait it interrupted and the "
     .. "scope's creation site (issue 12, item 11)", function()
    run(function()
      local function wait_here() aio.sleep(10) end
      local line = debug.getinfo(1, "l").currentline + 2
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0.001)
        wait_here()
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.matches("'wait_here'", e.traceback)
      assert.matches("timeout scope created at [^\n]*timeout_spec.lua:"
                     .. line, e.traceback)
    end)
  end)

  it("made without <close> by a function that returned is dropped with a "
     .. "warning when it expires, not left to cancel its task (issue 12, "
     .. "item 11)", function()
    run(function()
      local function forgets() local _ = aio.timeout(0.001) end
      local t = aio.spawn(function()
        forgets()
        aio.sleep(0.02)
        return "not cancelled"
      end)
      assert.equal("not cancelled", t:await())
    end)
  end)

  it("left open inside a scope that closes is dropped, and the error names "
     .. "it (issue 12, item 11)", function()
    run(function()
      local ok, err = pcall(aio.shield, function()
        local _ = aio.timeout(0.001)
      end)
      assert.is_false(ok)
      assert.matches("the timeout scope created at [^ ]*timeout_spec.lua:%d+"
                     .. " was still open", err)
      aio.sleep(0.01) -- the dropped scope's deadline cancels nothing
    end)
  end)

  it("5,000 nested scopes do not overflow the C stack", function()
    -- Trio test_very_deep_cancel_scope_nesting
    run(function()
      local function nest(n)
        local t <close> = aio.timeout(100)
        if n == 0 then return aio.sleep(0, "bottom") end
        return (nest(n - 1))
      end
      assert.equal("bottom", nest(5000))
      local ok, e = pcall(function()
        local outer <close> = aio.timeout(0.01)
        local function deep(n)
          local t <close> = aio.timeout(100)
          if n == 0 then return aio.sleep(10) end
          return (deep(n - 1))
        end
        deep(5000)
      end)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)
end)
