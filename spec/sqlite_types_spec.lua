-- aio.sqlite: types, parameters, errors, the statement cache.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function with_db(fn)
  return run(function()
    local c <close> = aio.sqlite.open(":memory:")
    return fn(c)
  end)
end

describe("aio.sqlite types", function()
  it("maps every storage class, both ways", function()
    with_db(function(c)
      c:execute("CREATE TABLE t(i, f, s, b, n)")
      c:execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", math.maxinteger,
                1.25, "a\0b", aio.sqlite.blob("\0\255"), aio.null)
      c:execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", math.mininteger,
                -0.5, "", aio.sqlite.blob(""), nil)
      local rows = c:fetch("SELECT i, f, s, b, n, typeof(b) AS tb, "
                           .. "typeof(s) AS ts FROM t ORDER BY rowid")
      assert.equal(2, #rows)
      assert.equal(math.maxinteger, rows[1].i)
      assert.equal("integer", math.type(rows[1].i))
      assert.equal(1.25, rows[1].f)
      assert.equal("float", math.type(rows[1].f))
      assert.equal("a\0b", rows[1].s)
      assert.equal("\0\255", rows[1].b)
      assert.equal("blob", rows[1].tb)
      assert.equal("text", rows[1].ts)
      assert.equal(aio.null, rows[1].n)
      assert.equal(aio.json.null, rows[1].n)
      assert.equal(math.mininteger, rows[2].i)
      assert.equal("", rows[2].s)
      assert.equal(aio.null, rows[2].n)
      assert.equal(1, c:fetchval("SELECT ?", true))
      assert.equal(0, c:fetchval("SELECT ?", false))
      assert.equal(2.0, c:fetchval("SELECT 2.0"))
      assert.equal("float", math.type(c:fetchval("SELECT 2.0")))
    end)
  end)

  it("fetchrow and fetchval tell no row (nil) from NULL (aio.null)",
     function()
    with_db(function(c)
      assert.is_nil(c:fetchrow("SELECT 1 WHERE 0"))
      assert.is_nil(c:fetchval("SELECT 1 WHERE 0"))
      assert.equal(aio.null, c:fetchval("SELECT NULL"))
      assert.same({a = 1, b = "x"}, c:fetchrow("SELECT 1 AS a, 'x' AS b"))
      assert.same({}, c:fetch("SELECT 1 WHERE 0"))
    end)
  end)

  it("streams rows in batches and keeps their order", function()
    with_db(function(c)
      local batch = require("luaio._sqlite").BATCH
      local want = 3 * batch + 1
      local rows = c:fetch("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL "
                           .. "SELECT x + 1 FROM r WHERE x < ?) SELECT x FROM r",
                           want)
      assert.equal(want, #rows)
      for i = 1, want do assert.equal(i, rows[i].x) end
    end)
  end)

  it("execute returns the changes and the last rowid; executemany the "
     .. "changes of all", function()
    with_db(function(c)
      c:execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
      local n, id = c:execute("INSERT INTO t(v) VALUES (?)", "a")
      assert.equal(1, n)
      assert.equal(1, id)
      local list = {}
      for i = 1, 100 do list[i] = {i} end
      assert.equal(100, c:executemany("INSERT INTO t(v) VALUES (?)", list))
      assert.equal(101, c:fetchval("SELECT count(*) FROM t"))
      assert.equal(50, (c:execute("UPDATE t SET v = 0 WHERE id > 51")))
      assert.equal(0, c:executemany("INSERT INTO t(v) VALUES (?)", {}))
    end)
  end)

  it("runs several statements in one execute", function()
    with_db(function(c)
      c:execute("CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a "
                .. "VALUES (1); INSERT INTO b VALUES (2);")
      assert.equal(3, c:fetchval("SELECT (SELECT x FROM a) + "
                                 .. "(SELECT y FROM b)"))
    end)
  end)

  it("keeps working past the 128 cached statements", function()
    with_db(function(c)
      for round = 1, 2 do
        for i = 1, 200 do
          assert.equal(i + round, c:fetchval("SELECT " .. i .. " + ?", round))
        end
      end
      c:execute("CREATE TABLE t(a)")
      c:execute("INSERT INTO t VALUES (1)")
      assert.same({a = 1}, c:fetchrow("SELECT * FROM t"))
      c:execute("ALTER TABLE t ADD COLUMN b DEFAULT 2")
      assert.same({a = 1, b = 2}, c:fetchrow("SELECT * FROM t"))
    end)
  end)
end)

