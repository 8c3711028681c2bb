-- aio.redis: blocking commands, cancellation, the reply watchdog.
local aio = require "luaio"
local S = require "support"
local R = require "redis_support"
local run = S.run
local K = R.key

local function client(extra) return aio.redis.connect(R.opts(extra)) end

describe("aio.redis blocking commands", function()
  it("BLPOP with a timeout returns nil, and does not stall the shared "
     .. "connection", function()
    run(function()
      local r <close> = client()
      local order = {}
      local b = aio.spawn(function()
        local v = r:call("BLPOP", K"empty", 0.2)
        order[#order + 1] = "blpop"
        return v
      end)
      aio.sleep(0)
      assert.equal("PONG", r:call("PING"))
      order[#order + 1] = "ping"
      assert.is_nil(b:await())
      assert.same({"ping", "blpop"}, order)
    end)
  end)

  it("BLPOP gets what another task pushes", function()
    run(function()
      local r <close> = client()
      local b = aio.spawn(r.call, r, "BLPOP", K"q", 0)
      S.wait_until(function()
        local clients = r:call("CLIENT", "LIST")
        return clients:find("cmd=blpop") ~= nil
      end)
      r:call("RPUSH", K"q", "item")
      assert.same({K"q", "item"}, b:await())
    end)
  end)

  it("a cancelled BLPOP closes its connection: a later push is not lost",
     function()
    run(function()
      local r <close> = client()
      local b = aio.spawn(r.call, r, "BLPOP", K"q2", 0)
      S.wait_until(function()
        return r:call("CLIENT", "LIST"):find("cmd=blpop") ~= nil
      end)
      b:cancel()
      S.assert_cancelled(b)
      S.wait_until(function()
        return r:call("CLIENT", "LIST"):find("cmd=blpop") == nil
      end)
      r:call("RPUSH", K"q2", "kept")
      assert.same({"kept"}, r:call("LRANGE", K"q2", 0, -1))
      -- and the next blocking command gets a fresh connection
      assert.same({K"q2", "kept"}, r:call("BLPOP", K"q2", 1))
    end)
  end)
end)

describe("aio.redis cancellation", function()
  it("a cancelled command's reply is read and discarded; the next replies "
     .. "stay in order", function()
    run(function()
      local r <close> = client()
      r:call("SET", K"a", "A")
      r:call("SET", K"b", "B")
      for _ = 1, 20 do
        local t1 = aio.spawn(r.call, r, "GET", K"a")
        local t2 = aio.spawn(r.call, r, "GET", K"b")
        aio.sleep(0) -- both sent
        t1:cancel()
        assert.equal("B", t2:await())
        S.assert_cancelled(t1)
        assert.equal("A", r:call("GET", K"a"))
      end
    end)
  end)

  it("a timeout around a call raises TimeoutError and the connection "
     .. "goes on", function()
    run(function()
      local r <close> = client()
      local other <close> = client()
      other:call("CLIENT", "PAUSE", 300, "ALL")
      S.assert_raises("TimeoutError", aio.wait_for, function()
        return r:call("PING")
      end, 0.05)
      assert.equal("PONG", r:call("PING"))
    end)
  end)

  it("a connection owing replies that hears nothing is closed by the "
     .. "watchdog: ConnectionError, then the next call reconnects",
     function()
    run(function()
      local r <close> = client{reply_timeout = 0.1}
      local other <close> = client()
      other:call("CLIENT", "PAUSE", 1000, "ALL")
      local e = S.assert_raises("ConnectionError", r.call, r, "PING")
      assert.matches("no reply", e.message)
      S.wait_until(function()
        local ok, v = pcall(r.call, r, "PING")
        return ok and v == "PONG"
      end)
    end)
  end)

  it("the watchdog counts from the last reply: replies owed for longer "
     .. "than reply_timeout, each coming within it, keep the connection",
     function()
    run(function()
      -- Each script keeps the server busy 0.2 s; sent 0.1 s apart (Redis
      -- answers a batch read at once all together), four owe replies
      -- for 0.8 s, every gap well under the 0.5 s timeout.
      local busy = "local t = redis.call('TIME') "
                   .. "local s = t[1] * 1e6 + t[2] repeat t = "
                   .. "redis.call('TIME') until t[1] * 1e6 + t[2] - s "
                   .. ">= 200000 return 1"
      local r <close> = client{reply_timeout = 0.5}
      local tasks = {}
      for i = 1, 4 do
        tasks[i] = aio.spawn(function()
          aio.sleep((i - 1) * 0.1)
          return r:call("EVAL", busy, 0)
        end)
      end
      for i = 1, 4 do assert.equal(1, tasks[i]:await()) end
      assert.equal("PONG", r:call("PING"))
      assert.matches("0 owed", tostring(r.conn))
    end)
  end)
end)
