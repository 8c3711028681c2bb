-- aio.pg pools: the max bound as the server sees it (pg_stat_activity),
-- asyncpg's reset on release, dead connections replaced, timeouts.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

math.randomseed(os.time(), math.floor(os.clock() * 1e6))
local function app() return ("luaio_pool_%d"):format(math.random(1, 1e9)) end

local function pool(name, extra)
  local o = {dsn = P.dsn("application_name=" .. name)}
  for k, v in pairs(extra or {}) do o[k] = v end
  return aio.pg.pool(o)
end

describe("aio.pg pools", function()
  it("never more than max connections open on the server", function()
    run(function()
      local name = app()
      local p <close> = pool(name, {max = 3})
      local watcher <close> = aio.pg.connect(P.unix_dsn())
      local most, done = 0, false
      local w = aio.spawn(function()
        while not done do
          local n = watcher:fetchval("select count(*) from pg_stat_activity "
                                     .. "where application_name = $1", name)
          if n > most then most = n end
          aio.sleep(0.01)
        end
      end)
      local ts = {}
      for i = 1, 20 do
        ts[i] = aio.spawn(p.fetchval, p, "select $1::int from pg_sleep(0.03)",
                          i)
      end
      for i = 1, 20 do assert.equal(i, ts[i]:await()) end
      done = true
      w:await()
      assert.is_true(most <= 3, "saw " .. most)
      assert.is_true(most >= 2, "saw " .. most)
      assert.is_true(p:stats().open <= 3)
    end)
  end)

  it("a released connection is reset, its statement cache kept",
     function()
    run(function()
      local p <close> = pool(app(), {max = 1})
      local pid
      do
        local c <close> = p:acquire()
        pid = c:pid()
        c:execute("select pg_advisory_lock(4242)")
        c:execute_script("set statement_timeout = 12345")
        c:listen("resetme")
        c:execute_script("begin; declare cur cursor with hold for select 1")
        assert.equal(42, c:fetchval("select $1::int", 42))
      end
      local c <close> = p:acquire()
      assert.equal(pid, c:pid()) -- the same connection, reset
      assert.is_false(c:in_transaction())
      assert.equal("0", c:fetchval("show statement_timeout"))
      assert.equal(0, c:fetchval("select count(*) from pg_locks where "
                                 .. "locktype = 'advisory' and pid = $1", pid))
      assert.same({}, c:fetch("select * from pg_listening_channels()"))
      assert.equal(0, c:fetchval("select count(*) from pg_cursors where name = 'cur'"))
      assert.is_true(c:fetchval("select count(*) from pg_prepared_statements")
                     > 0)
    end)
  end)

  it("a connection returned mid-query is drained and reset", function()
    run(function()
      local p <close> = pool(app(), {max = 1})
      local t = aio.spawn(function()
        local c <close> = p:acquire()
        local tx <close> = c:transaction()
        c:execute("select pg_sleep(10)")
      end)
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.is_false(p:fetchval("select pg_is_in_recovery()"))
      local c <close> = p:acquire()
      assert.is_false(c:in_transaction())
      assert.equal(1, p:stats().open)
    end)
  end)

  it("min connections are opened at the first use", function()
    run(function()
      local p <close> = pool(app(), {min = 3, max = 5})
      assert.equal(1, p:fetchval("select 1"))
      S.wait_until(function() return p:stats().idle >= 3 end)
      assert.equal(3, p:stats().open)
      assert.has_error(function()
        aio.pg.pool{dsn = P.dsn(), min = 6, max = 5}
      end)
    end)
  end)

  it("acquire_timeout", function()
    run(function()
      local p <close> = pool(app(), {max = 1, acquire_timeout = 0.1})
      local c <close> = p:acquire()
      S.assert_raises("TimeoutError", p.acquire, p)
      S.assert_raises("TimeoutError", p.fetchval, p, "select 1")
      c:close()
      assert.equal(1, p:fetchval("select 1"))
    end)
  end)

  it("a terminated connection is replaced on demand", function()
    run(function()
      local p <close> = pool(app(), {max = 2})
      local killer <close> = aio.pg.connect(P.unix_dsn())
      local c = p:acquire()
      local raw, pid = c._conn, c:pid()
      c:close()
      assert.is_true(killer:fetchval("select pg_terminate_backend($1)", pid))
      S.wait_until(function() return not raw:alive() end)
      local newpid = p:fetchval("select pg_backend_pid()")
      assert.not_equal(pid, newpid)
      assert.equal(1, p:stats().open)
    end)
  end)

  it("a released connection cannot be used; close and bad options",
     function()
    run(function()
      local p = pool(app())
      local c = p:acquire()
      c:close()
      c:close()
      assert.has_error(function() c:fetchval("select 1") end,
                       "attempt to use a released connection")
      assert.has_error(function() aio.pg.pool{dsn = P.dsn(), bogus = 1} end)
      assert.has_error(function() aio.pg.pool{} end)
      p:close()
      assert.has_error(function() p:fetchval("select 1") end)
    end)
  end)
end)
