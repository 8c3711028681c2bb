-- aio.event(): set wakes every waiter once; cancelled waiters leave.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run, waiting, assert_cancelled = S.BIG, S.MANY, S.run, S.waiting, S.assert_cancelled

describe("aio.event", function()
  it("starts unset; set, clear and is_set", function()
    run(function()
      local e = aio.event()
      assert.is_false(e:is_set())
      e:set()
      assert.is_true(e:is_set())
      e:set()
      assert.is_true(e:is_set())
      e:clear()
      assert.is_false(e:is_set())
    end)
  end)

  it("wait returns true at once when it is set", function()
    run(function()
      local e = aio.event()
      e:set()
      local ran = false
      aio.spawn(function() ran = true end)
      assert.is_true(e:wait())
      assert.is_false(ran) -- it did not yield to other tasks
    end)
  end)

  -- EventTests.test_wait.
  it("set wakes every waiter, in the order they came", function()
    run(function()
      local e = aio.event()
      local order, ts = {}, {}
      for i = 1, 3 do
        ts[i] = aio.spawn(function()
          assert.is_true(e:wait())
          order[#order + 1] = i
        end)
      end
      aio.sleep(0)
      assert.equal(3, waiting(e))
      assert.are.same({}, order)
      e:set()
      assert.equal(0, waiting(e))
      for i = 1, 3 do ts[i]:await() end
      assert.are.same({1, 2, 3}, order)
    end)
  end)

  -- EventTests.test_clear_and_wait.
  it("set-clear-set with a waiter wakes it once", function()
    run(function()
      local e = aio.event()
      local wakes = 0
      local t = aio.spawn(function()
        e:wait()
        wakes = wakes + 1
        local ok = pcall(e.wait, e) -- cleared: waits again, is cancelled
        return ok
      end)
      aio.sleep(0)
      e:set()
      e:clear()
      e:set()
      e:clear()
      aio.sleep(0)
      aio.sleep(0)
      assert.equal(1, wakes)
      assert.equal(1, waiting(e))
      t:cancel()
      assert.is_false(t:await())
      assert.equal(1, wakes)
      assert.equal(0, waiting(e))
    end)
  end)

  -- EventTests.test_wait_cancel.
  it("drops a waiter cancelled while it waits", function()
    run(function()
      local e = aio.event()
      local t1 = aio.spawn(function() e:wait() end)
      local t2 = aio.spawn(function() return e:wait() end)
      aio.sleep(0)
      t1:cancel()
      assert.equal(1, waiting(e))
      assert_cancelled(t1)
      e:set()
      assert.is_true(t2:await())
      assert.equal(0, waiting(e))
    end)
  end)

  it("wakes the other waiters when one is cancelled right after set",
     function()
    run(function()
      local e = aio.event()
      local t1 = aio.spawn(function() return e:wait() end)
      local t2 = aio.spawn(function() return e:wait() end)
      aio.sleep(0)
      e:set()
      t1:cancel()
      assert_cancelled(t1)
      assert.is_true(t2:await())
      assert.is_true(e:is_set())
    end)
  end)

  it("raises in a cancelled task that would wait, leaving nothing behind",
     function()
    run(function()
      local e = aio.event()
      local t = aio.spawn(function()
        aio.current_task():cancel()
        local ok, err = pcall(e.wait, e)
        return ok, aio.is_error(err, "CancelledError")
      end)
      local ok, is_cancel = t:await()
      assert.is_false(ok)
      assert.is_true(is_cancel)
      assert.equal(0, waiting(e))
    end)
  end)

  it("wakes 100,000 waiters without overflowing the C stack", function()
    run(function()
      local e = aio.event()
      local n, ts = 0, {}
      for i = 1, BIG do
        ts[i] = aio.spawn(function() e:wait() n = n + 1 end)
      end
      aio.sleep(0)
      assert.equal(BIG, waiting(e))
      e:set()
      assert.equal(0, waiting(e))
      for i = 1, #ts do ts[i]:await() end
      assert.equal(BIG, n)
    end)
  end)

  it("prints its state and refuses a wrong self", function()
    run(function()
      local e = aio.event()
      assert.equal("<event unset, 0 waiting>", tostring(e))
      local t = aio.spawn(function() e:wait() end)
      aio.sleep(0)
      assert.equal("<event unset, 1 waiting>", tostring(e))
      assert.matches("in event>$", tostring(t))
      e:set()
      assert.equal("<event set, 0 waiting>", tostring(e))
      t:await()
      assert.equal("luaio.Event", getmetatable(e).__name)
      assert.has_error(function() e.wait(aio.lock()) end)
      assert.has_error(function() e.set() end)
    end)
  end)
end)
