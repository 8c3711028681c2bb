-- queue_pingpong: N items through aio.queue(100), one producer task and one
-- consumer task.  Prints "RESULT <wall ns per item> <CPU ns per item>".
local aio = require "luaio"
local N = tonumber(arg and arg[1]) or 1000000

local function round(n)
  local q = aio.queue(100)
  local prod = aio.spawn(function()
    for i = 1, n do q:put(i) end
  end)
  local cons = aio.spawn(function()
    for _ = 1, n do q:get() end
  end)
  prod:await()
  cons:await()
end

round(os.getenv("BENCH_WARM") and N or 10000) -- warm-up
collectgarbage()
local t0, c0 = aio.time(), os.clock()
round(N)
local dt, dc = aio.time() - t0, os.clock() - c0
print(string.format("RESULT %.1f %.1f", dt * 1e9 / N, dc * 1e9 / N))
os.exit(0) -- skip the teardown (keeps callgrind counts to the measured part)
