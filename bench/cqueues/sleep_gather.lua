-- sleep_gather on cqueues: N promises each running cqueues.sleep(0.001).
local C = dofile(arg[0]:match("^(.-)[^/]*$") .. "common.lua")
local N = tonumber(arg[1]) or 100000

local function round(n)
  local ps = {}
  for i = 1, n do ps[i] = C.promise.new(C.sleep, 0.001) end
  for i = 1, n do ps[i]:get() end
end

C.run(function()
  round(os.getenv("BENCH_WARM") and N or 2000)
  collectgarbage()
  local w0, c0 = C.now(), os.clock()
  round(N)
  C.report(N, w0, c0)
  os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
end)
