-- aio.semaphore(n), aio.bounded_semaphore(n): permits handed straight to
-- FIFO waiters, cancellation never losing or doubling a permit.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run, waiting, assert_cancelled = S.BIG, S.MANY, S.run, S.waiting, S.assert_cancelled

local function assert_raises(type, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(aio.is_error(e, type), tostring(e))
  return e
end

describe("aio.semaphore", function()
  it("counts permits; acquire returns the semaphore", function()
    run(function()
      local s = aio.semaphore(2)
      assert.equal(2, s:value())
      assert.is_false(s:locked())
      assert.equal(s, s:acquire())
      assert.equal(s, s:acquire())
      assert.equal(0, s:value())
      assert.is_true(s:locked())
      s:release()
      s:release()
      assert.equal(2, s:value())
      s:release() -- an unbounded semaphore may grow
      assert.equal(3, s:value())
      assert.equal(1, aio.semaphore():value())
    end)
  end)

  -- test_semaphore_value.
  it("raises ValueError for a negative start", function()
    run(function()
      assert_raises("ValueError", aio.semaphore, -1)
      assert_raises("ValueError", aio.bounded_semaphore, -1)
      assert.equal(0, aio.semaphore(0):value())
    end)
  end)

  it("is released by <close>, errors included", function()
    run(function()
      local s = aio.semaphore(1)
      pcall(function()
        local _ <close> = s:acquire()
        assert.equal(0, s:value())
        error("boom")
      end)
      assert.equal(1, s:value())
    end)
  end)

  it("prints its state and refuses a wrong self", function()
    run(function()
      local s = aio.semaphore(0)
      local t = aio.spawn(function() s:acquire() end)
      aio.sleep(0)
      assert.equal("<semaphore value=0, 1 waiting>", tostring(s))
      assert.matches("in semaphore>$", tostring(t))
      s:release()
      t:await()
      assert.equal("<bounded_semaphore value=2/3, 0 waiting>",
                   tostring(aio.bounded_semaphore(3):acquire()))
      assert.equal("luaio.Semaphore", getmetatable(s).__name)
      assert.has_error(function() s.acquire(aio.lock()) end)
      assert.has_error(function() s.value("x") end)
    end)
  end)

  -- test_acquire: release hands permits straight to waiters.
  it("hands a released permit to the first waiter, not to the count",
     function()
    run(function()
      local s = aio.semaphore(0)
      local order = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = aio.spawn(function()
          s:acquire()
          order[#order + 1] = i
          s:release()
        end)
      end
      aio.sleep(0)
      s:release()
      s:release()
      assert.equal(0, s:value()) -- both permits already handed over
      assert.is_true(s:locked())
      s:acquire() -- no barging: main waits behind task 3
      order[#order + 1] = "main"
      s:release()
      ts[1]:await(); ts[2]:await(); ts[3]:await()
      assert.are.same({1, 2, 3, "main"}, order)
    end)
  end)

  it("stays FIFO over many rounds with 3 permits", function()
    run(function()
      local s = aio.semaphore(3)
      local record, ts, inside, most = {}, {}, 0, 0
      for i = 1, 7 do
        ts[i] = aio.spawn(function()
          for _ = 1, 50 do
            local _ <close> = s:acquire()
            inside = inside + 1
            most = math.max(most, inside)
            record[#record + 1] = i
            aio.sleep(0)
            inside = inside - 1
          end
        end)
      end
      for i = 1, 7 do ts[i]:await() end
      assert.equal(350, #record)
      for k = 1, 350 do assert.equal((k - 1) % 7 + 1, record[k]) end
      assert.equal(3, most)
      assert.equal(3, s:value())
    end)
  end)

  it("drops a waiter cancelled while it waits", function()
    run(function()
      local s = aio.semaphore(0)
      local t1 = aio.spawn(function() s:acquire() end)
      local t2 = aio.spawn(function() s:acquire() return "t2" end)
      aio.sleep(0)
      assert.equal(2, waiting(s))
      t1:cancel()
      assert.equal(1, waiting(s))
      assert_cancelled(t1)
      s:release()
      assert.equal("t2", t2:await())
      assert.equal(0, s:value())
      assert.equal(0, waiting(s))
    end)
  end)

  -- test_acquire_cancel_before_awoken; bpo-45997.
  it("passes the permit on when a woken waiter is cancelled", function()
    run(function()
      local s = aio.semaphore(0)
      local t1 = aio.spawn(function() s:acquire() end)
      local t2 = aio.spawn(function() s:acquire() return "t2" end)
      aio.sleep(0)
      s:release() -- t1 is handed the permit ...
      t1:cancel() -- ... and cancelled before it runs: t2 gets it
      assert.equal(0, s:value())
      assert.equal(0, waiting(s))
      assert_cancelled(t1)
      assert.equal("t2", t2:await())
      s:release()
      assert.equal(1, s:value())
    end)
  end)

  -- test_acquire_hang; gh-90155.
  it("gets its permits back when every woken waiter is cancelled",
     function()
    run(function()
      local s = aio.semaphore(0)
      local t1 = aio.spawn(function() s:acquire() end)
      local t2 = aio.spawn(function() s:acquire() end)
      aio.sleep(0)
      s:release()
      s:release()
      t1:cancel()
      t2:cancel()
      assert_cancelled(t1)
      assert_cancelled(t2)
      assert.equal(2, s:value())
      assert.equal(0, waiting(s))
      assert.is_false(s:locked())
    end)
  end)

  -- test_acquire_no_hang; gh-111693.
  it("loses no permit when the holder cancels a waiter right after " ..
     "releasing", function()
    run(function()
      local s = aio.semaphore(1)
      local done = {}
      local function job(i)
        return function()
          local _ <close> = s:acquire()
          aio.sleep(0)
          done[#done + 1] = i
        end
      end
      s:acquire()
      local t1, t2 = aio.spawn(job(1)), aio.spawn(job(2))
      aio.sleep(0)
      s:release()
      t1:cancel()
      assert_cancelled(t1)
      t2:await()
      assert.are.same({2}, done)
      assert.equal(1, s:value())
      assert.equal(s, s:acquire()) -- does not hang
    end)
  end)

  it("keeps at most n inside and no leftovers under random cancellations",
     function()
    run(function()
      math.randomseed(11)
      local s = aio.semaphore(3)
      local inside, most = 0, 0
      local leave = setmetatable({}, {
        __close = function() inside = inside - 1 end})
      local ts = {}
      for i = 1, 40 do
        ts[i] = aio.spawn(function()
          for _ = 1, 10 do
            local _ <close> = s:acquire()
            local _ <close> = leave -- runs first, also when cancelled
            inside = inside + 1
            most = math.max(most, inside)
            aio.sleep(0)
          end
        end)
      end
      for _ = 1, 100 do
        aio.sleep(0)
        if math.random() < 0.4 then ts[math.random(#ts)]:cancel() end
        if math.random() < 0.2 then -- a cancel right after a release
          s:acquire()
          s:release()
          ts[math.random(#ts)]:cancel()
        end
      end
      for i = 1, #ts do pcall(ts[i].await, ts[i]) end
      assert.equal(3, most)
      assert.equal(3, s:value())
      assert.equal(0, waiting(s))
    end)
  end)

  it("wakes 100,000 waiters, one per release", function()
    run(function()
      local s = aio.semaphore(0)
      local n, ts = 0, {}
      for i = 1, BIG do
        ts[i] = aio.spawn(function() s:acquire() n = n + 1 end)
      end
      aio.sleep(0)
      assert.equal(BIG, waiting(s))
      for _ = 1, BIG do s:release() end
      for i = 1, #ts do ts[i]:await() end
      assert.equal(BIG, n)
      assert.equal(0, s:value())
    end)
  end)
end)

describe("aio.bounded_semaphore", function()
  -- test_release_not_acquired.
  it("raises ValueError when released more than acquired", function()
    run(function()
      local s = aio.bounded_semaphore(2)
      assert_raises("ValueError", s.release, s)
      s:acquire()
      s:release()
      assert_raises("ValueError", s.release, s)
      assert.equal(2, s:value())
      assert_raises("ValueError", s.release, aio.bounded_semaphore(0))
    end)
  end)

  it("counts a permit handed to a waiter as held", function()
    run(function()
      local s = aio.bounded_semaphore(1)
      s:acquire()
      local t = aio.spawn(function() s:acquire() aio.sleep(0) s:release() end)
      aio.sleep(0)
      s:release() -- to t, which holds it before it runs
      assert.equal(0, s:value())
      assert.equal(0, waiting(s))
      t:await()
      assert.equal(1, s:value())
      assert_raises("ValueError", s.release, s)
    end)
  end)

  it("takes the permit back from a woken waiter that is cancelled",
     function()
    run(function()
      local s = aio.bounded_semaphore(1)
      s:acquire()
      local t = aio.spawn(function() s:acquire() end)
      aio.sleep(0)
      s:release()
      t:cancel()
      assert_cancelled(t)
      assert.equal(1, s:value())
      assert_raises("ValueError", s.release, s)
    end)
  end)
end)

describe("scripts/rate_limit.lua", function()
  local expected = {}
  for i = 1, 3 do expected[#expected + 1] = ("job %d starts"):format(i) end
  for i = 4, 10 do
    expected[#expected + 1] = ("job %d waits for a permit"):format(i)
  end
  for i = 4, 10 do expected[#expected + 1] = ("job %d starts"):format(i) end
  expected[#expected + 1] = "results: page-1 page-2 page-3 page-4 page-5 " ..
                            "page-6 page-7 page-8 page-9 page-10"
  expected[#expected + 1] = "at most 3 of 10 jobs ran at once (limit 3)"
  expected[#expected + 1] = "permits free at the end: 3"

  local function lines_of(cmd)
    local p = assert(io.popen(cmd .. " scripts/rate_limit.lua 2>&1"))
    local out = {}
    for line in p:lines() do out[#out + 1] = line end
    local ok, how, code = p:close()
    return out, ok, how, code
  end

  it("runs under the luaio command, at most 3 jobs at once, in order",
     function()
    local luaio = os.getenv("LUAIO")
    assert.is_string(luaio)
    local out, ok, _, code = lines_of(luaio)
    assert.are.same(expected, out)
    assert.is_true(ok)
    assert.equal(0, code)
  end)

  -- Only where this spec itself runs under lua5.4: a sanitized build's
  -- module cannot be loaded by a stock interpreter.
  it("runs under a stock lua5.4 too", function()
    if aio.current_task() then return end -- under the luaio command
    local out, ok = lines_of("lua5.4")
    assert.are.same(expected, out)
    assert.is_true(ok)
  end)
end)
