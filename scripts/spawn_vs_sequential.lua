-- Spawn versus sequential waits.
--
-- Waiting for three jobs one after another takes the sum of their
-- durations; spawning them as tasks and then waiting for all takes about
-- the longest one.  The durations are scaled down, and the script prints
-- comparisons rather than times, so its output is the same on every run.
local aio = require "luaio"

local durations = {0.05, 0.08, 0.03}

local function job(s) aio.sleep(s) return s end

local function sum(t)
  local n = 0
  for _, v in ipairs(t) do n = n + v end
  return n
end

aio.run(function()
  -- Sequential: each call waits before the next one starts.
  local started = aio.time()
  for _, s in ipairs(durations) do job(s) end
  local sequential = aio.time() - started

  -- Concurrent: spawn all of them, then wait for each task.
  started = aio.time()
  local tasks = {}
  for i, s in ipairs(durations) do tasks[i] = aio.spawn(job, s) end
  for _, t in ipairs(tasks) do t:await() end
  local concurrent = aio.time() - started

  -- The same with gather, which spawns the functions itself.
  started = aio.time()
  local fns = {}
  for i, s in ipairs(durations) do fns[i] = function() return job(s) end end
  local results = aio.gather(fns)
  local gathered = aio.time() - started

  print(("jobs: %d, results in order: %s"):format(
    #durations, tostring(results[1] == durations[1] and
                         results[3] == durations[3])))
  print("sequential took at least the sum: " ..
        tostring(sequential >= sum(durations)))
  print("concurrent took at least the longest: " ..
        tostring(concurrent >= math.max(table.unpack(durations))))
  print("concurrent faster: " .. tostring(concurrent < sequential))
  print("gather faster: " .. tostring(gathered < sequential))
end)
