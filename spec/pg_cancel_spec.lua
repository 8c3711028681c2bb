-- aio.pg cancellation: a cancelled query sends a cancel request and the
-- task raises at once; the connection reads to the end of the cancelled
-- statement before it runs the next, so a late cancel never hits it.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

local function conn() return aio.pg.connect(P.unix_dsn()) end

describe("aio.pg cancellation", function()
  it("cancels pg_sleep(10) on the server; the same connection answers",
     function()
    run(function()
      local c <close> = conn()
      local other <close> = conn()
      local t0 = aio.time()
      local t = aio.spawn(c.fetchval, c, "select pg_sleep(10)")
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.is_true(aio.time() - t0 < 9) -- did not wait for the sleep
      assert.equal(1, c:fetchval("select 1"))
      assert.equal("idle", other:fetchval(
        "select state from pg_stat_activity where pid = $1", c:pid()))
      assert.is_false(c:in_transaction())
    end)
  end)

  it("wait_for and a timeout scope cancel the query the same way",
     function()
    run(function()
      local c <close> = conn()
      S.assert_raises("TimeoutError", aio.wait_for, function()
        return c:fetchval("select pg_sleep(10)")
      end, 0.1)
      assert.equal(2, c:fetchval("select 2"))
      S.assert_raises("TimeoutError", function()
        local _ <close> = aio.timeout(0.1)
        c:execute("select pg_sleep(10)")
      end)
      assert.equal(3, c:fetchval("select 3"))
    end)
  end)

  it("cancelled at every wait point, the connection stays usable",
     function()
    run(function()
      local c <close> = conn()
      c:execute("create temp table w (a int)")
      for i = 1, 40 do
        local sql = ("select $1::int + %d"):format(i) -- a new statement
        local t = aio.spawn(function()
          if i % 3 == 0 then
            return c:executemany("insert into w values ($1)",
                                 {{1}, {2}, {3}})
          end
          return c:fetchval(sql, i)
        end)
        for _ = 1, i % 5 do aio.sleep(0) end
        t:cancel()
        pcall(t.await, t)
        assert.equal(i, c:fetchval("select $1::int", i))
      end
    end)
  end)

  it("a late cancel never hits the next statement", function()
    run(function()
      local c <close> = conn()
      for i = 1, 30 do
        local t = aio.spawn(c.fetchval, c, "select pg_sleep(0.01)")
        aio.sleep(0)
        if i % 2 == 0 then aio.sleep(0) end
        t:cancel()
        pcall(t.await, t)
        -- long enough for a stray cancel request to land inside it
        assert.equal(i, c:fetchval("select $1::int from pg_sleep(0.02)", i))
      end
    end)
  end)

  it("a task waiting for the drain of a cancelled query can be cancelled",
     function()
    run(function()
      local c <close> = conn()
      local t = aio.spawn(c.fetchval, c, "select pg_sleep(10)")
      aio.sleep(0.05)
      t:cancel()
      S.assert_cancelled(t)
      local w = aio.spawn(c.fetchval, c, "select 1") -- waits for the drain
      aio.sleep(0)
      w:cancel()
      S.assert_cancelled(w)
      assert.equal(6, c:fetchval("select 6"))
    end)
  end)

  it("a task cancelled before it starts never sends its query", function()
    run(function()
      local c <close> = conn()
      c:execute("create temp table n (a int)")
      local t = aio.spawn(c.execute, c, "insert into n values (1)")
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(0, c:fetchval("select count(*) from n"))
    end)
  end)

  it("closing a connection under a running query: ConnectionError",
     function()
    run(function()
      local c = conn()
      local t = aio.spawn(c.fetchval, c, "select pg_sleep(10)")
      aio.sleep(0.05)
      c:close()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "ConnectionError"), tostring(e))
    end)
  end)
end)
