-- aio.sqlite: transactions, savepoints, two connections and the busy
-- timeout.
local aio = require "luaio"
local S = require "support"
local run = S.run

local ENDLESS_WRITE = "INSERT INTO t(v) WITH RECURSIVE r(x) AS (SELECT 1 "
  .. "UNION ALL SELECT x + 1 FROM r) SELECT x FROM r"

local function count(c) return c:fetchval("SELECT count(*) FROM t") end

describe("aio.sqlite transactions", function()
  it("commits at the end of the block, rolls back on an error", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      do
        local tx <close> = c:transaction()
        c:execute("INSERT INTO t VALUES (1)")
        assert.is_true(c:in_transaction())
      end
      assert.is_false(c:in_transaction())
      assert.equal(1, count(c))
      local ok, e = pcall(function()
        local tx <close> = c:transaction()
        c:execute("INSERT INTO t VALUES (2)")
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", e)
      assert.equal(1, count(c))
      assert.is_false(c:in_transaction())
    end)
  end)

  it("nests savepoints: an inner failure undoes only the inner block",
     function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v UNIQUE)")
      do
        local tx <close> = c:transaction("immediate")
        c:execute("INSERT INTO t VALUES (1)")
        local ok = pcall(function()
          local inner <close> = c:transaction()
          c:execute("INSERT INTO t VALUES (2)")
          c:execute("INSERT INTO t VALUES (1)") -- UNIQUE fails
        end)
        assert.is_false(ok)
        assert.is_true(c:in_transaction())
        do
          local inner <close> = c:transaction()
          c:execute("INSERT INTO t VALUES (3)")
        end
      end
      assert.same({{v = 1}, {v = 3}}, c:fetch("SELECT v FROM t ORDER BY v"))
    end)
  end)

  it("a cancellation leaving the block rolls back", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      local started = aio.event()
      local t = aio.spawn(function()
        local tx <close> = c:transaction()
        c:execute("INSERT INTO t VALUES (1)")
        started:set()
        aio.sleep(10)
      end)
      started:wait()
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(0, count(c))
      assert.is_false(c:in_transaction())
    end)
  end)

  it("an interrupted write inside BEGIN: SQLite rolled back already, the "
     .. "guard does not ROLLBACK again", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      c:execute("INSERT INTO t VALUES (0)")
      local writing = false
      local t = aio.spawn(function()
        local tx <close> = c:transaction()
        c:execute("INSERT INTO t VALUES (1)")
        writing = true
        c:execute(ENDLESS_WRITE)
      end)
      S.wait_until(function()
        return writing and tostring(c):find("running")
      end)
      t:cancel()
      S.assert_cancelled(t)
      assert.is_false(c:in_transaction())
      assert.equal(1, count(c))
      c:execute("INSERT INTO t VALUES (2)")
      assert.equal(2, count(c))
    end)
  end)

  it("a cancellation at any statement of a transaction rolls it back "
     .. "cleanly", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      for step = 0, 6 do
        local t = aio.spawn(function()
          local tx <close> = c:transaction()
          c:execute("INSERT INTO t VALUES (1)")
          do
            local sp <close> = c:transaction()
            c:execute("INSERT INTO t VALUES (2)")
          end
          c:execute(ENDLESS_WRITE)
        end)
        for _ = 1, step do aio.sleep(0) end
        t:cancel()
        S.assert_cancelled(t)
        assert.is_false(c:in_transaction())
        assert.equal(0, count(c))
      end
    end)
  end)

  it("busy_timeout: a second connection waits for the writer, or fails "
     .. "with SQLITE_BUSY", function()
    run(function()
      local path = os.tmpname()
      local a <close> = aio.sqlite.open(path)
      a:execute("CREATE TABLE t(v)")
      local impatient <close> = aio.sqlite.open(path, {busy_timeout = 0})
      local patient <close> = aio.sqlite.open(path, {busy_timeout = 30})
      local order = {}
      do
        local tx <close> = a:transaction("immediate")
        a:execute("INSERT INTO t VALUES (1)")
        local e = S.assert_raises("DatabaseError", impatient.execute,
                                  impatient, "INSERT INTO t VALUES (2)")
        assert.equal("SQLITE_BUSY", e.code)
        local w = aio.spawn(function()
          patient:execute("INSERT INTO t VALUES (3)")
          order[#order + 1] = "patient wrote"
        end)
        S.wait_until(function() return tostring(patient):find("running") end)
        aio.sleep(0.05)
        assert.is_false(w:done())
        order[#order + 1] = "writer commits"
        tx:commit()
        w:await()
      end
      assert.same({"writer commits", "patient wrote"}, order)
      assert.same({{v = 1}, {v = 3}}, a:fetch("SELECT v FROM t ORDER BY v"))
      os.remove(path)
    end)
  end)
end)
