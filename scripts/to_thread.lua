-- Blocking the loop, fixed with aio.to_thread (the asyncio guide's
-- run_in_executor).  A task ticks every 10 ms.  A blocking call made on
-- the loop stalls it; the same call made through aio.to_thread runs on a
-- worker thread of the pool, and the ticker keeps ticking.  CPU-bound Lua
-- code moves the same way: the function crosses by copy (its only
-- upvalue is _ENV) and its results come back.
--
--   luaio scripts/to_thread.lua   or   lua5.4 scripts/to_thread.lua
local aio = require "luaio"

-- Sum of the primes below n, the slow way: pure Lua, no waits.
local function prime_sum(n)
  local sum = 0
  for i = 2, n - 1 do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false; break end
    end
    if prime then sum = sum + i end
  end
  return sum
end

aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do
      aio.sleep(0.01)
      ticks = ticks + 1
    end
  end)
  aio.sleep(0.05)

  local function measure(what, fn)
    local before = ticks
    local result = fn()
    local during = ticks - before
    print(("%-34s %s"):format(what .. ":", during == 0
      and "the ticker stalled (0 ticks)" or "the ticker kept ticking"))
    return during, result
  end

  local blocked = measure('os.execute("sleep 0.2")',
                          function() os.execute("sleep 0.2") end)
  local moved = measure('to_thread(os.execute, "sleep 0.2")', function()
    return aio.to_thread("os.execute", "sleep 0.2")
  end)
  local _, on_loop = measure("prime_sum(300000) on the loop",
                             function() return prime_sum(300000) end)
  local _, off_loop = measure("prime_sum(300000) in to_thread", function()
    return aio.to_thread(prime_sum, 300000)
  end)
  ticker:cancel()
  print(("ticks while blocked < in to_thread: %s"):format(
    tostring(blocked < moved)))
  print(("same sum on and off the loop: %s"):format(
    tostring(on_loop == off_loop)))
end)
