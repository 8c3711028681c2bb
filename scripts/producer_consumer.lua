-- Producer and consumers: one producer puts 12 jobs into a bounded queue,
-- three consumers take them, and a clean shutdown stops the consumers once
-- every job is done.  Runs under `luaio` and under a stock lua5.4 that
-- finds the luaio module.
local aio = require "luaio"

local NJOBS, NCONSUMERS = 12, 3

aio.run(function()
  local q = aio.queue(4) -- the producer waits while 4 jobs are queued
  local seen = {}        -- job -> times processed

  local function consumer(id)
    local n = 0
    -- iter() yields jobs until the queue is shut down and drained.
    for job in q:iter() do
      for _ = 1, job % 3 do aio.sleep(0) end -- some work
      seen[job] = (seen[job] or 0) + 1
      n = n + 1
      print(("consumer %d processed job %d"):format(id, job))
      q:task_done()
    end
    print(("consumer %d stopped after %d jobs"):format(id, n))
    return n
  end

  local consumers = {}
  for id = 1, NCONSUMERS do consumers[id] = aio.spawn(consumer, id) end

  for job = 1, NJOBS do
    q:put(job)
    print(("producer put job %d (%d queued)"):format(job, q:qsize()))
  end

  q:join()     -- every job put got its task_done
  q:shutdown() -- the consumers' loops end
  local total = 0
  for id = 1, NCONSUMERS do total = total + consumers[id]:await() end

  local once = 0
  for job = 1, NJOBS do
    if seen[job] == 1 then once = once + 1 end
  end
  print(("every item processed once: %d of %d"):format(once, NJOBS))
  print(("consumers processed %d jobs in all"):format(total))
  print("queue: " .. tostring(q))
end)
