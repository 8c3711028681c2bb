-- spawn_await: spawn N tasks that return at once, then await them all.
-- Prints "RESULT <wall ns per task> <CPU ns per task>".
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 200000

local function f() return true end

local function round(n)
  local ts = {}
  for i = 1, n do ts[i] = aio.spawn(f) end
  for i = 1, n do ts[i]:await() end
end

round(os.getenv("BENCH_WARM") and N or 2000) -- warm-up
collectgarbage()
local t0, c0 = aio.time(), os.clock()
round(N)
local dt, dc = aio.time() - t0, os.clock() - c0
print(string.format("RESULT %.1f %.1f", dt * 1e9 / N, dc * 1e9 / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
