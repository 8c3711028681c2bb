-- semaphore on luv with sched.lua.
local S = dofile(arg[0]:match("^(.-)[^/]*$") .. "sched.lua")
local N = tonumber(arg[1]) or 100000

local function round(n)
  local sem = S.semaphore(10)
  local function worker()
    sem.acquire()
    S.sleep(0)
    sem.release()
  end
  local ts = {}
  for i = 1, n do ts[i] = S.spawn0(worker) end
  S.gather(ts)
end

S.run(function()
  round(os.getenv("BENCH_WARM") and N or 2000)
  collectgarbage()
  local w0, c0 = S.now(), os.clock()
  round(N)
  S.report(N, w0, c0)
  os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
end)
