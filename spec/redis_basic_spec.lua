-- aio.redis against a real redis-server: replies, pipelining, errors,
-- transactions.
local aio = require "luaio"
local S = require "support"
local R = require "redis_support"
local run = S.run
local K = R.key

local function client() return aio.redis.connect(R.opts()) end

describe("aio.redis replies", function()
  it("maps every reply type", function()
    run(function()
      local r <close> = client()
      assert.equal("OK", r:call("SET", K"s", "v\0w"))         -- status
      assert.equal("PONG", r:call("PING"))
      assert.equal("v\0w", r:call("GET", K"s"))               -- bulk
      assert.equal("", (function()
        r:call("SET", K"e", "")
        return r:call("GET", K"e")
      end)())
      assert.is_nil(r:call("GET", K"missing"))                -- nil
      assert.equal(1, r:call("INCR", K"n"))                   -- integer
      assert.equal("integer", math.type(r:call("INCRBY", K"n", 41)))
      assert.equal(-5, r:call("DECRBY", K"neg", 5))
      assert.same({"v\0w", aio.null, "42"},                  -- array
                  r:call("MGET", K"s", K"missing", K"n"))
      assert.same({}, r:call("LRANGE", K"nolist", 0, -1))
      r:call("RPUSH", K"l", 1, 2.5, "x")                     -- numbers as argv
      assert.same({"1", "2.5", "x"}, r:call("LRANGE", K"l", 0, -1))
      local ints = {0, -1, 7, 10, math.maxinteger, math.mininteger, 3.0, -0.0}
      r:call("RPUSH", K"ints", table.unpack(ints))
      local want = {}
      for i, v in ipairs(ints) do want[i] = tostring(v) end
      assert.same(want, r:call("LRANGE", K"ints", 0, -1))
      local many = {}                          -- more arguments than fit inline
      for i = 1, 40 do many[i] = i * 1000003 - 20 end
      r:call("RPUSH", K"many", table.unpack(many))
      local got = r:call("LRANGE", K"many", 0, -1)
      for i = 1, 40 do assert.equal(tostring(many[i]), got[i]) end
      local e = S.assert_raises("RedisError", r.call, r, "LPUSH", K"s", "x")
      assert.equal("WRONGTYPE", e.code)
      assert.matches("WRONGTYPE", e.message)
      e = S.assert_raises("RedisError", r.call, r, "NOSUCHCOMMAND")
      assert.equal("ERR", e.code)
      -- nested arrays
      r:call("ZADD", K"z", 1, "a", 2, "b")
      assert.same({"a", "1", "b", "2"},
                  r:call("ZRANGE", K"z", 0, -1, "WITHSCORES"))
      local scan = r:call("SCAN", 0, "MATCH", K"z", "COUNT", 1000)
      assert.is_string(scan[1])
      assert.is_table(scan[2])
      -- the connection goes on after errors
      assert.equal("PONG", r:call("PING"))
    end)
  end)

  it("100 concurrent INCRs on one connection pipeline and all count",
     function()
    run(function()
      local r <close> = client()
      r:call("SET", K"c", 0)
      local ts, seen = {}, {}
      for i = 1, 100 do
        ts[i] = aio.spawn(function() return r:call("INCR", K"c") end)
      end
      for i = 1, 100 do seen[ts[i]:await()] = true end
      for i = 1, 100 do assert.is_true(seen[i]) end
      assert.equal("100", r:call("GET", K"c"))
    end)
  end)

  it("connects over a Unix socket, and by name", function()
    run(function()
      local u <close> = aio.redis.connect{path = R.socket()}
      assert.equal("PONG", u:call("PING"))
      local n <close> = aio.redis.connect{host = "localhost", port = R.port()}
      assert.equal("PONG", n:call("PING"))
      local d <close> = aio.redis.connect{path = R.socket(), db = 1}
      d:call("SET", K"db1", "x")
      assert.is_nil(u:call("GET", K"db1"))
      d:call("DEL", K"db1")
    end)
  end)

  it("a refused connection or a missing socket is a ConnectionError",
     function()
    run(function()
      -- a port that was free a moment ago: bind one, close it
      local srv = assert(aio.start_server(function() end, "127.0.0.1", 0))
      local port = srv.port
      srv:close()
      local e = S.assert_raises("ConnectionError", aio.redis.connect,
                                {host = "127.0.0.1", port = port})
      assert.equal(port, e.port)
      S.assert_raises("ConnectionError", aio.redis.connect,
                      {path = R.dir .. "/nonexistent.sock"})
      S.assert_raises("ConnectionError", aio.redis.connect,
                      {host = "no-such-host.invalid", port = 1})
    end)
  end)

  it("misuse raises: bad options, stateful commands, a closed client",
     function()
    run(function()
      assert.has_error(function() aio.redis.connect{bogus = 1} end)
      assert.has_error(function() aio.redis.connect{} end)
      local r = client()
      assert.has_error(function() r:call("MULTI") end)
      assert.has_error(function() r:call("SUBSCRIBE", "x") end)
      assert.has_error(function() r:call({}) end)
      assert.has_error(function() r:call("GET", {}) end)
      assert.equal("PONG", r:call("PING"))
      r:close()
      r:close()
      assert.has_error(function() r:call("PING") end,
                       "attempt to use a closed client")
    end)
  end)
end)

describe("aio.redis transactions", function()
  it("MULTI/EXEC returns every reply, errors in place", function()
    run(function()
      local r <close> = client()
      r:call("SET", K"str", "x")
      local res = r:transaction(function(tx)
        assert.equal("QUEUED", tx:call("SET", K"t", 1))
        tx:call("INCR", K"t")
        tx:call("LPUSH", K"str", "y") -- fails at EXEC
        tx:call("GET", K"t")
      end)
      assert.equal("OK", res[1])
      assert.equal(2, res[2])
      assert.is_true(aio.is_error(res[3], "RedisError"))
      assert.equal("WRONGTYPE", res[3].code)
      assert.equal("2", res[4])
    end)
  end)

  it("an error in fn discards, and the shared connection never saw MULTI",
     function()
    run(function()
      local r <close> = client()
      r:call("SET", K"u", "before")
      local ok, e = pcall(r.transaction, r, function(tx)
        tx:call("SET", K"u", "inside")
        -- the shared connection is not in the transaction
        assert.equal("before", r:call("GET", K"u"))
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", e)
      assert.equal("before", r:call("GET", K"u"))
      -- the pooled connection came back clean
      local res = r:transaction(function(tx) tx:call("GET", K"u") end)
      assert.same({"before"}, res)
    end)
  end)

  it("WATCH: a key changed by someone else makes EXEC return nil",
     function()
    run(function()
      local r <close> = client()
      r:call("SET", K"w", 1)
      local res = r:transaction(function(tx)
        r:call("SET", K"w", 2) -- another connection changes it
        tx:call("SET", K"w", 3)
      end, {watch = {K"w"}})
      assert.is_nil(res)
      assert.equal("2", r:call("GET", K"w"))
    end)
  end)

  it("a cancelled transaction leaves nothing behind", function()
    run(function()
      local r <close> = client()
      r:call("SET", K"x", "0")
      local started = aio.event()
      local t = aio.spawn(r.transaction, r, function(tx)
        tx:call("SET", K"x", "1")
        started:set()
        aio.sleep(10)
      end)
      started:wait()
      t:cancel()
      S.assert_cancelled(t)
      assert.equal("0", r:call("GET", K"x"))
      assert.same({"0"}, r:transaction(function(tx) tx:call("GET", K"x") end))
    end)
  end)
end)
