-- bench/sqlite/starve.lua: the luaio side of starve.c: eight connections
-- run the same long query while a file is read through libuv's pool.
local aio = require "luaio"
local q = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r "
  .. "WHERE x < 3000000) SELECT count(*) FROM r"
aio.run(function()
  local conns, tasks = {}, {}
  for i = 1, 8 do conns[i] = aio.sqlite.open(":memory:") end
  local t0 = aio.time()
  for i = 1, 8 do tasks[i] = aio.spawn(conns[i].fetchval, conns[i], q) end
  aio.sleep(0)
  assert(aio.fs.read_file("/etc/hostname"))
  print(("file read done after %.2f s"):format(aio.time() - t0))
  for i = 1, 8 do tasks[i]:await() end
  print(("all done after %.2f s"):format(aio.time() - t0))
end)
