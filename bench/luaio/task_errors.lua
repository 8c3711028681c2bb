-- task_errors: spawn N tasks that raise at once, then await each under
-- pcall.  Every failure keeps a report (traceback, spawn site), so this is
-- the cost of the error path; it also shows that failing tasks cost the
-- same each however many there are.
-- Prints "RESULT <wall ns per task> <CPU ns per task>".
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 100000

local function f() error("boom") end

local function round(n)
  local ts = {}
  for i = 1, n do ts[i] = aio.spawn(f) end
  for i = 1, n do
    local ok = pcall(ts[i].await, ts[i])
    assert(not ok)
  end
end

round(os.getenv("BENCH_WARM") and N or 2000) -- warm-up
collectgarbage()
local t0, c0 = aio.time(), os.clock()
round(N)
local dt, dc = aio.time() - t0, os.clock() - c0
print(string.format("RESULT %.1f %.1f", dt * 1e9 / N, dc * 1e9 / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
