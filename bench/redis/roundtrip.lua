-- bench/redis/roundtrip.lua PORT N [MODE]: GET/SET round trips per
-- second, sequential and with 50 tasks pipelining on one connection (MODE
-- "sequential" or "pipelined": only that one, for its CPU time).
local aio = require "luaio"
local port, N = tonumber(arg[1]), tonumber(arg[2]) or 20000
local MODE = arg[3]
aio.run(function()
  local r <close> = aio.redis.connect{host = "127.0.0.1", port = port}
  for i = 1, 1000 do r:call("SET", "bench:k", i) end
  local t0 = aio.time()
  if MODE ~= "pipelined" then
    for i = 1, N / 2 do
      r:call("SET", "bench:k", i)
      r:call("GET", "bench:k")
    end
    print(("sequential %.3e"):format((aio.time() - t0) / N))
  end
  if MODE == "sequential" then return end
  local per = N // 50
  local tasks = {}
  t0 = aio.time()
  for t = 1, 50 do
    tasks[t] = aio.spawn(function()
      for i = 1, per // 2 do
        r:call("SET", "bench:p" .. t, i)
        r:call("GET", "bench:p" .. t)
      end
    end)
  end
  for t = 1, 50 do tasks[t]:await() end
  print(("pipelined %.3e"):format((aio.time() - t0) / (50 * (per // 2) * 2)))
end)
