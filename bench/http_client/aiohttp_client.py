# 50 tasks through one aiohttp ClientSession (keep-alive, limit 50), N
# small GETs in all; "uvloop" as the 4th argument runs it on uvloop.
# Prints RESULT <wall ns per request> <CPU ns per request>.
import asyncio, sys, time
import aiohttp

url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
    import uvloop
    uvloop.install()

async def main():
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def get():
            async with s.get(url) as r:
                await r.read()
                assert r.status == 200
        for _ in range(200):
            await get()
        left = n
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                await get()
        w0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(conc)))
        w, c = time.perf_counter() - w0, time.process_time() - c0
        print("RESULT %.0f %.0f" % (w * 1e9 / n, c * 1e9 / n))

asyncio.run(main())
