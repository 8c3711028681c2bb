"""sleep_gather: N concurrent 1 ms sleeps, gathered."""
import asyncio
import os
import gc
from common import parse, run, Clock

N, UVLOOP = parse(100000)


async def round_(n):
    await asyncio.gather(*[asyncio.sleep(0.001) for _ in range(n)])


async def main():
    await round_(N if os.environ.get("BENCH_WARM") else 2000)
    gc.collect()
    with Clock() as c:
        await round_(N)
    c.report(N)

run(main, UVLOOP)
