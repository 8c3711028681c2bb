-- luaio.patterns.event_bus: topics, per-subscriber bounded buffers with
-- wait / drop_oldest / error, <close> unsubscribes.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled

local function drain(sub)
  local got = {}
  while sub:pending() > 0 do got[#got + 1] = sub:next() end
  return got
end

describe("event_bus", function()
  it("delivers to the subscribers of the topic, in order", function()
    run(function()
      local bus = P.event_bus()
      local a <close> = bus:subscribe("orders")
      local b <close> = bus:subscribe("orders")
      local c <close> = bus:subscribe("users")
      assert.equal(0, bus:publish("nobody", 1))
      assert.equal(2, bus:publish("orders", {id = 1}))
      assert.equal(2, bus:publish("orders", {id = 2}))
      assert.equal(1, bus:publish("users", false)) -- false is a value
      assert.equal(1, a:next().id)
      assert.equal(2, a:next().id)
      assert.same({{id = 1}, {id = 2}}, drain(b))
      assert.is_false(c:next())
      assert.equal(2, bus:subscribers("orders"))
      assert.matches("<subscription orders 0/100>", tostring(a))
    end)
  end)

  it("iter waits for values and ends when the subscription closes",
     function()
    run(function()
      local bus = P.event_bus()
      local sub = bus:subscribe("t")
      local reader = aio.spawn(function()
        local got = {}
        for v in sub:iter() do got[#got + 1] = v end
        return got
      end)
      aio.sleep(0)
      for i = 1, 3 do
        bus:publish("t", i)
        aio.sleep(0)
      end
      sub:close()
      assert.same({1, 2, 3}, reader:await())
      assert.equal(0, bus:subscribers("t"))
      assert.has_error(function() sub:next() end)
      sub:close() -- harmless
    end)
  end)

  it("<close> unsubscribes", function()
    run(function()
      local bus = P.event_bus()
      do
        local _ <close> = bus:subscribe("t")
        assert.equal(1, bus:subscribers("t"))
      end
      assert.equal(0, bus:subscribers("t"))
      assert.equal(0, bus:publish("t", 1))
    end)
  end)

  it("drop_oldest keeps the newest values; publish never waits", function()
    run(function()
      local bus = P.event_bus()
      local sub <close> = bus:subscribe("t", {size = 2,
                                              on_full = "drop_oldest"})
      local ran = false
      aio.spawn(function() ran = true end)
      for i = 1, 5 do assert.equal(1, bus:publish("t", i)) end
      assert.is_false(ran)
      assert.equal(3, sub:dropped())
      assert.same({4, 5}, drain(sub))
    end)
  end)

  it("a subscriber that never reads fails; the publisher goes on",
     function()
    run(function()
      local bus = P.event_bus()
      local slow <close> = bus:subscribe("t", {size = 3}) -- on_full "error"
      local fast <close> = bus:subscribe("t", {size = 100})
      local ran = false
      aio.spawn(function() ran = true end)
      for i = 1, 10 do bus:publish("t", i) end
      assert.is_false(ran) -- no publish waited
      assert.equal(1, bus:subscribers("t"))
      assert.matches("failed>$", tostring(slow))
      assert.equal(10, fast:pending())
      -- the slow one gets what it had, then the error at the gap
      assert.same({1, 2, 3}, {slow:next(), slow:next(), slow:next()})
      local ok, e = pcall(slow.next, slow)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "QueueFull"), tostring(e))
      assert.matches("fell behind", e.message)
      ok = pcall(slow.next, slow)
      assert.is_false(ok) -- and again
    end)
  end)

  it("on_full = 'wait' makes publish wait for room, in order", function()
    run(function()
      local bus = P.event_bus()
      local sub <close> = bus:subscribe("t", {size = 1, on_full = "wait"})
      local other <close> = bus:subscribe("t", {size = 10,
                                                on_full = "drop_oldest"})
      bus:publish("t", 1)
      local p2 = aio.spawn(function() return bus:publish("t", 2) end)
      local p3 = aio.spawn(function() return bus:publish("t", 3) end)
      aio.sleep(0)
      assert.is_false(p2:done())
      assert.is_false(p3:done())
      assert.equal(1, other:pending()) -- delivered to nobody meanwhile
      local got = {}
      for _ = 1, 3 do got[#got + 1] = sub:next() end
      assert.same({1, 2, 3}, got)
      assert.equal(2, p2:await())
      assert.equal(2, p3:await())
      assert.same({1, 2, 3}, drain(other))
    end)
  end)

  it("a publish cancelled while it waits delivers to nobody", function()
    run(function()
      local bus = P.event_bus()
      local sub <close> = bus:subscribe("t", {size = 1, on_full = "wait"})
      local other <close> = bus:subscribe("t")
      bus:publish("t", 1)
      local p = aio.spawn(function() bus:publish("t", 2) end)
      local q = aio.spawn(function() bus:publish("t", 3) end)
      aio.sleep(0)
      p:cancel()
      assert_cancelled(p)
      assert.same({1}, drain(other))
      assert.equal(1, sub:next())
      q:await()
      assert.equal(3, sub:next())
      assert.same({3}, drain(other))
    end)
  end)

  it("a waiting publisher goes on when the full subscriber closes",
     function()
    run(function()
      local bus = P.event_bus()
      local sub = bus:subscribe("t", {size = 1, on_full = "wait"})
      local other <close> = bus:subscribe("t")
      bus:publish("t", 1)
      local p = aio.spawn(function() return bus:publish("t", 2) end)
      aio.sleep(0)
      sub:close()
      assert.equal(1, p:await())
      assert.same({1, 2}, drain(other))
    end)
  end)

  it("a reader cancelled after it was handed a value leaves it", function()
    run(function()
      local bus = P.event_bus()
      local sub <close> = bus:subscribe("t")
      local r = aio.spawn(function() return sub:next() end)
      aio.sleep(0)
      bus:publish("t", "v")
      r:cancel()
      assert_cancelled(r)
      assert.equal("v", sub:next())
    end)
  end)

  it("close ends every subscription after what is buffered", function()
    run(function()
      local bus = P.event_bus()
      local sub = bus:subscribe("t")
      local full = bus:subscribe("u", {size = 1, on_full = "wait"})
      bus:publish("t", 1)
      bus:publish("u", 1)
      local waiting = aio.spawn(function() bus:publish("u", 2) end)
      local reader = aio.spawn(function()
        local got = {}
        for v in sub:iter() do got[#got + 1] = v end
        return got
      end)
      aio.sleep(0)
      bus:close()
      assert.same({1}, reader:await())
      local ok, e = pcall(waiting.await, waiting)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
      assert.equal(1, full:next())
      assert.is_nil(full:next())
      ok, e = pcall(bus.publish, bus, "t", 1)
      assert.is_false(ok)
      assert.matches("event bus is closed", tostring(e))
      assert.has_error(function() bus:subscribe("t") end)
      bus:close() -- harmless
    end)
  end)

  it("checks its arguments", function()
    run(function()
      local bus = P.event_bus()
      assert.has_error(function() bus:publish(nil, 1) end,
        "bad argument #2 to 'event_bus:publish' (topic expected)")
      assert.has_error(function() bus:publish("t", nil) end,
        "bad argument #3 to 'event_bus:publish' (value expected)")
      assert.has_error(function() bus:subscribe("t", {sise = 1}) end,
        "bad argument #3 to 'event_bus:subscribe' (unknown option 'sise')")
      assert.has_error(function() bus:subscribe("t", {on_full = "block"}) end)
      assert.has_error(function() bus:subscribe("t", {size = 0}) end)
      assert.has_error(function() bus.publish({}, "t", 1) end)
    end)
  end)

  it("many subscribers and values, nothing lost", function()
    run(function()
      local bus = P.event_bus()
      local n = math.floor(2000 * S.SCALE) + 10
      local readers = {}
      for i = 1, 5 do
        local sub = bus:subscribe("t", {size = 8, on_full = "wait"})
        readers[i] = aio.spawn(function()
          local sum = 0
          for v in sub:iter() do
            sum = sum + v
            if v % 3 == i % 3 then aio.sleep(0) end
          end
          return sum
        end)
      end
      for v = 1, n do bus:publish("t", v) end
      bus:close()
      for i = 1, 5 do assert.equal(n * (n + 1) // 2, readers[i]:await()) end
    end)
  end)
end)
