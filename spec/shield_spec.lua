-- aio.shield(fn, ...) and aio.shield(task).  API.md "Combining tasks" and
-- "Tasks"; DESIGN.md "Cancellation"; SEMANTICS.md "gather and shield".
local aio = require "luaio"
local S = require "support"
local run = S.run

local function is_cancelled(e) return aio.is_error(e, "CancelledError") end

local function failure(t)
  local ok, e = pcall(t.await, t)
  assert.is_false(ok, "the task did not fail")
  return e
end

local function until_(cond)
  for _ = 1, 1000 do
    if cond() then return end
    aio.sleep(0)
  end
  error("condition never held", 2)
end

describe("aio.shield(fn)", function()
  it("runs fn in the calling task with its arguments", function()
    run(function()
      local me = aio.current_task()
      local inside
      local r = aio.shield(function(a, b)
        inside = aio.current_task()
        aio.sleep(0)
        return a + b
      end, 1, 2)
      assert.equal(3, r)
      assert.equal(me, inside)
    end)
  end)

  it("does not interrupt the waits inside when the caller is cancelled; "
     .. "the next wait after it raises", function()
    run(function()
      local log, entered = {}, false
      local t = aio.spawn(function()
        local v = aio.shield(function()
          entered = true
          local t0 = aio.time()
          aio.sleep(0.05)
          log[#log + 1] = aio.time() - t0 >= 0.05 and "slept fully" or "early"
          aio.sleep(0)
          log[#log + 1] = "sleep(0) too"
          return "v"
        end)
        log[#log + 1] = "returned " .. v
        local ok, e = pcall(aio.sleep, 10)
        log[#log + 1] = (not ok and is_cancelled(e)) and "raised after"
          or "not raised"
        aio.sleep(10)
        log[#log + 1] = "not reached"
      end)
      until_(function() return entered end)
      t:cancel("stop")
      local e = failure(t)
      assert.is_true(is_cancelled(e))
      assert.equal("stop", e.message)
      assert.are.same({"slept fully", "sleep(0) too", "returned v",
                       "raised after"}, log)
      assert.is_true(t:cancelled())
    end)
  end)

  it("protects waits even when the cancel came before it was entered",
     function()
    run(function()
      local log = {}
      local t = aio.spawn(function()
        aio.current_task():cancel()
        aio.shield(function()
          aio.sleep(0.01)
          log[#log + 1] = "shielded wait done"
        end)
        local ok, e = pcall(aio.sleep, 0)
        log[#log + 1] = not ok and is_cancelled(e) and "raised" or "not raised"
      end)
      t:await()
      assert.are.same({"shielded wait done", "raised"}, log)
    end)
  end)

  it("returns every value, nils included", function()
    run(function()
      local r = table.pack(aio.shield(function()
        aio.sleep(0)
        return 1, nil, 3, nil
      end))
      assert.equal(4, r.n)
      assert.are.same({1, nil, 3, nil, n = 4}, r)
      assert.equal(0, select("#", aio.shield(function() end)))
    end)
  end)

  it("raises fn's error unchanged", function()
    run(function()
      local err = setmetatable({}, {})
      local ok, e = pcall(aio.shield, function() aio.sleep(0) error(err) end)
      assert.is_false(ok)
      assert.equal(err, e)
      ok, e = pcall(aio.shield, function() error("plain", 0) end)
      assert.is_false(ok)
      assert.equal("plain", e)
    end)
  end)

  it("is left when fn raises: a later cancel interrupts again", function()
    run(function()
      local waiting = false
      local t = aio.spawn(function()
        pcall(aio.shield, function() aio.sleep(0) error("x") end)
        waiting = true
        aio.sleep(10)
      end)
      until_(function() return waiting end)
      aio.sleep(0.001)
      t:cancel()
      assert.is_true(is_cancelled(failure(t)))
    end)
  end)

  it("nests: the inner one ending leaves the outer protection on", function()
    run(function()
      local log, entered = {}, false
      local t = aio.spawn(function()
        aio.shield(function()
          aio.shield(function()
            entered = true
            aio.sleep(0.03)
            log[#log + 1] = "inner"
          end)
          aio.sleep(0.01) -- still inside the outer shield
          log[#log + 1] = "outer"
          local inner = aio.spawn(function() aio.sleep(0.01) return "task" end)
          log[#log + 1] = aio.shield(inner)
        end)
        local ok, e = pcall(aio.sleep, 0)
        log[#log + 1] = not ok and is_cancelled(e) and "raised" or "not raised"
      end)
      until_(function() return entered end)
      t:cancel()
      t:await()
      assert.are.same({"inner", "outer", "task", "raised"}, log)
    end)
  end)

  it("lets a timeout scope inside it fire", function()
    run(function()
      local t = aio.spawn(function()
        return aio.shield(function()
          local inner_saw
          local ok, e = pcall(function()
            local _ <close> = aio.timeout(0.02)
            local ok2, e2 = pcall(aio.sleep, 10)
            inner_saw = not ok2 and is_cancelled(e2)
            error(e2, 0)
          end)
          return not ok and aio.is_error(e, "TimeoutError"), inner_saw
        end)
      end)
      assert.are.same({true, true}, {t:await()})
    end)
  end)

  it("lets a timeout inside it fire while the caller's cancel is pending",
     function()
    run(function()
      local result, entered = nil, false
      local t = aio.spawn(function()
        result = {aio.shield(function()
          entered = true
          local ok, e = pcall(function()
            local _ <close> = aio.timeout(0.05)
            aio.sleep(10)
          end)
          return ok, aio.is_error(e, "TimeoutError"), tostring(e)
        end)}
        aio.sleep(0)
      end)
      until_(function() return entered end)
      t:cancel()
      assert.is_true(is_cancelled(failure(t)))
      assert.is_false(result[1])
      assert.is_true(result[2], result[3])
    end)
  end)

  it("holds off an expired timeout around it until the next wait",
     function()
    run(function()
      local log = {}
      local ok, e = pcall(function()
        local to <close> = aio.timeout(0.01)
        aio.shield(function()
          aio.sleep(0.03)
          log[#log + 1] = "shielded"
        end)
        log[#log + 1] = to:expired() and "expired" or "pending"
        aio.sleep(0)
        log[#log + 1] = "not reached"
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"), tostring(e))
      assert.are.same({"shielded", "expired"}, log)
    end)
  end)

  it("rejects what is neither a task nor callable", function()
    run(function()
      assert.has_error(function() aio.shield(42) end)
      assert.has_error(function() aio.shield() end)
    end)
  end)

  it("runs cleanup that waits in a cancelled task's __close", function()
    run(function()
      local log = {}
      local t = aio.spawn(function()
        local _ <close> = setmetatable({}, {__close = function(_, e)
          log[#log + 1] = is_cancelled(e) and "closing on cancel" or "?"
          aio.shield(function() aio.sleep(0.01) end)
          log[#log + 1] = "cleaned"
        end})
        aio.sleep(10)
      end)
      aio.sleep(0.001)
      t:cancel()
      assert.is_true(is_cancelled(failure(t)))
      assert.are.same({"closing on cancel", "cleaned"}, log)
    end)
  end)
end)

describe("aio.shield(task)", function()
  -- test_shield_effect
  it("cancelling the caller does not cancel the task, which completes",
     function()
    run(function()
      local go = aio.event() -- inner ends when told, however slow the loop
      local inner = aio.spawn(function() go:wait() return "done", 2 end)
      local outer = aio.spawn(function() return aio.shield(inner) end)
      aio.sleep(0.001)
      outer:cancel()
      assert.is_true(is_cancelled(failure(outer)))
      assert.is_true(outer:cancelled())
      assert.is_false(inner:done())
      go:set()
      assert.are.same({"done", 2}, {inner:await()})
      assert.is_false(inner:cancelled())
    end)
  end)

  it("returns every result of the task", function()
    run(function()
      local inner = aio.spawn(function() aio.sleep(0) return 1, nil, 3 end)
      local r = table.pack(aio.shield(inner))
      assert.are.same({1, nil, 3, n = 3}, r)
      r = table.pack(aio.shield(inner)) -- already done
      assert.are.same({1, nil, 3, n = 3}, r)
    end)
  end)

  it("raises the task's error unchanged", function()
    run(function()
      local err = {}
      local inner = aio.spawn(function() aio.sleep(0) error(err) end)
      local ok, e = pcall(aio.shield, inner)
      assert.is_false(ok)
      assert.equal(err, e)
    end)
  end)

  it("inside shield(fn) is not interrupted by the caller's cancel",
     function()
    run(function()
      local got, entered
      local inner = aio.spawn(function() aio.sleep(0.03) return "ok" end)
      local outer = aio.spawn(function()
        aio.shield(function()
          entered = true
          got = inner:await() -- a plain await, protected by the shield
        end)
        aio.sleep(0)
      end)
      until_(function() return entered end)
      outer:cancel()
      assert.is_true(is_cancelled(failure(outer)))
      assert.equal("ok", got)
      assert.is_false(inner:cancelled())
    end)
  end)
end)
