-- bench/pg/pg.lua DSN N: aio.pg for bench/pg/run.  fetchval: a prepared
-- `select $1::int` N times; many: 10,000 inserts with executemany; pool: a
-- pool of 10 under 10 tasks, N queries in all.  Prints "name seconds".
local aio = require "luaio"
local dsn, N = arg[1], tonumber(arg[2]) or 10000
aio.run(function()
  local c <close> = aio.pg.connect(dsn)
  c:fetchval("select $1::int", 0)
  local t0 = aio.time()
  for i = 1, N do
    if c:fetchval("select $1::int", i) ~= i then error("wrong") end
  end
  print(("fetchval %.9f"):format((aio.time() - t0) / N))
  c:execute("create temp table b (a int, t text)")
  local list = {}
  for i = 1, 10000 do list[i] = {i, "some text"} end
  t0 = aio.time()
  assert(c:executemany("insert into b values ($1, $2)", list) == 10000)
  print(("many %.9f"):format(aio.time() - t0))
  local p <close> = aio.pg.pool{dsn = dsn, max = 10}
  local warm = {}
  for t = 1, 10 do
    warm[t] = aio.spawn(function() p:fetchval("select $1::int", t) end)
  end
  for t = 1, 10 do warm[t]:await() end
  local per = N // 10
  local ts = {}
  t0 = aio.time()
  for t = 1, 10 do
    ts[t] = aio.spawn(function()
      for i = 1, per do p:fetchval("select $1::int", i) end
    end)
  end
  for t = 1, 10 do ts[t]:await() end
  print(("pool %.9f"):format((aio.time() - t0) / (per * 10)))
end)
