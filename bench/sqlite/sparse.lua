-- bench/sqlite/sparse.lua N GAP: N point queries GAP seconds apart (a
-- sparse workload), to see what waiting for a job costs in CPU time when
-- jobs are rare (run it under /usr/bin/time).  Prints "sparse <s/op>",
-- the mean latency of one query.
local aio = require "luaio"
local N = tonumber(arg[1]) or 2000
local GAP = tonumber(arg[2]) or 0.001
aio.run(function()
  local c <close> = aio.sqlite.open(":memory:")
  c:execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
  local list = {}
  for i = 1, 1000 do list[i] = {i, "value" .. i} end
  c:executemany("INSERT INTO t VALUES (?, ?)", list)
  local total = 0
  for i = 1, N do
    aio.sleep(GAP)
    local t0 = aio.time()
    c:fetchval("SELECT v FROM t WHERE id = ?", i % 1000 + 1)
    total = total + (aio.time() - t0)
  end
  print(("sparse %.3e"):format(total / N))
end)
