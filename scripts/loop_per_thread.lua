-- One event loop per thread (the asyncio guide's answer for using every
-- core), as luaio workers: each worker is a thread with its own loop and
-- host, running its own tasks; they share nothing and talk through a
-- channel.  Here 4 workers each run 50 concurrent tasks and report how
-- many finished, then the main host gathers the reports.
--
--   luaio scripts/loop_per_thread.lua   or   lua5.4 scripts/...
local aio = require "luaio"

local function worker_main(reports, ntasks)
  local aio = require "luaio"
  local done = 0
  local tasks = {}
  for i = 1, ntasks do
    tasks[i] = aio.spawn(function()
      aio.sleep((i % 5) / 1000)
      done = done + 1
    end)
  end
  aio.gather(tasks)
  reports:send({worker = aio.worker_id(), done = done})
  return done
end

aio.run(function()
  local reports = aio.channel()
  local group = aio.workers(4, worker_main, reports, 50)
  local seen = {}
  for _ = 1, 4 do
    local r = reports:recv()
    seen[#seen + 1] = r.worker
    assert(r.done == 50)
  end
  local total = 0
  for _, r in ipairs(group:join()) do total = total + r[1] end
  table.sort(seen)
  local distinct = 1
  for i = 2, #seen do if seen[i] ~= seen[i - 1] then distinct = distinct + 1 end end
  print(("4 workers, each its own loop: %d tasks done, %d distinct worker ids, "
         .. "main host id %d"):format(total, distinct, aio.worker_id()))
end)
