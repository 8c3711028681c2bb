-- aio.lock(): FIFO hand-off, cancellation at every wait point, <close>.
local aio = require "luaio"
local S = require "support"
local run, waiting, assert_cancelled = S.run, S.waiting, S.assert_cancelled

describe("aio.lock", function()
  it("acquire returns the lock; release frees it", function()
    run(function()
      local l = aio.lock()
      assert.is_false(l:locked())
      assert.equal(l, l:acquire())
      assert.is_true(l:locked())
      l:release()
      assert.is_false(l:locked())
    end)
  end)

  it("raises RuntimeError when releasing a lock nobody holds", function()
    run(function()
      local l = aio.lock()
      local ok, e = pcall(l.release, l)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "RuntimeError"))
      l:acquire()
      l:release()
      assert.is_false(pcall(l.release, l))
    end)
  end)

  it("is released by <close> at scope end, errors included", function()
    run(function()
      local l = aio.lock()
      do
        local held <close> = l:acquire()
        assert.is_true(held:locked())
      end
      assert.is_false(l:locked())
      local ok, e = pcall(function()
        local _ <close> = l:acquire()
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", e)
      assert.is_false(l:locked())
    end)
  end)

  it("prints its state and refuses a wrong self", function()
    run(function()
      local l = aio.lock()
      assert.equal("<lock unlocked, 0 waiting>", tostring(l))
      l:acquire()
      local t = aio.spawn(function() l:acquire() l:release() end)
      aio.sleep(0)
      assert.equal("<lock locked, 1 waiting>", tostring(l))
      assert.matches("in lock>$", tostring(t))
      l:release()
      t:await()
      assert.equal("luaio.Lock", getmetatable(l).__name)
      assert.has_error(function() l.acquire({}) end)
      assert.has_error(function() l.release(aio.event()) end)
      assert.has_error(function() l.locked() end)
    end)
  end)

  it("may be released by another task, as in asyncio", function()
    run(function()
      local l = aio.lock()
      l:acquire()
      aio.spawn(function() l:release() end):await()
      assert.is_false(l:locked())
    end)
  end)

  -- test_acquire; Trio test_generic_lock_fifo_fairness.
  it("is FIFO with no barging, over many rounds", function()
    run(function()
      local l = aio.lock()
      local record, ts, holders, most = {}, {}, 0, 0
      for i = 1, 5 do
        ts[i] = aio.spawn(function()
          for _ = 1, 100 do
            local _ <close> = l:acquire()
            holders = holders + 1
            most = math.max(most, holders)
            record[#record + 1] = i
            aio.sleep(0)
            holders = holders - 1
          end
        end)
      end
      for i = 1, 5 do ts[i]:await() end
      assert.equal(500, #record)
      for k = 1, 500 do assert.equal((k - 1) % 5 + 1, record[k]) end
      assert.equal(1, most)
      assert.is_false(l:locked())
    end)
  end)

  it("hands the lock to the first waiter: a releaser that re-acquires " ..
     "at once goes to the back", function()
    run(function()
      local l = aio.lock()
      local order = {}
      l:acquire()
      local t = aio.spawn(function()
        l:acquire()
        order[#order + 1] = "t"
        l:release()
      end)
      aio.sleep(0)
      l:release()
      assert.is_true(l:locked()) -- already t's
      l:acquire()
      order[#order + 1] = "main"
      l:release()
      t:await()
      assert.are.same({"t", "main"}, order)
    end)
  end)

  -- test_acquire_cancel.
  it("drops a waiter cancelled while it waits", function()
    run(function()
      local l = aio.lock()
      l:acquire()
      local got = {}
      local function job(i)
        return function() l:acquire() got[#got + 1] = i l:release() end
      end
      local t1, t2 = aio.spawn(job(1)), aio.spawn(job(2))
      aio.sleep(0)
      assert.equal(2, waiting(l))
      t1:cancel()
      assert.equal(1, waiting(l))
      assert_cancelled(t1)
      l:release()
      t2:await()
      assert.are.same({2}, got)
      assert.is_false(l:locked())
      assert.equal(0, waiting(l))
    end)
  end)

  -- test_cancel_race, test_cancel_release_race; bpo-27585, bpo-32734.
  it("passes the lock on when a woken waiter is cancelled before it runs",
     function()
    run(function()
      local l = aio.lock()
      local holders, most, got = 0, 0, {}
      local function worker(i)
        return function()
          local _ <close> = l:acquire()
          holders = holders + 1
          most = math.max(most, holders)
          got[#got + 1] = i
          aio.sleep(0)
          holders = holders - 1
        end
      end
      l:acquire()
      local t1, t2, t3 = aio.spawn(worker(1)), aio.spawn(worker(2)),
                         aio.spawn(worker(3))
      aio.sleep(0)
      l:release() -- hands the lock to t1 ...
      t1:cancel() -- ... which is cancelled in the same tick
      assert.is_true(l:locked())
      assert.equal(1, waiting(l)) -- t2 holds it now, t3 waits
      assert_cancelled(t1)
      t2:await()
      t3:await()
      assert.are.same({2, 3}, got)
      assert.equal(1, most)
      assert.is_false(l:locked())
      assert.equal(0, waiting(l))
    end)
  end)

  it("is free again when every woken waiter is cancelled", function()
    run(function()
      local l = aio.lock()
      l:acquire()
      local ts = {}
      for i = 1, 3 do ts[i] = aio.spawn(function() l:acquire() end) end
      aio.sleep(0)
      l:release()
      for i = 1, 3 do ts[i]:cancel() end
      for i = 1, 3 do assert_cancelled(ts[i]) end
      assert.is_false(l:locked())
      assert.equal(0, waiting(l))
      assert.equal(l, l:acquire())
    end)
  end)

  it("raises at once in a cancelled task when it would wait", function()
    run(function()
      local l = aio.lock()
      l:acquire()
      local t = aio.spawn(function()
        aio.current_task():cancel()
        local ok, e = pcall(l.acquire, l)
        assert.is_false(ok)
        assert.is_true(aio.is_error(e, "CancelledError"))
        assert.equal(0, waiting(l))
        return "swallowed"
      end)
      assert.equal("swallowed", t:await())
      l:release()
      assert.is_false(l:locked())
    end)
  end)

  it("keeps one holder and no leftovers under random cancellations",
     function()
    run(function()
      math.randomseed(7)
      local l = aio.lock()
      local holders, most, entered = 0, 0, 0
      local leave = setmetatable({}, {
        __close = function() holders = holders - 1 end})
      local ts = {}
      for i = 1, 50 do
        ts[i] = aio.spawn(function()
          for _ = 1, 20 do
            local _ <close> = l:acquire()
            local _ <close> = leave -- runs first, also when cancelled
            holders = holders + 1
            most = math.max(most, holders)
            entered = entered + 1
            aio.sleep(0)
          end
        end)
      end
      for _ = 1, 200 do
        aio.sleep(0)
        if math.random() < 0.3 then ts[math.random(#ts)]:cancel() end
        if math.random() < 0.2 then -- a cancel right after a release
          l:acquire()
          l:release()
          ts[math.random(#ts)]:cancel()
        end
      end
      for i = 1, #ts do pcall(ts[i].await, ts[i]) end
      assert.equal(1, most)
      assert.is_true(entered > 0)
      assert.is_false(l:locked())
      assert.equal(0, waiting(l))
    end)
  end)

  it("allocates nothing uncontended, nor when a task waits", function()
    run(function()
      local l = aio.lock()
      local function pingpong(n)
        local t = aio.spawn(function()
          for _ = 1, n do l:acquire() aio.sleep(0) l:release() end
        end)
        for _ = 1, n do l:acquire() aio.sleep(0) l:release() end
        t:await()
      end
      pingpong(100) -- warm up: stacks, call frames, the ready queue
      for _ = 1, 10 do l:acquire() l:release() end
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      for _ = 1, 10000 do l:acquire() l:release() end
      local used = collectgarbage("count") - before
      assert.equal(0, used)
      local t = aio.spawn(function()
        for _ = 1, 1000 do l:acquire() aio.sleep(0) l:release() end
      end)
      local mid = collectgarbage("count") -- the task itself allocated
      for _ = 1, 1000 do l:acquire() aio.sleep(0) l:release() end
      t:await()
      local after = collectgarbage("count")
      collectgarbage("restart")
      assert.is_true(after - mid < 1, "a wait allocated " ..
                     (after - mid) .. " KiB")
    end)
  end)
end)
