-- spec/pg_leak.lua: every aio.pg path once (queries, errors, a cancel,
-- COPY, rows, a transaction, LISTEN, a pool, a refused connect), run by
-- spec/pg.cmake under valgrind and the ASan tree: nothing leaked, nothing
-- freed touched.
local aio = require "luaio"
local dir = assert(os.getenv("LUAIO_PG_DIR"), "LUAIO_PG_DIR")
local f = io.open(dir .. "/skip")
if f then
  f:close()
  print("pg ok (skipped: no server)")
  return
end
local port = tonumber(assert(io.open(dir .. "/port")):read("l"))
local dsn = ("host=%s port=%d user=postgres"):format(dir, port)
local c = aio.pg.connect(dsn)
local t = aio.pg.connect(("host=localhost port=%d user=postgres"):format(port))
c:execute("create temp table v (a int, b text, j jsonb, y bytea, r int[])")
c:executemany("insert into v values ($1, $2, $3, $4, $5)", {{1, "a", {x = 1}, "\0\1", {1, 2}}, {2, aio.null, aio.null, "", {}}})
assert(#c:fetch("select * from v") == 2)
pcall(c.execute, c, "insert into nosuch values (1)")
local k = aio.spawn(c.fetchval, c, "select pg_sleep(5)")
aio.sleep(0.2); k:cancel(); pcall(k.await, k)
assert(c:fetchval("select 1") == 1)
c:copy_in("copy v (a) from stdin", {"5\n", "6\n"})
assert(#c:copy_out("copy v to stdout") > 0)
for r in c:rows("select g from generate_series(1, 100) g") do if r.g == 50 then break end end
do local tx <close> = c:transaction(); c:execute("insert into v (a) values (9)") end
local l = c:listen("ch")
t:execute("select pg_notify('ch', 'x')")
assert(l:next().payload == "x")
l:close()
local p = aio.pg.pool{dsn = dsn, max = 2}
local ts = {}
for i = 1, 6 do ts[i] = aio.spawn(p.fetchval, p, "select $1::int", i) end
for i = 1, 6 do assert(ts[i]:await() == i) end
p:close()
pcall(aio.pg.connect, "host=127.0.0.1 port=1")
c:close()
t:close()
print("pg ok")