describe("aio.sqlite errors", function()
  it("raises DatabaseError with the extended code's name", function()
    with_db(function(c)
      c:execute("PRAGMA foreign_keys = ON")
      c:execute("CREATE TABLE p(id INTEGER PRIMARY KEY)")
      c:execute("CREATE TABLE t(u UNIQUE, nn NOT NULL DEFAULT 0, "
                .. "ck CHECK (ck > 0), fk REFERENCES p(id))")
      c:execute("INSERT INTO t(u) VALUES (1)")
      local function code(sql, ...)
        local e = S.assert_raises("DatabaseError", c.execute, c, sql, ...)
        assert.is_string(e.message)
        return e.code
      end
      assert.equal("SQLITE_CONSTRAINT_UNIQUE",
                   code("INSERT INTO t(u) VALUES (1)"))
      assert.equal("SQLITE_CONSTRAINT_NOTNULL",
                   code("INSERT INTO t(u, nn) VALUES (2, NULL)"))
      assert.equal("SQLITE_CONSTRAINT_CHECK",
                   code("INSERT INTO t(u, ck) VALUES (3, -1)"))
      assert.equal("SQLITE_CONSTRAINT_FOREIGNKEY",
                   code("INSERT INTO t(u, fk) VALUES (4, 99)"))
      assert.equal("SQLITE_ERROR", code("SELEKT 1"))
      assert.equal("SQLITE_ERROR", code("SELECT * FROM nowhere"))
      assert.equal("SQLITE_RANGE", code("SELECT ?, ?", 1))
      assert.equal("SQLITE_RANGE", code("SELECT 1", 1))
      -- the connection goes on
      assert.equal(1, c:fetchval("SELECT count(*) FROM t"))
    end)
  end)

  it("raises at once for a value that cannot be bound", function()
    with_db(function(c)
      local ok, e = pcall(c.fetchval, c, "SELECT ?", print)
      assert.is_false(ok)
      assert.matches("parameter 1: cannot bind", tostring(e))
      ok = pcall(c.fetchval, c, "SELECT ?", {})
      assert.is_false(ok)
      assert.equal(1, c:fetchval("SELECT 1"))
    end)
  end)

  it("open: ConnectionError for a file it cannot open; readonly refuses "
     .. "writes; unknown options raise", function()
    run(function()
      local e = S.assert_raises("ConnectionError", aio.sqlite.open,
                                "/nonexistent/dir/x.db")
      assert.equal("SQLITE_CANTOPEN", e.code)
      S.assert_raises("ConnectionError", aio.sqlite.open,
                      os.tmpname() .. ".missing", {readonly = true})
      local path = os.tmpname()
      local w = aio.sqlite.open(path)
      w:execute("CREATE TABLE t(a)")
      w:close()
      local r <close> = aio.sqlite.open(path, {readonly = true})
      e = S.assert_raises("DatabaseError", r.execute, r,
                          "INSERT INTO t VALUES (1)")
      assert.equal("SQLITE_READONLY", e.code)
      assert.has_error(function() aio.sqlite.open(path, {bogus = 1}) end)
      os.remove(path)
    end)
  end)

  it("a closed connection raises; closing again is harmless", function()
    run(function()
      local c = aio.sqlite.open(":memory:")
      assert.matches("luaio.sqlite %(:memory:", tostring(c))
      c:close()
      c:close()
      assert.equal("luaio.sqlite (closed)", tostring(c))
      assert.has_error(function() c:fetch("SELECT 1") end,
                       "attempt to use a closed connection")
      assert.has_error(function() c:transaction() end)
      do
        local d <close> = aio.sqlite.open(":memory:")
        assert.equal(1, d:fetchval("SELECT 1"))
      end
    end)
  end)

  it("a connection nobody closed is closed when collected", function()
    run(function()
      do
        local c = aio.sqlite.open(":memory:")
        c:execute("CREATE TABLE t(a)")
      end
      collectgarbage()
      collectgarbage()
      aio.sleep(0)
    end)
  end)
end)
