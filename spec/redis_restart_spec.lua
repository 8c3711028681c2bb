-- aio.redis: a server that dies gives every waiter ConnectionError; the
-- next call connects again once it is back.  A server of its own (not the
-- shared fixture), stopped with `redis-cli shutdown nosave`.
local aio = require "luaio"
local S = require "support"
local run = S.run

local SCRIPT = "spec/redis_server.sh"

local function sh(...)
  local r = aio.exec("sh", {SCRIPT, ...})
  assert(r.status == 0, r.stderr)
end

describe("aio.redis and a server that goes away", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    run(function() sh("start", dir) end)
  end)

  after_each(function()
    run(function() sh("stop", dir) end)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("shutdown: ConnectionError to every waiter and while it is down, "
     .. "then healed", function()
    run(function()
      local f = assert(io.open(dir .. "/port"))
      local port = tonumber(f:read("l"))
      f:close()
      local r <close> = aio.redis.connect{host = "127.0.0.1", port = port}
      assert.equal("OK", r:call("SET", "k", "v"))
      -- waiters: blocking commands on pooled connections, and a pipeline
      -- held up behind CLIENT PAUSE on the shared one
      local blockers = {}
      for i = 1, 3 do
        blockers[i] = aio.spawn(r.call, r, "BLPOP", "nothing" .. i, 0)
      end
      S.wait_until(function()
        local n = 0
        for _ in r:call("CLIENT", "LIST"):gmatch("cmd=blpop") do n = n + 1 end
        return n == 3
      end)
      local cli = aio.exec("redis-cli", {"-s", dir .. "/r.sock",
                                         "shutdown", "nosave"})
      assert.is_truthy(cli)
      for i = 1, 3 do
        local ok, e = pcall(blockers[i].await, blockers[i])
        assert.is_false(ok)
        assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
      end
      -- while it is down: clear errors, no hang
      for _ = 1, 3 do
        S.assert_raises("ConnectionError", r.call, r, "GET", "k")
      end
      sh("restart", dir)
      assert.equal("PONG", r:call("PING"))
      assert.is_nil(r:call("GET", "k")) -- nosave: a fresh server
      assert.equal("OK", r:call("SET", "k", "again"))
      assert.same({"again"}, r:transaction(function(tx)
        tx:call("GET", "k")
      end))
      assert.is_nil(r:call("BLPOP", "nothing", 0.05))
    end)
  end)
end)
