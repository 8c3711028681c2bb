# bench/redis/roundtrip.py PORT N [MODE]: the same as roundtrip.lua with
# redis.asyncio.
import asyncio, sys, time
import redis.asyncio as redis

PORT, N = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20000
MODE = sys.argv[3] if len(sys.argv) > 3 else None

async def main():
    r = redis.Redis(host="127.0.0.1", port=PORT)
    for i in range(1000):
        await r.set("bench:k", i)
    if MODE != "pipelined":
        t0 = time.monotonic()
        for i in range(N // 2):
            await r.set("bench:k", i)
            await r.get("bench:k")
        print("sequential %.3e" % ((time.monotonic() - t0) / N))
    if MODE == "sequential":
        await r.close()
        return
    per = N // 50
    async def worker(t):
        for i in range(per // 2):
            await r.set("bench:p%d" % t, i)
            await r.get("bench:p%d" % t)
    t0 = time.monotonic()
    await asyncio.gather(*(worker(t) for t in range(50)))
    print("pipelined %.3e" % ((time.monotonic() - t0) / (50 * (per // 2) * 2)))
    await r.close()

asyncio.run(main())
