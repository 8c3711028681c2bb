"""spawn_await: create N tasks that return at once, then await them all."""
import asyncio
import os
import gc
from common import parse, run, Clock

N, UVLOOP = parse(200000)


async def f():
    return True


async def round_(n):
    ts = [asyncio.create_task(f()) for _ in range(n)]
    for t in ts:
        await t


async def main():
    await round_(N if os.environ.get("BENCH_WARM") else 2000)
    gc.collect()
    with Clock() as c:
        await round_(N)
    c.report(N)

run(main, UVLOOP)
