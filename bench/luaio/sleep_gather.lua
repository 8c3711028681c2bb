-- sleep_gather: N concurrent 1 ms sleeps, each in its own task, gathered.
-- Prints "RESULT <wall ns per sleep> <CPU ns per sleep>": the whole batch / N.
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 100000

local function round(n)
  local ts = {}
  for i = 1, n do ts[i] = aio.spawn(aio.sleep, 0.001) end
  aio.gather(ts)
end

round(os.getenv("BENCH_WARM") and N or 2000) -- warm-up
collectgarbage()
local t0, c0 = aio.time(), os.clock()
round(N)
local dt, dc = aio.time() - t0, os.clock() - c0
print(string.format("RESULT %.1f %.1f", dt * 1e9 / N, dc * 1e9 / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
