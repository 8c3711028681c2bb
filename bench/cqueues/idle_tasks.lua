-- idle_tasks on cqueues: N coroutines of the controller waiting on a
-- condition never signalled.
local cqueues = require "cqueues"
local C = dofile(arg[0]:match("^(.-)[^/]*$") .. "common.lua")
local N = tonumber(arg[1]) or 100000

C.run(function()
  local cond = C.condition.new()
  local cq = cqueues.running()
  local function park() cond:wait() end
  collectgarbage(); collectgarbage()
  local r0 = C.rss()
  for _ = 1, N do cq:wrap(park) end
  C.sleep(0)
  collectgarbage(); collectgarbage()
  local r1 = C.rss()
  print(string.format("RESULT %.1f", (r1 - r0) / N))
  os.exit(0)
end)
