# bench/sqlite/point.py N [ROWS]: the same as point.lua with aiosqlite.
import asyncio, sys, time
import aiosqlite

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 100000

async def main():
    async with aiosqlite.connect(":memory:") as c:
        await c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        await c.executemany("INSERT INTO t VALUES (?, ?)",
                            [(i, "value%d" % i) for i in range(1, 1001)])
        async def val(i):
            async with c.execute("SELECT v FROM t WHERE id = ?", (i,)) as cur:
                return (await cur.fetchone())[0]
        for i in range(1, 1001):
            await val(i)
        t0 = time.monotonic()
        for i in range(N):
            await val(i % 1000 + 1)
        print("point %.3e" % ((time.monotonic() - t0) / N))
        async def worker(k):
            for i in range(k, N, 50):
                await val(i % 1000 + 1)
        t0 = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(50)))
        print("concurrent %.3e" % ((time.monotonic() - t0) / N))
        await c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
        rows = [(i, i * 2, "row") for i in range(1, ROWS + 1)]
        t0 = time.monotonic()
        await c.executemany("INSERT INTO big VALUES (?, ?, ?)", rows)
        await c.commit()
        print("insert %.3e" % ((time.monotonic() - t0) / ROWS))

asyncio.run(main())
