# bench/pg/pg.py DSN N: asyncpg (Debian's python3-asyncpg) for
# bench/pg/run, the same workloads as pg.lua.
import asyncio
import sys
import time

import asyncpg


async def main(dsn, n):
    c = await asyncpg.connect(dsn)
    await c.fetchval("select $1::int", 0)
    t0 = time.monotonic()
    for i in range(n):
        assert await c.fetchval("select $1::int", i) == i
    print("fetchval %.9f" % ((time.monotonic() - t0) / n))
    await c.execute("create temp table b (a int, t text)")
    rows = [(i, "some text") for i in range(10000)]
    t0 = time.monotonic()
    await c.executemany("insert into b values ($1, $2)", rows)
    print("many %.9f" % (time.monotonic() - t0))
    await c.close()
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    per = n // 10

    async def worker():
        for i in range(per):
            await pool.fetchval("select $1::int", i)

    await asyncio.gather(*[worker() for _ in range(10)])
    t0 = time.monotonic()
    await asyncio.gather(*[worker() for _ in range(10)])
    print("pool %.9f" % ((time.monotonic() - t0) / (per * 10)))
    await pool.close()


asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000))
