-- luaio.patterns.rate_limiter: a token bucket with FIFO waiters.  Timings
-- are checked as lower bounds and as the order of timers, never as upper
-- bounds; where a test needs tasks to be still waiting, tokens are 50 ms
-- or more apart, so a busy machine does not let them through early.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled
local until_ = S.wait_until

-- The tasks not done now, as a set.
local function task_set()
  local set = {}
  for _, t in ipairs(aio.all_tasks()) do set[t] = true end
  return set
end

describe("rate_limiter", function()
  it("starts full and hands out its burst without waiting", function()
    run(function()
      local rl = P.rate_limiter(0.01, 3) -- no refill to speak of
      local ran = false
      aio.spawn(function() ran = true end)
      assert.is_true(rl:acquire())
      assert.is_true(rl:acquire(2))
      assert.is_false(ran) -- no wait, no checkpoint
      assert.is_false(rl:try_acquire())
      assert.is_true(rl:available() < 1)
    end)
  end)

  it("acquire waits for tokens to accrue", function()
    run(function()
      local rl = P.rate_limiter(200, 1)
      local t0 = aio.time()
      for _ = 1, 11 do rl:acquire() end
      assert.is_true(aio.time() - t0 >= 10 / 200)
    end)
  end)

  it("try_acquire takes tokens only when they are there", function()
    run(function()
      local rl = P.rate_limiter(0.001, 2) -- a token every 1000 s
      assert.is_true(rl:try_acquire(2))
      assert.is_false(rl:try_acquire())
      assert.is_false(rl:try_acquire(0.5))
    end)
  end)

  it("serves waiters in order; try_acquire does not jump the line",
     function()
    run(function()
      local rl = P.rate_limiter(20, 2)
      rl:acquire(2)
      local order = {}
      local ts = {}
      for i, n in ipairs({2, 1, 2, 1}) do
        ts[i] = aio.spawn(function()
          rl:acquire(n)
          order[#order + 1] = i
        end)
      end
      aio.sleep(0)
      assert.matches("waiting>$", tostring(rl))
      assert.is_false(rl:try_acquire(0.001)) -- someone waits
      for i = 1, 4 do ts[i]:await() end
      assert.same({1, 2, 3, 4}, order)
    end)
  end)

  it("a waiter cancelled at the head takes nothing and delays nobody",
     function()
    run(function()
      local rl = P.rate_limiter(20, 5)
      rl:acquire(5)
      local big = aio.spawn(function() rl:acquire(5) end)   -- 0.25 s away
      local small = aio.spawn(function() rl:acquire(1) end) -- 0.05 s
      until_(function() return tostring(big):find("sleep") end)
      big:cancel()
      assert_cancelled(big)
      -- The timer heap fires in order of due time: the small waiter, due
      -- at most 0.05 s after the cancel, wakes before a sleep of 0.2 s
      -- started after it, unless it still waited behind the big one.
      local first
      local sentinel = aio.spawn(function()
        aio.sleep(0.2)
        first = first or "sentinel"
      end)
      small:await()
      first = first or "small"
      sentinel:await()
      assert.equal("small", first)
    end)
  end)

  it("a waiter cancelled in the line leaves it", function()
    run(function()
      local rl = P.rate_limiter(20, 1)
      rl:acquire()
      local ts, done = {}, {}
      for i = 1, 6 do
        ts[i] = aio.spawn(function()
          rl:acquire()
          done[#done + 1] = i
        end)
      end
      aio.sleep(0)
      for i = 2, 6, 2 do ts[i]:cancel() end
      for i = 1, 6 do
        if i % 2 == 0 then assert_cancelled(ts[i]) else ts[i]:await() end
      end
      assert.same({1, 3, 5}, done)
    end)
  end)

  it("no timer and no task is left once nobody waits", function()
    run(function()
      local before = task_set()
      local rl = P.rate_limiter(0.01, 1) -- a token every 100 s
      rl:acquire()
      local waiters = {}
      for i = 1, 3 do
        waiters[i] = aio.spawn(function() rl:acquire() end)
      end
      aio.sleep(0)
      for i = 1, 3 do waiters[i]:cancel() end
      for i = 1, 3 do assert_cancelled(waiters[i]) end
      for t in pairs(task_set()) do
        assert.is_true(before[t] or t == aio.current_task(), tostring(t))
      end
      assert.is_nil(tostring(rl):find("waiting"))
    end)
  end)

  it("a timeout around acquire takes no tokens", function()
    run(function()
      local rl = P.rate_limiter(0.01, 1)
      rl:acquire()
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0.01)
        rl:acquire()
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(rl:available() < 1)
      assert.is_nil(tostring(rl):find("waiting")) -- the line is free
    end)
  end)

  it("checks its arguments", function()
    run(function()
      assert.has_error(function() P.rate_limiter() end)
      assert.has_error(function() P.rate_limiter(0) end)
      assert.has_error(function() P.rate_limiter(math.huge) end)
      assert.has_error(function() P.rate_limiter(1, 0) end)
      local rl = P.rate_limiter(1, 2)
      assert.has_error(function() rl:acquire(3) end,
        "bad argument #2 to 'rate_limiter:acquire' " ..
        "(3 tokens exceed the burst of 2)")
      assert.has_error(function() rl:try_acquire(-1) end)
      assert.has_error(function() rl.acquire({}) end,
        "bad argument #1 to 'rate_limiter:acquire' " ..
        "(luaio.RateLimiter expected)")
      assert.equal(1, P.rate_limiter(0.5).burst)
      assert.equal(20, P.rate_limiter(20).burst)
    end)
  end)
end)
