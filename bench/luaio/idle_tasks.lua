-- idle_tasks: RSS per task for N tasks parked on an event never set.
-- Prints "RESULT <bytes per task>".
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 100000

local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

local ev = aio.event()
local function park() ev:wait() end

collectgarbage(); collectgarbage()
local r0 = rss()
for _ = 1, N do aio.spawn(park) end
aio.sleep(0) -- every task starts and parks
collectgarbage(); collectgarbage()
local r1 = rss()
print(string.format("RESULT %.1f", (r1 - r0) / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
