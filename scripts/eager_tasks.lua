-- Eager tasks: with aio.set_eager(true), spawn runs the new task at once
-- until it first waits; a task that never waits is done on return.
local aio = require "luaio"

aio.run(function()
  local order = {}
  local function job(name)
    order[#order + 1] = name .. " starts"
    aio.sleep(0)
    order[#order + 1] = name .. " ends"
  end

  local t = aio.spawn(job, "lazy")
  order[#order + 1] = "after spawn"
  t:await()
  print("default: " .. table.concat(order, ", "))

  order = {}
  aio.set_eager(true)
  t = aio.spawn(job, "eager")
  order[#order + 1] = "after spawn"
  t:await()
  local quick = aio.spawn(function() return "cached" end)
  print("eager:   " .. table.concat(order, ", "))
  print("a task that never waits is done at once:", quick:done(),
        quick:result())
  aio.set_eager(false)
end)
