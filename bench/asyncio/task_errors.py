"""task_errors: create N tasks that raise at once, then await each in
try/except (each exception keeps its traceback)."""
import asyncio
import os
import gc
from common import parse, run, Clock

N, UVLOOP = parse(100000)


async def f():
    raise RuntimeError("boom")


async def round_(n):
    ts = [asyncio.create_task(f()) for _ in range(n)]
    for t in ts:
        try:
            await t
        except RuntimeError:
            continue
        raise AssertionError("no error")


async def main():
    await round_(N if os.environ.get("BENCH_WARM") else 2000)
    gc.collect()
    with Clock() as c:
        await round_(N)
    c.report(N)

run(main, UVLOOP)
