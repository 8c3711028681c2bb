-- aio.pg when the server goes away: pg_terminate_backend, and the server
-- stopped with `pg_ctl stop -m immediate` and started again.  Every waiter
-- hears ConnectionError; nothing is retried; new connections and pools
-- work once it is back.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

local function conn() return aio.pg.connect(P.unix_dsn()) end

describe("aio.pg and a server that goes away", function()
  it("pg_terminate_backend mid-query: ConnectionError", function()
    run(function()
      local c <close> = conn()
      local killer <close> = conn()
      local t = aio.spawn(c.fetchval, c, "select pg_sleep(10)")
      aio.sleep(0.1)
      killer:fetchval("select pg_terminate_backend($1)", c:pid())
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
      assert.is_false(c:alive())
      S.assert_raises("ConnectionError", c.fetchval, c, "select 1")
    end)
  end)

  it("the server dies: every waiter gets ConnectionError; then healed",
     function()
    run(function()
      local busy = conn()
      local idle = conn()
      local listening = conn()
      local l = listening:listen("gone")
      local p <close> = aio.pg.pool{dsn = P.dsn(), max = 2}
      assert.equal(1, p:fetchval("select 1"))
      local q = aio.spawn(busy.fetchval, busy, "select pg_sleep(30)")
      local r = aio.spawn(l.next, l)
      aio.sleep(0.1)
      P.server("kill")
      local ok, e = pcall(q.await, q)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
      ok, e = pcall(r.await, r)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
      S.wait_until(function() return not idle:alive() end)
      S.assert_raises("ConnectionError", idle.fetchval, idle, "select 1")
      S.assert_raises("ConnectionError", aio.pg.connect, P.unix_dsn())
      S.assert_raises("ConnectionError", p.fetchval, p, "select 1")
      P.server("restart")
      local c <close> = conn()
      assert.equal(1, c:fetchval("select 1"))
      assert.equal(2, p:fetchval("select 2")) -- the pool healed
      assert.equal(3, p:fetchval("select 3"))
      busy:close()
      idle:close()
      l:close()
      listening:close()
    end)
  end)
end)
