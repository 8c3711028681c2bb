-- aio.channel between hosts: order, many senders and receivers, a full
-- channel that waits without blocking the loop, closing, and cancelled
-- waits that lose nothing.
local aio = require "luaio"
local S = require "support"
local run = S.run

describe("aio.channel", function()
  it("carries 100,000 messages from a worker in order", function()
    run(function()
      local n = S.BIG
      local ch = aio.channel(64)
      local w = aio.worker(function(out, count)
        for i = 1, count do out:send(i) end
        out:close()
      end, ch, n)
      local want = 1
      for v in ch:iter() do
        assert(v == want, "out of order")
        want = want + 1
      end
      assert.equal(n + 1, want)
      w:join()
    end)
  end)

  it("loses and duplicates nothing with 4 senders and 4 receivers",
     function()
    run(function()
      local per = math.floor(5000 * S.SCALE) + 10
      local ch = aio.channel(16)
      local senders, receivers = {}, {}
      for s = 1, 4 do
        senders[s] = aio.worker(function(c, first, count)
          for i = first, first + count - 1 do c:send(i) end
        end, ch, (s - 1) * per + 1, per)
      end
      for r = 1, 4 do
        receivers[r] = aio.worker(function(c)
          local got = {}
          for v in c:iter() do got[#got + 1] = v end
          return got
        end, ch)
      end
      for _, w in ipairs(senders) do w:join() end
      ch:close()
      local seen, total = {}, 0
      for _, w in ipairs(receivers) do
        for _, v in ipairs(w:join()) do
          assert(not seen[v], "duplicated")
          seen[v] = true
          total = total + 1
        end
      end
      assert.equal(4 * per, total)
    end)
  end)

  it("makes send wait while full, and the loop keeps ticking", function()
    run(function()
      local ch = aio.channel(2)
      ch:send(1)
      ch:send(2)
      local ticks, sent = 0, false
      local ticker = aio.spawn(function()
        while true do ticks = ticks + 1; aio.sleep(0.001) end
      end)
      local sender = aio.spawn(function() ch:send(3); sent = true end)
      aio.sleep(0.05)
      assert.is_false(sent)
      assert.is_true(ticks > 3)
      local w = aio.worker(function(c)
        local got = {}
        for _ = 1, 3 do got[#got + 1] = c:recv() end
        return got
      end, ch)
      assert.are.same({1, 2, 3}, w:join())
      sender:await()
      assert.is_true(sent)
      ticker:cancel()
    end)
  end)

  it("gives a message taken by a cancelled receiver to the next",
     function()
    run(function()
      local ch = aio.channel()
      local a = aio.spawn(function() return ch:recv() end)
      aio.sleep(0)
      local b = aio.spawn(function() return ch:recv() end)
      aio.sleep(0)
      ch:send("only one")  -- wakes a
      a:cancel()           -- before a runs: the message goes on to b
      S.assert_cancelled(a)
      assert.equal("only one", b:await())
      assert.equal(0, ch:len())
    end)
  end)

  it("gives a message to a receiver that waits on another host", function()
    run(function()
      local ch, back = aio.channel(), aio.channel()
      local w = aio.worker(function(c, b)
        b:send("waiting")
        return c:recv()
      end, ch, back)
      assert.equal("waiting", back:recv())
      local t = aio.spawn(function() return ch:recv() end)
      aio.sleep(0.01)
      t:cancel()
      S.assert_cancelled(t)
      ch:send("for the worker")
      assert.equal("for the worker", w:join())
    end)
  end)

  it("leaves nothing behind from a cancelled send", function()
    run(function()
      local ch = aio.channel(1)
      ch:send("first")
      local t = aio.spawn(function() ch:send("second") end)
      aio.sleep(0.01)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(1, ch:len())
      assert.equal("first", ch:recv())
      assert.equal(0, ch:len())
    end)
  end)

  it("returns nil once closed and drained; send then raises", function()
    run(function()
      local ch = aio.channel()
      local waiting = aio.spawn(function() return ch:recv() end)
      ch:send("a")
      assert.equal("a", waiting:await())
      local w = aio.worker(function(c) return c:recv(), c:recv() end, ch)
      aio.sleep(0.02)
      ch:send("b")
      ch:close()
      local x, y = w:join()
      assert.equal("b", x)
      assert.is_nil(y)
      assert.is_true(ch:closed())
      S.assert_raises("ChannelClosed", ch.send, ch, "c")
      assert.has_error(function() ch:send(nil) end)
    end)
  end)

  it("crosses inside a message, shared by reference", function()
    run(function()
      local reply = aio.channel()
      local w = aio.worker(function()
        local aio = require "luaio"
        local msg = aio.parent:recv()
        msg.reply:send(msg.n * 2)
      end)
      w:send({reply = reply, n = 21})
      assert.equal(42, reply:recv())
      w:join()
    end)
  end)
end)
