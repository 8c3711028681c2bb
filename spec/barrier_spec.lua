-- aio.barrier(n): arrival indexes, reuse, reset, abort, cancellation.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run = S.BIG, S.MANY, S.run

local function assert_raises(type, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(aio.is_error(e, type), tostring(e))
  return e
end

-- Spawn n tasks that each wait on b once; returns the tasks.
local function arrive(b, n, into)
  local ts = {}
  for i = 1, n do
    ts[i] = aio.spawn(function()
      local index = b:wait()
      if into then into[i] = index end
      return index
    end)
  end
  return ts
end

describe("aio.barrier", function()
  it("returns arrival indexes 0 .. n-1 once n tasks wait", function()
    run(function()
      local b = aio.barrier(3)
      assert.equal(3, b:parties())
      local got = {}
      local ts = arrive(b, 2, got)
      aio.sleep(0)
      assert.equal(2, b:n_waiting())
      assert.are.same({}, got)
      assert.equal(2, b:wait()) -- the last one passes at once
      for i = 1, 2 do ts[i]:await() end
      assert.are.same({0, 1}, got)
      assert.equal(0, b:n_waiting())
      assert.is_false(b:broken())
    end)
  end)

  it("can be used for many rounds", function()
    run(function()
      local b = aio.barrier(4)
      local log, ts = {}, {}
      for i = 1, 4 do
        ts[i] = aio.spawn(function()
          for round = 1, 50 do
            local index = b:wait()
            log[#log + 1] = round * 10 + index
          end
        end)
      end
      for i = 1, 4 do ts[i]:await() end
      assert.equal(200, #log)
      for round = 1, 50 do
        local seen = {}
        for k = (round - 1) * 4 + 1, round * 4 do
          assert.equal(round, log[k] // 10)
          seen[log[k] % 10] = true
        end
        assert.are.same({[0] = true, true, true, true}, seen)
      end
    end)
  end)

  it("with one party never waits", function()
    run(function()
      local b = aio.barrier(1)
      assert.equal(0, b:wait())
      assert.equal(0, b:wait())
    end)
  end)

  it("raises ValueError for fewer than one party", function()
    run(function()
      assert_raises("ValueError", aio.barrier, 0)
      assert_raises("ValueError", aio.barrier, -2)
      assert.has_error(function() aio.barrier() end)
    end)
  end)

  -- test_abort_barrier.
  it("abort: waiters and later waits raise BrokenBarrierError", function()
    run(function()
      local b = aio.barrier(3)
      local ts = arrive(b, 2)
      aio.sleep(0)
      b:abort()
      assert.is_true(b:broken())
      for i = 1, 2 do
        local e = assert_raises("BrokenBarrierError", ts[i].await, ts[i])
        assert.matches("broken", tostring(e))
      end
      assert_raises("BrokenBarrierError", b.wait, b)
      assert.equal(0, b:n_waiting())
      b:reset()
      assert.is_false(b:broken())
      local ts2 = arrive(b, 2)
      aio.sleep(0)
      assert.equal(2, b:wait())
      for i = 1, 2 do ts2[i]:await() end
    end)
  end)

  -- test_reset_barrier_while_tasks_waiting.
  it("reset: the waiters raise BrokenBarrierError, then it fills anew",
     function()
    run(function()
      local b = aio.barrier(2)
      local t = arrive(b, 1)[1]
      aio.sleep(0)
      b:reset()
      assert_raises("BrokenBarrierError", t.await, t)
      assert.is_false(b:broken())
      assert.equal(0, b:n_waiting())
      local t2 = arrive(b, 1)[1]
      aio.sleep(0)
      assert.equal(1, b:wait())
      assert.equal(0, t2:await())
    end)
  end)

  it("drops a waiter cancelled while it waits; the others still pass",
     function()
    run(function()
      local b = aio.barrier(3)
      local ts = arrive(b, 2)
      aio.sleep(0)
      ts[1]:cancel()
      assert.equal(1, b:n_waiting())
      local ok, e = pcall(ts[1].await, ts[1])
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_false(b:broken())
      local t3 = arrive(b, 1)[1]
      aio.sleep(0)
      assert.equal(2, b:wait())
      assert.equal(0, ts[2]:await())
      assert.equal(1, t3:await())
    end)
  end)

  it("lets the others pass when a released waiter is cancelled before " ..
     "it runs", function()
    run(function()
      local b = aio.barrier(3)
      local ts = arrive(b, 2)
      aio.sleep(0)
      assert.equal(2, b:wait())
      ts[1]:cancel()
      local ok = pcall(ts[1].await, ts[1])
      assert.is_false(ok)
      assert.equal(1, ts[2]:await())
      assert.equal(0, b:n_waiting())
      assert.is_false(b:broken())
    end)
  end)

  it("releases 100,000 parties without overflowing the C stack", function()
    run(function()
      local b = aio.barrier(BIG)
      local ts = arrive(b, BIG - 1)
      aio.sleep(0)
      assert.equal(BIG - 1, b:n_waiting())
      assert.equal(BIG - 1, b:wait())
      local sum = 0
      for i = 1, #ts do sum = sum + ts[i]:await() end
      assert.equal((BIG - 2) * (BIG - 1) // 2, sum)
    end)
  end)

  it("prints its state and refuses a wrong self", function()
    run(function()
      local b = aio.barrier(3)
      local ts = arrive(b, 1)
      aio.sleep(0)
      assert.equal("<barrier 1/3 waiting>", tostring(b))
      assert.matches("in barrier>$", tostring(ts[1]))
      b:abort()
      assert.equal("<barrier 0/3 waiting, broken>", tostring(b))
      pcall(ts[1].await, ts[1])
      assert.equal("luaio.Barrier", getmetatable(b).__name)
      assert.has_error(function() b.wait(aio.event()) end)
      assert.has_error(function() b.abort() end)
    end)
  end)
end)
