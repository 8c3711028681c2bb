-- spawn_await on luv with sched.lua.
local S = dofile(arg[0]:match("^(.-)[^/]*$") .. "sched.lua")
local N = tonumber(arg[1]) or 200000
local function f() return true end

local function round(n)
  local ts = {}
  for i = 1, n do ts[i] = S.spawn0(f) end
  for i = 1, n do S.await(ts[i]) end
end

S.run(function()
  round(os.getenv("BENCH_WARM") and N or 2000)
  collectgarbage()
  local w0, c0 = S.now(), os.clock()
  round(N)
  S.report(N, w0, c0)
  os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
end)
