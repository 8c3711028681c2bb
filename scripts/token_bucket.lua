-- A token bucket rate limiter (the asyncio guide's pattern): at most 100
-- requests a second, with bursts of up to 5.  The first 5 requests go at
-- once, the others wait in line for their token; try_acquire asks without
-- waiting.  The limiter has no timer of its own: only the task at the head
-- of the line sleeps, until its token is due.
--
--   luaio scripts/token_bucket.lua   or   lua5.4 scripts/token_bucket.lua
local aio = require "luaio"
local P = require "luaio.patterns"

local RATE, BURST, REQUESTS = 100, 5, 15

aio.run(function()
  local limiter = P.rate_limiter(RATE, BURST)
  local t0 = aio.time()
  local served = {}

  local function request(i)
    limiter:acquire()
    served[#served + 1] = i
  end

  local tasks = {}
  for i = 1, REQUESTS do tasks[i] = aio.spawn(request, i) end
  aio.sleep(0) -- each request runs once: the burst is served at once
  local at_once = #served
  for i = 1, REQUESTS do tasks[i]:await() end

  local took = aio.time() - t0
  local least = (REQUESTS - BURST) / RATE
  print(("%d requests served in order: %s"):format(REQUESTS,
        table.concat(served, " ")))
  print(("the first %d went at once: %s"):format(BURST, at_once >= BURST))
  print(("they took at least %.2f s: %s"):format(least, took >= least))
  -- try_acquire never waits: one token an hour, and a burst of 1.
  local hourly = P.rate_limiter(1 / 3600, 1)
  print("try_acquire: " .. tostring(hourly:try_acquire()) ..
        ", then " .. tostring(hourly:try_acquire()))
end)
