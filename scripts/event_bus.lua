-- An event bus (the asyncio guide's pattern): the shop publishes order
-- events, and three subscribers take them at their own pace, each with a
-- bounded buffer of its own.  Publishing never waits unless a subscriber
-- asked for that (on_full = "wait"); a subscriber that may lose old events
-- says "drop_oldest"; one that must not lose any unnoticed gets an error
-- when it falls behind ("error", the default).  <close> unsubscribes.
--
--   luaio scripts/event_bus.lua   or   lua5.4 scripts/event_bus.lua
local aio = require "luaio"
local P = require "luaio.patterns"

aio.run(function()
  local bus <close> = P.event_bus()

  -- Email: every order gets its mail; the shop waits rather than lose one.
  local email = bus:subscribe("order", {size = 2, on_full = "wait"})
  local mailer = aio.spawn(function()
    local sent = {}
    for order in email:iter() do
      aio.sleep(0.001) -- sending takes a while
      sent[#sent + 1] = order.id
    end
    return table.concat(sent, " ")
  end)

  -- A dashboard only cares about the latest orders.
  local dashboard = bus:subscribe("order", {size = 3,
                                            on_full = "drop_oldest"})

  -- An audit log that is never read: it fails, and says so.
  local audit = bus:subscribe("order", {size = 4})

  for id = 1, 8 do bus:publish("order", {id = id}) end
  print("published 8 orders")

  local latest = {}
  while dashboard:pending() > 0 do
    latest[#latest + 1] = dashboard:next().id
  end
  print(("dashboard shows the latest: %s (dropped %d)")
        :format(table.concat(latest, " "), dashboard:dropped()))

  local got = {}
  local ok, err = pcall(function()
    for order in audit:iter() do got[#got + 1] = order.id end
  end)
  print(("audit read %s, then: %s"):format(table.concat(got, " "),
                                           ok and "the end" or err.type))

  dashboard:close() -- unsubscribes
  print("subscribers left: " .. bus:subscribers("order"))
  bus:close() -- the mailer gets what is buffered, then its loop ends
  print("mailer sent: " .. mailer:await())
end)
