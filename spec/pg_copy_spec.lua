-- aio.pg COPY (copy_in, copy_out) of 100,000 rows and row iterators in
-- single-row mode (conn:rows); leaving either early leaves the connection
-- usable.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

local N = S.BIG

local function setup()
  local c = aio.pg.connect(P.unix_dsn())
  c:execute("create temp table cp (a int, b text)")
  return c
end

describe("aio.pg COPY", function()
  it("copy_in and copy_out of 100,000 rows", function()
    run(function()
      local c <close> = setup()
      local lines = {}
      for i = 1, N do lines[i] = ("%d\tv%d\n"):format(i, i) end
      assert.equal(N, c:copy_in("copy cp from stdin", lines))
      assert.equal(N, c:fetchval("select count(*) from cp"))
      assert.equal(N * (N + 1) // 2, c:fetchval("select sum(a)::int8 from cp"))
      local data, n = c:copy_out("copy (select * from cp order by a) to stdout")
      assert.equal(N, n)
      assert.equal(table.concat(lines), data)
      local seen = 0
      assert.equal(N, c:copy_out("copy cp to stdout", function(chunk)
        seen = seen + #chunk
      end))
      assert.equal(#data, seen)
    end)
  end)

  it("a string or a function as the source; bad data is an error",
     function()
    run(function()
      local c <close> = setup()
      assert.equal(2, c:copy_in("copy cp from stdin", "1\ta\n2\tb\n"))
      local i = 0
      assert.equal(3, c:copy_in("copy cp from stdin", function()
        i = i + 1
        if i <= 3 then return ("%d\tf\n"):format(i) end
      end))
      local e = S.assert_raises("DatabaseError", c.copy_in, c,
                                "copy cp from stdin", "x\ty\n")
      assert.equal("22P02", e.sqlstate)
      assert.equal(5, c:fetchval("select count(*) from cp"))
      assert.has_error(function()
        c:copy_in("copy cp from stdin", function() error("source broke") end)
      end, "source broke")
      assert.equal(5, c:fetchval("select count(*) from cp"))
      assert.has_error(function() c:copy_in("select 1", "x") end)
      assert.has_error(function() c:copy_out("copy cp from stdin") end)
      assert.equal(5, c:fetchval("select count(*) from cp"))
      -- COPY through execute is refused, not hung
      S.assert_raises("DatabaseError", c.execute, c, "copy cp from stdin")
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)

  it("a cancelled copy leaves nothing copied and the connection usable",
     function()
    run(function()
      local c <close> = setup()
      local t = aio.spawn(function()
        c:copy_in("copy cp from stdin", function()
          aio.sleep(0.01)
          return "1\tx\n"
        end)
      end)
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(0, c:fetchval("select count(*) from cp"))
      t = aio.spawn(function()
        c:copy_out("copy (select g, pg_sleep(0.001) from "
                   .. "generate_series(1, 100000) g) to stdout",
                   function() aio.sleep(0.001) end)
      end)
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)
end)

describe("aio.pg rows()", function()
  it("iterates 100,000 rows one at a time", function()
    run(function()
      local c <close> = setup()
      local i = 0
      for r in c:rows("select g from generate_series(1, $1) g", N) do
        i = i + 1
        assert.equal(i, r.g)
      end
      assert.equal(N, i)
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)

  it("breaking out early or an error leaves the connection usable",
     function()
    run(function()
      local c <close> = setup()
      for r in c:rows("select g from generate_series(1, 1000000) g") do
        if r.g == 10 then break end
      end
      assert.equal(2, c:fetchval("select 2"))
      local ok = pcall(function()
        for r in c:rows("select g from generate_series(1, 1000000) g") do
          if r.g == 5 then error("stop") end
        end
      end)
      assert.is_false(ok)
      assert.equal(3, c:fetchval("select 3"))
      local e = S.assert_raises("DatabaseError", function()
        for _ in c:rows("select 1 / (g - 3) from generate_series(1, 5) g") do
        end
      end)
      assert.equal("22012", e.sqlstate)
      assert.equal(4, c:fetchval("select 4"))
    end)
  end)

  it("a timeout covers the whole loop: TimeoutError, then usable", function()
    run(function()
      local c <close> = setup()
      local n = 0
      local e = S.assert_raises("TimeoutError", function()
        -- the loop's own time counts: the first row outlasts the deadline
        for _ in c:rows{"select repeat('x', 16384) from generate_series(1, 1000)",
                        timeout = 2} do
          n = n + 1
          aio.sleep(2.1)
        end
      end)
      assert.equal(1, n)
      assert.matches("timed out", tostring(e))
      assert.equal(6, c:fetchval("select 6"))
      n = 0 -- a deadline that does not pass changes nothing
      for r in c:rows({"select g from generate_series(1, 50) g", timeout = 30}) do
        n = n + r.g
      end
      assert.equal(1275, n)
      assert.has_error(function() c:rows{"select 1", timeout = -1} end)
    end)
  end)

  it("a cancelled iteration: the connection drains and answers", function()
    run(function()
      local c <close> = setup()
      local t = aio.spawn(function()
        for _ in c:rows("select pg_sleep(0.01) from generate_series(1, 1000)")
        do end
      end)
      aio.sleep(0.1)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(5, c:fetchval("select 5"))
    end)
  end)
end)
