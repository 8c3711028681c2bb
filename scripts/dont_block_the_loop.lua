-- Don't block the loop (the asyncio guide's warning, shown).  A task ticks
-- every 10 ms.  A blocking call (os.execute) stalls the whole loop, so the
-- ticker misses every tick while it runs; the same 0.2 s wait done through
-- aio.exec (a child process the loop waits for) or aio.sleep lets the
-- ticker go on.
--
--   luaio scripts/dont_block_the_loop.lua   or   lua5.4 scripts/...
local aio = require "luaio"

aio.run(function()
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do
      aio.sleep(0.01)
      ticks = ticks + 1
    end
  end)
  aio.sleep(0.05) -- let it get going

  local function measure(what, fn)
    local before = ticks
    fn()
    local during = ticks - before
    print(("%-28s %s"):format(what .. ":", during == 0
      and "the ticker stalled (0 ticks)"
      or during >= 3 and "the ticker kept ticking"
      or "the ticker barely ran"))
    return during
  end

  local blocked = measure('os.execute("sleep 0.2")',
                          function() os.execute("sleep 0.2") end)
  local exec = measure('aio.exec("sleep", {"0.2"})',
                       function() aio.exec("sleep", {"0.2"}) end)
  local slept = measure("aio.sleep(0.2)", function() aio.sleep(0.2) end)
  ticker:cancel()
  print(("ticks while blocked < while waiting in aio.exec: %s"):format(
    tostring(blocked < exec)))
  print(("ticks while blocked < while waiting in aio.sleep: %s"):format(
    tostring(blocked < slept)))
end)
