-- queue_pingpong on luv with sched.lua's bounded queue.
local S = dofile(arg[0]:match("^(.-)[^/]*$") .. "sched.lua")
local N = tonumber(arg[1]) or 1000000

local function round(n)
  local q = S.queue(100)
  local p = S.spawn0(function() for i = 1, n do q.put(i) end end)
  local c = S.spawn0(function() for _ = 1, n do q.get() end end)
  S.await(p)
  S.await(c)
end

S.run(function()
  round(os.getenv("BENCH_WARM") and N or 10000)
  collectgarbage()
  local w0, c0 = S.now(), os.clock()
  round(N)
  S.report(N, w0, c0)
  os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
end)
