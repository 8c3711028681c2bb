-- A tour of luaio: tasks, gather, timeouts, task groups, a queue.
-- Run: luaio scripts/demo.lua   (or lua5.4 with the module on its cpath)
local aio = require "luaio"

local function say(fmt, ...) print(string.format(fmt, ...)) end

aio.run(function()
  local t0 = aio.time()
  local function elapsed() return (aio.time() - t0) * 1000 end

  -- Tasks run concurrently: three 100 ms jobs take about 100 ms, not 300.
  local function job(name, ms)
    aio.sleep(ms / 1000)
    return name .. " done"
  end
  local results = aio.gather(function() return job("a", 100) end,
                             function() return job("b", 100) end,
                             function() return job("c", 100) end)
  say("gather: %s, %s, %s in about %d ms (not 300)", results[1], results[2],
      results[3], math.floor(elapsed() / 100 + 0.5) * 100)

  -- A timeout scope cancels what runs inside it.
  local ok, err = pcall(function()
    local t <close> = aio.timeout(0.05)
    aio.sleep(10)
  end)
  say("timeout: %s -> %s", tostring(ok), tostring(err))

  -- wait_for gives the inner work a deadline.
  ok, err = pcall(aio.wait_for, function() aio.sleep(1) end, 0.02)
  say("wait_for: %s", aio.is_error(err, "TimeoutError") and "TimeoutError"
                      or tostring(err))

  -- A task group: when one child fails, the others are cancelled and
  -- the group raises an ErrorGroup with the real errors.
  local cancelled = 0
  ok, err = pcall(aio.taskgroup, function(tg)
    tg:spawn(function() aio.sleep(0.01) error("the database is down", 0) end)
    for _ = 1, 3 do
      tg:spawn(function()
        local ok2 = pcall(aio.sleep, 10)
        if not ok2 then cancelled = cancelled + 1 end
      end)
    end
  end)
  say("taskgroup: %s with %d error: %s; %d siblings cancelled", err.type,
      #err.errors, err.errors[1], cancelled)

  -- Producer and consumers around a bounded queue, shut down cleanly.
  local q = aio.queue(2)
  local seen = {}
  local consumers = {}
  for id = 1, 3 do
    consumers[id] = aio.spawn(function()
      for item in q:iter() do seen[#seen + 1] = item aio.sleep(0.001) end
    end)
  end
  for i = 1, 9 do q:put(i) end
  q:shutdown()
  aio.gather(consumers)
  table.sort(seen)
  say("queue: 3 consumers took %d items: %s", #seen, table.concat(seen, " "))

  -- Cancellation reaches a task wherever it waits, and its cleanup runs.
  local t = aio.spawn(function()
    local cleanup <close> = setmetatable({}, {__close = function()
      say("cancel: cleanup ran in %s", tostring(aio.current_task()))
    end})
    aio.sleep(10)
  end)
  t:set_name("sleeper")
  aio.sleep(0)
  t:cancel()
  ok, err = pcall(t.await, t)
  say("cancel: %s, cancelled() = %s", tostring(err), tostring(t:cancelled()))
end)
