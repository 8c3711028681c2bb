-- luaio.patterns.ttl_cache: single flight per key, expiry on a clock the
-- test controls (opts.clock), LRU eviction, failures not cached.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled
local until_, named = S.wait_until, S.named_tasks

-- A clock that moves only when told.
local function manual_clock()
  local c = {now = 0}
  c.fn = function() return c.now end
  return c
end

-- A loader that counts its calls per key and waits for gate if given.
local function counting(gate)
  local l = {calls = {}}
  l.fn = function(key)
    l.calls[key] = (l.calls[key] or 0) + 1
    if gate then gate:wait() end
    return key .. "#" .. l.calls[key]
  end
  return l
end

describe("ttl_cache", function()
  it("loads once and serves the cached value until it expires", function()
    run(function()
      local clock = manual_clock()
      local c = P.ttl_cache{ttl = 10, clock = clock.fn}
      local l = counting()
      assert.equal("a#1", c:get_or_load("a", l.fn))
      assert.equal("a#1", c:get_or_load("a", l.fn))
      assert.same({"a#1", true}, {c:get("a")})
      clock.now = 9.999
      assert.equal("a#1", c:get_or_load("a", l.fn))
      clock.now = 10
      assert.same({nil, false}, {c:get("a")})
      assert.equal("a#2", c:get_or_load("a", l.fn))
      assert.equal(2, l.calls.a)
    end)
  end)

  it("expires on the loop's clock by default", function()
    run(function()
      local c = P.ttl_cache{ttl = 0.01}
      c:set("k", "v")
      aio.sleep(0.01) -- never returns early
      assert.same({nil, false}, {c:get("k")})
    end)
  end)

  it("concurrent callers for one key share one load", function()
    run(function()
      local gate = aio.event()
      local c = P.ttl_cache{ttl = 10}
      local l = counting(gate)
      local ts = {}
      for i = 1, 5 do
        ts[i] = aio.spawn(function() return c:get_or_load("k", l.fn) end)
      end
      local other = aio.spawn(function() return c:get_or_load("j", l.fn) end)
      aio.sleep(0)
      gate:set()
      for i = 1, 5 do assert.equal("k#1", ts[i]:await()) end
      assert.equal("j#1", other:await())
      assert.same({k = 1, j = 1}, l.calls)
    end)
  end)

  it("a failed load reaches all its callers and is not cached", function()
    run(function()
      local gate = aio.event()
      local calls = 0
      local c = P.ttl_cache{ttl = 10}
      local function loader()
        calls = calls + 1
        gate:wait()
        if calls == 1 then error({reason = "backend down"}) end
        return "fine"
      end
      local a = aio.spawn(function() return c:get_or_load("k", loader) end)
      local b = aio.spawn(function() return c:get_or_load("k", loader) end)
      aio.sleep(0)
      gate:set()
      local _, ea = pcall(a.await, a)
      local _, eb = pcall(b.await, b)
      assert.equal("backend down", ea.reason)
      assert.equal(ea, eb)
      assert.same({nil, false}, {c:get("k")})
      assert.equal("fine", c:get_or_load("k", loader))
      assert.equal(2, calls)
    end)
  end)

  it("caches a failure for error_ttl when asked", function()
    run(function()
      local clock = manual_clock()
      local c = P.ttl_cache{ttl = 10, error_ttl = 1, clock = clock.fn}
      local calls = 0
      local function loader()
        calls = calls + 1
        error("nope", 0)
      end
      for _ = 1, 3 do
        local ok, e = pcall(c.get_or_load, c, "k", loader)
        assert.is_false(ok)
        assert.equal("nope", e)
      end
      assert.equal(1, calls)
      assert.same({nil, false}, {c:get("k")}) -- get never returns an error
      clock.now = 1
      pcall(c.get_or_load, c, "k", loader)
      assert.equal(2, calls)
    end)
  end)

  it("evicts the least recently used past max_entries", function()
    run(function()
      local c = P.ttl_cache{ttl = 10, max_entries = 2}
      c:set("a", 1)
      c:set("b", 2)
      assert.equal(1, c:get("a")) -- a is now the most recent
      c:set("c", 3)
      assert.same({nil, false}, {c:get("b")})
      assert.equal(1, c:get("a"))
      assert.equal(3, c:get("c"))
      c:get_or_load("d", function() return 4 end)
      assert.same({nil, false}, {c:get("a")})
      assert.equal(2, c:size())
    end)
  end)

  it("a cancelled caller leaves the load to the others", function()
    run(function()
      local gate = aio.event()
      local c = P.ttl_cache{ttl = 10}
      local l = counting(gate)
      local a = aio.spawn(function() return c:get_or_load("k", l.fn) end)
      local b = aio.spawn(function() return c:get_or_load("k", l.fn) end)
      aio.sleep(0)
      a:cancel()
      assert_cancelled(a)
      gate:set()
      assert.equal("k#1", b:await())
      assert.equal("k#1", c:get("k"))
    end)
  end)

  it("when every caller is cancelled, the load is cancelled too", function()
    run(function()
      local c = P.ttl_cache{ttl = 10}
      local seen
      local function loader()
        local ok, e = pcall(aio.sleep, math.huge)
        seen = ok or e
        error(e, 0)
      end
      local ts = {}
      for i = 1, 3 do
        ts[i] = aio.spawn(function() return c:get_or_load("k", loader) end)
      end
      aio.sleep(0)
      for i = 1, 3 do ts[i]:cancel() end
      for i = 1, 3 do assert_cancelled(ts[i]) end
      until_(function() return named("ttl_cache load") == 0 end)
      assert.is_true(aio.is_error(seen, "CancelledError"))
      assert.same({nil, false}, {c:get("k")})
      -- and the next caller starts afresh
      assert.equal("v", c:get_or_load("k", function() return "v" end))
    end)
  end)

  it("invalidate or set during a load keeps its value out", function()
    run(function()
      local gate = aio.event()
      local c = P.ttl_cache{ttl = 10}
      local l = counting(gate)
      local a = aio.spawn(function() return c:get_or_load("k", l.fn) end)
      aio.sleep(0)
      assert.is_false(c:invalidate("k"))
      gate:set()
      assert.equal("k#1", a:await()) -- its caller still gets it
      assert.same({nil, false}, {c:get("k")})
      gate:clear()
      local b = aio.spawn(function() return c:get_or_load("k", l.fn) end)
      aio.sleep(0)
      c:set("k", "fresh")
      gate:set()
      assert.equal("k#2", b:await())
      assert.equal("fresh", c:get("k"))
      assert.is_true(c:invalidate("k"))
    end)
  end)

  it("stores nil values, per-entry ttls, and clears", function()
    run(function()
      local clock = manual_clock()
      local c = P.ttl_cache{ttl = 10, clock = clock.fn}
      local calls = 0
      local function none() calls = calls + 1 end
      assert.is_nil(c:get_or_load("n", none))
      assert.is_nil(c:get_or_load("n", none))
      assert.equal(1, calls)
      assert.same({nil, true}, {c:get("n")})
      c:set("short", 1, 1)
      assert.equal(2, c:size())
      clock.now = 1
      assert.equal(1, c:size())
      c:clear()
      assert.equal(0, c:size())
      assert.matches("<ttl_cache 0 entries", tostring(c))
    end)
  end)

  it("checks its arguments", function()
    run(function()
      assert.has_error(function() P.ttl_cache{} end,
        "bad argument #1 to 'luaio.patterns.ttl_cache' (option 'ttl' expected)")
      assert.has_error(function() P.ttl_cache{ttl = 1, size = 3} end,
        "bad argument #1 to 'luaio.patterns.ttl_cache' " ..
        "(unknown option 'size')")
      assert.has_error(function() P.ttl_cache{ttl = 0} end)
      assert.has_error(function() P.ttl_cache{ttl = 1, max_entries = 0} end)
      local c = P.ttl_cache{ttl = 1}
      assert.has_error(function() c:get(nil) end)
      assert.has_error(function() c:get_or_load("k") end,
        "bad argument #3 to 'ttl_cache:get_or_load' " ..
        "(function expected, got nil)")
      assert.has_error(function() c:set("k", 1, -1) end)
    end)
  end)
end)
