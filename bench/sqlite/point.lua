-- bench/sqlite/point.lua N [ROWS]: point queries per second, one after
-- another and from 50 tasks sharing the connection, then ROWS (100,000)
-- inserts in one transaction.  Prints "point <s/op>", "concurrent <s/op>"
-- and "insert <s/row>".
local aio = require "luaio"
local N = tonumber(arg[1]) or 20000
local ROWS = tonumber(arg[2]) or 100000
aio.run(function()
  local c <close> = aio.sqlite.open(":memory:")
  c:execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
  local list = {}
  for i = 1, 1000 do list[i] = {i, "value" .. i} end
  c:executemany("INSERT INTO t VALUES (?, ?)", list)
  for i = 1, 1000 do c:fetchval("SELECT v FROM t WHERE id = ?", i) end
  local t0 = aio.time()
  for i = 1, N do c:fetchval("SELECT v FROM t WHERE id = ?", i % 1000 + 1) end
  print(("point %.3e"):format((aio.time() - t0) / N))
  local tasks = {}
  t0 = aio.time()
  for k = 1, 50 do
    tasks[k] = aio.spawn(function()
      for i = k, N, 50 do
        c:fetchval("SELECT v FROM t WHERE id = ?", i % 1000 + 1)
      end
    end)
  end
  for k = 1, 50 do tasks[k]:await() end
  print(("concurrent %.3e"):format((aio.time() - t0) / N))
  c:execute("CREATE TABLE big(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
  local rows = {}
  for i = 1, ROWS do rows[i] = {i, i * 2, "row"} end
  t0 = aio.time()
  do
    local tx <close> = c:transaction()
    c:executemany("INSERT INTO big VALUES (?, ?, ?)", rows)
  end
  print(("insert %.3e"):format((aio.time() - t0) / ROWS))
end)
