"""queue_pingpong: N items through asyncio.Queue(100), one producer, one consumer."""
import asyncio
import os
import gc
from common import parse, run, Clock

N, UVLOOP = parse(1000000)


async def round_(n):
    q = asyncio.Queue(100)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        for _ in range(n):
            await q.get()

    p = asyncio.create_task(producer())
    c = asyncio.create_task(consumer())
    await p
    await c


async def main():
    await round_(N if os.environ.get("BENCH_WARM") else 10000)
    gc.collect()
    with Clock() as c:
        await round_(N)
    c.report(N)

run(main, UVLOOP)
