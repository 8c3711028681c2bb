-- aio.sqlite: cancellation, and the loop and the thread pool stay free
-- while statements run.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- A query that runs until it is interrupted.
local ENDLESS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
  .. "FROM r) SELECT count(*) FROM r"

local function running(c) return tostring(c):find("running") ~= nil end

describe("aio.sqlite cancellation", function()
  it("interrupts a running statement; the connection stays usable",
     function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      local t = aio.spawn(c.fetchval, c, ENDLESS)
      S.wait_until(function() return running(c) end)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(1, c:fetchval("SELECT 1"))
      assert.equal(3, #c:fetch("SELECT 1 UNION SELECT 2 UNION SELECT 3"))
    end)
  end)

  it("a timeout around a long query raises TimeoutError", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      local e = S.assert_raises("TimeoutError", aio.wait_for, function()
        return c:fetchval(ENDLESS)
      end, 0.05)
      assert.is_truthy(e)
      assert.equal(2, c:fetchval("SELECT 2"))
    end)
  end)

  it("drops a queued statement: it never runs", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      local long = aio.spawn(c.fetchval, c, ENDLESS)
      S.wait_until(function() return running(c) end)
      local queued = aio.spawn(c.execute, c, "INSERT INTO t VALUES (1)")
      S.wait_until(function() return tostring(c):find("1 queued") end)
      queued:cancel()
      S.assert_cancelled(queued)
      assert.matches("0 queued", tostring(c))
      long:cancel()
      S.assert_cancelled(long)
      assert.equal(0, c:fetchval("SELECT count(*) FROM t"))
    end)
  end)

  it("cancels a fetch between batches", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      -- rows forever: the fetch never ends by itself
      local t = aio.spawn(c.fetch, c, "WITH RECURSIVE r(x) AS (SELECT 1 "
                          .. "UNION ALL SELECT x + 1 FROM r) SELECT x FROM r")
      aio.sleep(0.05)
      assert.is_false(t:done())
      t:cancel()
      S.assert_cancelled(t)
      assert.equal(5, c:fetchval("SELECT 5"))
    end)
  end)

  it("close waits for the statements queued before it", function()
    run(function()
      local c = aio.sqlite.open(":memory:")
      c:execute("CREATE TABLE t(v)")
      local results = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = aio.spawn(function()
          results[i] = c:fetchval("SELECT ?", i)
        end)
      end
      aio.sleep(0)
      c:close()
      for i = 1, 5 do ts[i]:await() end
      assert.same({1, 2, 3, 4, 5}, results)
    end)
  end)
end)

describe("aio.sqlite and the loop", function()
  it("a ticker keeps ticking while a long query runs", function()
    run(function()
      local c <close> = aio.sqlite.open(":memory:")
      local ticks = 0
      local ticker = aio.spawn(function()
        while true do
          aio.sleep(0.005)
          ticks = ticks + 1
        end
      end)
      local q = aio.spawn(c.fetchval, c, ENDLESS)
      S.wait_until(function() return running(c) end)
      while ticks < 5 do aio.sleep(0.005) end
      assert.is_false(q:done())
      assert.is_true(running(c))
      q:cancel()
      S.assert_cancelled(q)
      ticker:cancel()
    end)
  end)

  it("eight connections running long queries do not starve a file read",
     function()
    run(function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("contents")
      f:close()
      local conns, tasks = {}, {}
      for i = 1, 8 do
        conns[i] = aio.sqlite.open(":memory:")
        tasks[i] = aio.spawn(conns[i].fetchval, conns[i], ENDLESS)
      end
      S.wait_until(function()
        for i = 1, 8 do if not running(conns[i]) then return false end end
        return true
      end)
      local data
      do
        local deadline <close> = aio.timeout(60)
        data = aio.fs.read_file(path)
      end
      assert.equal("contents", data)
      for i = 1, 8 do assert.is_false(tasks[i]:done()) end
      for i = 1, 8 do tasks[i]:cancel() end
      for i = 1, 8 do
        S.assert_cancelled(tasks[i])
        assert.equal(i, conns[i]:fetchval("SELECT ?", i))
        conns[i]:close()
      end
      os.remove(path)
    end)
  end)
end)
