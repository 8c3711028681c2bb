-- Rate limiting with a semaphore (the asyncio guide's pattern): ten jobs
-- are started at once, but a semaphore lets at most three run at a time.
-- The semaphore is FIFO, so jobs start in the order they asked, and each
-- permit is released by <close> even if a job fails.
--
--   luaio scripts/rate_limit.lua      or      lua5.4 scripts/rate_limit.lua
local aio = require "luaio"

local LIMIT, JOBS = 3, 10

aio.run(function()
  local sem = aio.semaphore(LIMIT)
  local running, most = 0, 0

  -- A stand-in for a request to a service that allows LIMIT at once.
  local function fetch(i)
    if sem:locked() then print(("job %d waits for a permit"):format(i)) end
    local _ <close> = sem:acquire()
    running = running + 1
    most = math.max(most, running)
    print(("job %d starts"):format(i))
    aio.sleep(0.01 * (1 + i % 3))
    running = running - 1
    return "page-" .. i
  end

  local tasks, results = {}, {}
  for i = 1, JOBS do tasks[i] = aio.spawn(fetch, i) end
  for i = 1, JOBS do results[i] = tasks[i]:await() end

  print("results: " .. table.concat(results, " "))
  print(("at most %d of %d jobs ran at once (limit %d)"):format(most, JOBS,
                                                               LIMIT))
  print(("permits free at the end: %d"):format(sem:value()))
end)
