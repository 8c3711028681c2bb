-- luaio.patterns: loading the module, retry and scope (the other patterns
-- have a spec each: patterns_<name>_spec.lua).
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled

local NAMES = {"retry", "rate_limiter", "pool", "batcher", "event_bus",
               "ttl_cache", "shutdown", "scope"}

describe("luaio.patterns", function()
  it("has every pattern, and is also aio.patterns", function()
    for _, name in ipairs(NAMES) do
      assert.equal("function", type(P[name]), name)
    end
    assert.equal(P, aio.patterns)
  end)

  it("loads under a stock lua5.4 before luaio itself", function()
    if not S.stock_lua_loads() then
      return pending("this build's module does not load in a stock lua5.4")
    end
    local cpath = package.cpath
    local p = assert(io.popen(("LUA_CPATH='%s' lua5.4 -e '%s' 2>&1"):format(
      cpath, 'local P = require "luaio.patterns" ' ..
             'local aio = require "luaio" ' ..
             'print(aio.run(function() return P.retry(function(n) ' ..
             'if n < 2 then error("again") end return "ok", n end, ' ..
             '{base = 0}) end))')))
    local out = p:read("a")
    p:close()
    assert.equal("ok\t2\n", out)
  end)
end)

describe("retry", function()
  it("calls again after a failure and returns the results", function()
    run(function()
      local calls = {}
      local a, b = P.retry(function(n)
        calls[#calls + 1] = n
        if n < 3 then error("flaky", 0) end
        return "done", n
      end, {base = 0.001})
      assert.same({"done", 3}, {a, b})
      assert.same({1, 2, 3}, calls)
    end)
  end)

  it("raises the last error, with the attempts on a table", function()
    run(function()
      local n = 0
      local ok, e = pcall(P.retry, function()
        n = n + 1
        error({code = n})
      end, {attempts = 4, base = 0})
      assert.is_false(ok)
      assert.equal(4, e.code)
      assert.equal(4, e.attempts)
      ok, e = pcall(P.retry, function() error("plain", 0) end, {base = 0})
      assert.is_false(ok)
      assert.equal("plain", e) -- a string stays as it is
      local err = aio.error("ValueError", "bad")
      ok, e = pcall(P.retry, function() error(err) end, {base = 0})
      assert.is_false(ok)
      assert.equal(err, e) -- the same value
      assert.equal(3, e.attempts)
    end)
  end)

  it("retries only what retry_on accepts", function()
    run(function()
      local n = 0
      local ok, e = pcall(P.retry, function()
        n = n + 1
        error(n == 1 and "timeout" or "denied", 0)
      end, {attempts = 10, base = 0, retry_on = function(err, attempt)
        assert.equal(n, attempt)
        return err == "timeout"
      end})
      assert.is_false(ok)
      assert.equal("denied", e)
      assert.equal(2, n)
    end)
  end)

  it("never retries a cancellation", function()
    run(function()
      local n = 0
      local t = aio.spawn(P.retry, function()
        n = n + 1
        aio.sleep(math.huge)
      end, {attempts = 10, base = 0, retry_on = function() return true end})
      aio.sleep(0)
      t:cancel()
      assert_cancelled(t)
      assert.equal(1, n)
      n = 0
      t = aio.spawn(P.retry, function()
        n = n + 1
        error("down", 0)
      end, {attempts = 10, base = 100}) -- cancelled in the backoff sleep
      aio.sleep(0)
      t:cancel()
      assert_cancelled(t)
      assert.equal(1, n)
    end)
  end)

  it("an enclosing timeout bounds the whole", function()
    run(function()
      local n = 0
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0.02)
        return P.retry(function()
          n = n + 1
          error("down", 0)
        end, {attempts = math.huge, base = 0.005, factor = 1})
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"), tostring(e))
      assert.is_true(n >= 1)
    end)
  end)

  it("a per-attempt timeout inside fn is retried", function()
    run(function()
      local n = 0
      local r = P.retry(function()
        n = n + 1
        local _ <close> = aio.timeout(n < 3 and 0 or nil)
        aio.sleep(0)
        return n
      end, {base = 0})
      assert.equal(3, r)
    end)
  end)

  it("backs off exponentially up to max, without jitter exactly", function()
    run(function()
      local delays = {}
      local t0 = aio.time()
      pcall(P.retry, function() error("x", 0) end, {
        attempts = 6, base = 0.001, factor = 2, max = 0.006, jitter = false,
        on_retry = function(err, n, d)
          assert.equal("x", err)
          delays[n] = d
        end})
      assert.same({0.001, 0.002, 0.004, 0.006, 0.006}, delays)
      assert.is_true(aio.time() - t0 >= 0.019) -- slept them all
    end)
  end)

  it("with full jitter each delay is between 0 and the backoff", function()
    run(function()
      local delays = {}
      pcall(P.retry, function() error("x", 0) end, {
        attempts = 30, base = 0.0001, factor = 1.2, max = 0.0005,
        on_retry = function(_, n, d) delays[n] = d end})
      local distinct = {}
      for n, d in ipairs(delays) do
        local cap = math.min(0.0005, 0.0001 * 1.2 ^ (n - 1))
        assert.is_true(d >= 0 and d <= cap, ("%d: %g > %g"):format(n, d, cap))
        distinct[d] = true
      end
      assert.equal(29, #delays)
      assert.is_true(next(distinct, next(distinct)) ~= nil) -- they vary
    end)
  end)

  it("checks its arguments", function()
    run(function()
      assert.has_error(function() P.retry() end,
        "bad argument #1 to 'luaio.patterns.retry' " ..
        "(function expected, got nil)")
      assert.has_error(function() P.retry(print, {tries = 3}) end,
        "bad argument #2 to 'luaio.patterns.retry' (unknown option 'tries')")
      assert.has_error(function() P.retry(print, {attempts = 0}) end)
      assert.has_error(function() P.retry(print, {base = -1}) end)
      assert.has_error(function() P.retry(print, {jitter = "no"}) end)
      assert.has_error(function() P.retry(print, {retry_on = 1}) end)
    end)
  end)
end)

describe("scope", function()
  -- A pretend connection with a transaction that commits or rolls back.
  local function transaction_on(log)
    return P.scope(function(conn)
      aio.sleep(0) -- BEGIN takes a round trip
      log[#log + 1] = "begin " .. conn
      return conn
    end, function(conn, err)
      aio.sleep(0) -- so does COMMIT or ROLLBACK
      log[#log + 1] = (err and "rollback " or "commit ") .. conn
    end)
  end

  it("commits a block that ends, rolls back one that fails", function()
    run(function()
      local log = {}
      local transaction = transaction_on(log)
      do
        local c, _ <close> = transaction("db1")
        assert.equal("db1", c)
      end
      local ok, e = pcall(function()
        local _, _ <close> = transaction("db2")
        error("constraint violated", 0)
      end)
      assert.is_false(ok)
      assert.equal("constraint violated", e)
      assert.same({"begin db1", "commit db1", "begin db2", "rollback db2"},
                  log)
    end)
  end)

  it("a cancelled block rolls back, and release may still wait", function()
    run(function()
      local log = {}
      local transaction = transaction_on(log)
      local t = aio.spawn(function()
        local _, _ <close> = transaction("db")
        aio.sleep(math.huge)
      end)
      while #log < 1 do aio.sleep(0) end
      t:cancel()
      assert_cancelled(t)
      assert.same({"begin db", "rollback db"}, log)
    end)
  end)

  it("an acquire that fails releases nothing", function()
    run(function()
      local released = false
      local open = P.scope(function() error("refused", 0) end,
                           function() released = true end)
      local ok, e = pcall(function()
        local _, _ <close> = open()
      end)
      assert.is_false(ok)
      assert.equal("refused", e)
      assert.is_false(released)
    end)
  end)

  it("close releases early, once", function()
    run(function()
      local n = 0
      local open = P.scope(function() return 1 end,
                           function() n = n + 1 end)
      local _, g <close> = open()
      assert.equal("<guard open>", tostring(g))
      g:close()
      g:close()
      assert.equal(1, n)
      assert.equal("<guard released>", tostring(g))
    end)
  end)

  it("an error in release is raised from the close", function()
    run(function()
      local open = P.scope(function() return 1 end,
                           function() error("commit failed", 0) end)
      local ok, e = pcall(function()
        local _, _ <close> = open()
      end)
      assert.is_false(ok)
      assert.equal("commit failed", e)
    end)
  end)

  it("checks its arguments", function()
    assert.has_error(function() P.scope(print) end,
      "bad argument #2 to 'luaio.patterns.scope' (function expected, got nil)")
  end)
end)
