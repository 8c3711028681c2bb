-- semaphore: N tasks through aio.semaphore(10); each acquires, sleeps 0,
-- releases.  Prints
-- "RESULT <wall ns per task> <CPU ns per task>".
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 100000

local function round(n)
  local sem = aio.semaphore(10)
  local function worker()
    sem:acquire()
    aio.sleep(0)
    sem:release()
  end
  local ts = {}
  for i = 1, n do ts[i] = aio.spawn(worker) end
  aio.gather(ts)
end

round(os.getenv("BENCH_WARM") and N or 2000) -- warm-up
collectgarbage()
local t0, c0 = aio.time(), os.clock()
round(N)
local dt, dc = aio.time() - t0, os.clock() - c0
print(string.format("RESULT %.1f %.1f", dt * 1e9 / N, dc * 1e9 / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
