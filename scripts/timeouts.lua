-- wait_for and a timeout scope (the asyncio guide's "Timeouts").
local aio = require "luaio"

aio.run(function()
  local function slow_operation(s)
    local ok, err = pcall(aio.sleep, s)
    if not ok then
      print("slow_operation: cancelled, cleaning up")
      error(err, 0) -- let the cancellation go on
    end
    return "finished after " .. s .. " s"
  end

  -- wait_for: a deadline for one awaitable.
  print("wait_for:", aio.wait_for(function() return slow_operation(0.01) end, 1))
  local ok, err = pcall(aio.wait_for, function() return slow_operation(1) end,
                        0.02)
  print("wait_for:", ok, tostring(err))

  -- A timeout scope: a deadline for a block of code.
  local scope
  ok, err = pcall(function()
    local t <close> = aio.timeout(0.02)
    scope = t
    slow_operation(1)
    print("not reached")
  end)
  print("timeout:", ok, tostring(err), "expired:", scope:expired())

  -- The deadline can move while the block runs.
  do
    local t <close> = aio.timeout(0.01)
    t:reschedule(1)
    print("rescheduled:", slow_operation(0.03))
  end
end)
