# 50 tasks through one httpx.AsyncClient (keep-alive, 50 connections), N
# small GETs in all.  Prints RESULT <wall ns per request> <CPU ns per
# request>.
import asyncio, sys, time
import httpx

url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

async def main():
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits) as s:
        async def get():
            r = await s.get(url)
            assert r.status_code == 200
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
