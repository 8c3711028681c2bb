-- bench/workers/workers.lua: luaio's workers, measured.
--   luaio bench/workers/workers.lua [scale]
local aio = require "luaio"
local scale = tonumber(arg and arg[1]) or 1

local function now() return aio.time() end

aio.run(function()
  -- a round trip: parent -> worker -> parent
  local n = math.floor(20000 * scale)
  local w = aio.worker(function()
    local aio = require "luaio"
    for v in aio.parent:iter() do aio.parent:send(v) end
  end)
  for i = 1, 200 do w:send(i); w:recv() end -- warm
  local t0 = now()
  for i = 1, n do w:send(i); w:recv() end
  print(("round trip (w:send, w:recv): %.1f us"):format((now() - t0) / n * 1e6))
  w:cancel()
  pcall(w.join, w)

  -- one way: small tables from a worker
  n = math.floor(200000 * scale)
  local ch = aio.channel(1024)
  local sender = aio.worker(function(c, count)
    for i = 1, count do c:send({i, "x"}) end
    c:close()
  end, ch, n)
  t0 = now()
  local got = 0
  for _ in ch:iter() do got = got + 1 end
  local dt = now() - t0
  sender:join()
  print(("one way, small tables: %.2f M/s (%d)"):format(got / dt / 1e6, got))

  -- an empty to_thread on a warm pool
  n = math.floor(5000 * scale)
  for _ = 1, 100 do aio.to_thread(function() end) end
  t0 = now()
  for _ = 1, n do aio.to_thread(function() end) end
  print(("empty to_thread, warm pool: %.1f us"):format((now() - t0) / n * 1e6))

  -- a worker ready: start to its first message
  n = math.floor(50 * scale) + 1
  local total = 0
  for _ = 1, n do
    t0 = now()
    local r = aio.worker(function()
      local aio = require "luaio"
      aio.parent:send(1)
    end)
    r:recv()
    total = total + (now() - t0)
    r:join()
  end
  print(("worker ready: %.2f ms"):format(total / n * 1e3))

  -- CPU-bound: one job, then the same split over 2 workers; beside it
  -- the peer, stock lua5.4 processes (one, then two side by side), which
  -- shows how much of a second core the machine gives right now.  The
  -- best of 5 rounds of each.
  local function spin(k)
    local x = 0
    for i = 1, k do x = x + i % 7 end
    return x
  end
  local k = math.floor(3e7 * scale)
  local code = "local x = 0 for i = 1, tonumber(arg[1]) do x = x + i % 7 end"
  local function lua_procs(count, each)
    local procs = {}
    for i = 1, count do
      procs[i] = function()
        return aio.exec("lua5.4", {"-e", code, "-", tostring(each)},
                        {input = ""})
      end
    end
    aio.gather(procs)
  end
  local has_lua = pcall(lua_procs, 1, 1)
  local best = {math.huge, math.huge, math.huge, math.huge}
  local function timed(i, fn, ...)
    local t = now()
    fn(...)
    best[i] = math.min(best[i], now() - t)
  end
  for _ = 1, 5 do
    timed(1, aio.to_thread, spin, k)
    timed(2, aio.gather, function() return aio.to_thread(spin, k // 2) end,
          function() return aio.to_thread(spin, k // 2) end)
    if has_lua then
      timed(3, lua_procs, 1, k)
      timed(4, lua_procs, 2, k // 2)
    end
  end
  print(("CPU-bound split over 2 workers: %.2fx the single-core time "
         .. "(%.2f s vs %.2f s)"):format(best[2] / best[1], best[2], best[1]))
  if has_lua then
    print(("peer, 2 lua5.4 processes: %.2fx one process (%.2f s vs %.2f s)")
          :format(best[4] / best[3], best[4], best[3]))
  end
end)
