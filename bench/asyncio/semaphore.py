"""semaphore: N tasks through Semaphore(10): acquire, sleep(0), release."""
import asyncio
import os
import gc
from common import parse, run, Clock

N, UVLOOP = parse(100000)


async def round_(n):
    sem = asyncio.Semaphore(10)

    async def worker():
        async with sem:
            await asyncio.sleep(0)

    await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(n)])


async def main():
    await round_(N if os.environ.get("BENCH_WARM") else 2000)
    gc.collect()
    with Clock() as c:
        await round_(N)
    c.report(N)

run(main, UVLOOP)
