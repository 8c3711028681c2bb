-- aio.pg transactions: <close> commits at a normal end, rolls back on an
-- error or a cancellation; nested ones are savepoints.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

local function setup()
  local c = aio.pg.connect(P.unix_dsn())
  c:execute("create temp table t (a int primary key)")
  return c
end

local function count(c) return c:fetchval("select count(*) from t") end

describe("aio.pg transactions", function()
  it("commits at the end of the block", function()
    run(function()
      local c <close> = setup()
      do
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        assert.is_true(c:in_transaction())
      end
      assert.is_false(c:in_transaction())
      assert.equal(1, count(c))
    end)
  end)

  it("rolls back when an error leaves the block", function()
    run(function()
      local c <close> = setup()
      local ok, e = pcall(function()
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", e)
      assert.equal(0, count(c))
      -- a failed statement inside: the error is raised, all rolled back
      ok, e = pcall(function()
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        c:execute("insert into t values (1)")
      end)
      assert.is_true(aio.is_error(e, "DatabaseError"))
      assert.equal("23505", e.sqlstate)
      assert.equal(0, count(c))
      assert.is_false(c:in_transaction())
    end)
  end)

  it("rolls back when a cancellation leaves it, even mid-statement",
     function()
    run(function()
      local c <close> = setup()
      local t = aio.spawn(function()
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        c:execute("select pg_sleep(10)")
      end)
      aio.sleep(0.2)
      t:cancel()
      S.assert_cancelled(t)
      assert.is_false(c:in_transaction())
      assert.equal(0, count(c))
      -- cancelled between statements
      t = aio.spawn(function()
        local tx <close> = c:transaction()
        c:execute("insert into t values (2)")
        aio.sleep(10)
      end)
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(0, count(c))
    end)
  end)

  it("nested transactions are savepoints", function()
    run(function()
      local c <close> = setup()
      do
        local outer <close> = c:transaction()
        c:execute("insert into t values (1)")
        pcall(function()
          local inner <close> = c:transaction()
          c:execute("insert into t values (2)")
          c:execute("insert into t values (1)") -- fails: inner rolls back
        end)
        do
          local inner <close> = c:transaction()
          c:execute("insert into t values (3)")
        end
      end
      assert.same({{a = 1}, {a = 3}}, c:fetch("select a from t order by a"))
    end)
  end)

  it("isolation and readonly", function()
    run(function()
      local c <close> = setup()
      do
        local tx <close> = c:transaction{isolation = "serializable",
                                         readonly = true}
        assert.equal("serializable",
                     c:fetchval("select current_setting('transaction_isolation')"))
        local e = S.assert_raises("DatabaseError", c.execute, c,
                                  "create table ro_never (a int)")
        assert.equal("25006", e.sqlstate)
      end
      assert.has_error(function() c:transaction{isolation = "bogus"} end)
      assert.has_error(function() c:transaction{nope = true} end)
      assert.is_false(c:in_transaction())
    end)
  end)

  it("an explicit commit or rollback ends it early", function()
    run(function()
      local c <close> = setup()
      do
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        tx:rollback()
      end
      assert.equal(0, count(c))
      do
        local tx <close> = c:transaction()
        c:execute("insert into t values (1)")
        tx:commit()
        assert.is_false(c:in_transaction())
      end
      assert.equal(1, count(c))
    end)
  end)
end)
