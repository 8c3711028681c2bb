-- queue_pingpong on cqueues, a bounded queue on two conditions.
local C = dofile(arg[0]:match("^(.-)[^/]*$") .. "common.lua")
local N = tonumber(arg[1]) or 1000000

local function round(n)
  local q = C.queue(100)
  local p = C.promise.new(function() for i = 1, n do q.put(i) end end)
  local c = C.promise.new(function() for _ = 1, n do q.get() end end)
  p:get()
  c:get()
end

C.run(function()
  round(os.getenv("BENCH_WARM") and N or 10000)
  collectgarbage()
  local w0, c0 = C.now(), os.clock()
  round(N)
  C.report(N, w0, c0)
  os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
end)
