-- aio.redis: subscribe and psubscribe, a slow consumer.
local aio = require "luaio"
local S = require "support"
local R = require "redis_support"
local run = S.run
local K = R.key

describe("aio.redis pub/sub", function()
  it("subscribe: messages in order, {channel, data}", function()
    run(function()
      local r <close> = aio.redis.connect(R.opts())
      local s <close> = aio.redis.subscribe(R.opts(), K"c1", K"c2")
      assert.equal(1, r:call("PUBLISH", K"c1", "one"))
      r:call("PUBLISH", K"c2", "two")
      r:call("PUBLISH", K"other", "never")
      r:call("PUBLISH", K"c1", "three\0bin")
      local got = {}
      for m in s:iter() do
        got[#got + 1] = m
        if #got == 3 then break end
      end
      assert.same({{channel = K"c1", data = "one"},
                   {channel = K"c2", data = "two"},
                   {channel = K"c1", data = "three\0bin"}}, got)
    end)
  end)

  it("psubscribe gives the pattern too", function()
    run(function()
      local r <close> = aio.redis.connect(R.opts())
      local s <close> = aio.redis.psubscribe({path = R.socket()}, K"news.*")
      r:call("PUBLISH", K"news.sport", "goal")
      assert.same({pattern = K"news.*", channel = K"news.sport",
                   data = "goal"}, s:next())
    end)
  end)

  it("closing ends the iteration; the server forgets the subscriber",
     function()
    run(function()
      local r <close> = aio.redis.connect(R.opts())
      local s = aio.redis.subscribe(R.opts(), K"gone")
      local reader = aio.spawn(function()
        local n = 0
        for _ in s:iter() do n = n + 1 end
        return n
      end)
      r:call("PUBLISH", K"gone", "x")
      S.wait_until(function() return tostring(s):find("0 queued") end)
      aio.sleep(0.02)
      s:close()
      assert.equal(1, reader:await())
      assert.is_nil(s:next())
      S.wait_until(function()
        return r:call("PUBSUB", "NUMSUB", K"gone")[2] == 0
      end)
    end)
  end)

  it("a cancelled reader leaves the messages queued", function()
    run(function()
      local r <close> = aio.redis.connect(R.opts())
      local s <close> = aio.redis.subscribe(R.opts(), K"cq")
      local t = aio.spawn(s.next, s)
      aio.sleep(0)
      t:cancel()
      S.assert_cancelled(t)
      r:call("PUBLISH", K"cq", "after")
      assert.same({channel = K"cq", data = "after"}, s:next())
    end)
  end)

  it("a slow consumer: the server drops it over its output limit, "
     .. "reported as ConnectionError after the queued messages", function()
    run(function()
      local r <close> = aio.redis.connect(R.opts())
      r:call("CONFIG", "SET", "client-output-buffer-limit",
             "pubsub 8mb 2mb 60")
      local s <close> = aio.redis.subscribe(R.opts(), K"flood")
      local big = ("x"):rep(1024 * 1024)
      for _ = 1, 40 do r:call("PUBLISH", K"flood", big) end
      local n = 0
      local ok, e = pcall(function()
        for m in s:iter() do
          assert.equal(#big, #m.data)
          n = n + 1
        end
      end)
      r:call("CONFIG", "SET", "client-output-buffer-limit",
             "pubsub 32mb 8mb 60")
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
      assert.is_true(n < 40)
    end)
  end)
end)
