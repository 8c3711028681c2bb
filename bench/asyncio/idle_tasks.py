"""idle_tasks: RSS per task for N tasks parked on an Event never set."""
import asyncio
import gc
from common import parse, run, rss

N, UVLOOP = parse(100000)


async def main():
    ev = asyncio.Event()
    gc.collect()
    r0 = rss()
    ts = [asyncio.create_task(ev.wait()) for _ in range(N)]
    await asyncio.sleep(0)
    gc.collect()
    r1 = rss()
    print("RESULT %.1f" % ((r1 - r0) / N), flush=True)
    for t in ts:
        t.cancel()
    await asyncio.gather(*ts, return_exceptions=True)

run(main, UVLOOP)
