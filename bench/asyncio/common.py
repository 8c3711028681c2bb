"""Shared by the asyncio workloads: argument parsing, the loop, the result line.

Usage: python3 <workload>.py [N] [--uvloop]
"""
import asyncio
import sys
import time


def parse(default_n):
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else default_n
    return n, "--uvloop" in sys.argv


def run(main, use_uvloop):
    if use_uvloop:
        import uvloop
        uvloop.install()
    asyncio.run(main())


class Clock:
    """Wall (monotonic) and CPU time of a measured section."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0

    def report(self, n):
        print("RESULT %.1f %.1f" % (self.wall * 1e9 / n, self.cpu * 1e9 / n),
              flush=True)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
