"""bench/tls/bulk.py DIR [MB] [HANDSHAKES] [--uvloop]: bulk.lua's workload
on asyncio's streams with the ssl module (OpenSSL too)."""
import asyncio
import ssl
import sys
import time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
DIR = args[0]
MB = int(args[1]) if len(args) > 1 else 256
NHS = int(args[2]) if len(args) > 2 else 1000
CHUNK = b"x" * 65536
SCTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
SCTX.load_cert_chain(DIR + "/cert.pem", DIR + "/key.pem")
CCTX = ssl.create_default_context(cafile=DIR + "/cert.pem")


def clock():
    return time.perf_counter(), time.process_time()


async def bulk(tls):
    total = MB * 1024 * 1024
    done = asyncio.Event()

    async def handle(r, w):
        got = 0
        while True:
            d = await r.read(65536)
            if not d:
                break
            got += len(d)
        assert got == total
        w.close()
        done.set()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0,
                                     ssl=SCTX if tls else None)
    port = srv.sockets[0].getsockname()[1]
    w0, c0 = clock()
    r, w = await asyncio.open_connection(
        "127.0.0.1", port, ssl=CCTX if tls else None,
        server_hostname="localhost" if tls else None)
    for _ in range(total // len(CHUNK)):
        w.write(CHUNK)
        await w.drain()
    w.close()
    await done.wait()
    w1, c1 = clock()
    srv.close()
    return w1 - w0, c1 - c0


async def handshakes():
    async def handle(r, w):
        await r.read(1)
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=SCTX)
    port = srv.sockets[0].getsockname()[1]
    w0, c0 = clock()
    for _ in range(NHS):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=CCTX,
                                             server_hostname="localhost")
        w.close()
    w1, c1 = clock()
    srv.close()
    return w1 - w0, c1 - c0


async def main():
    await bulk(True)
    pw, pc = await bulk(False)
    tw, tc = await bulk(True)
    hw, hc = await handshakes()
    name = "uvloop" if "--uvloop" in sys.argv else "asyncio"
    print("%-6s plain %7.2f ms wall %7.2f ms CPU per MiB" % (name, pw * 1e3 / MB, pc * 1e3 / MB))
    print("%-6s tls   %7.2f ms wall %7.2f ms CPU per MiB" % (name, tw * 1e3 / MB, tc * 1e3 / MB))
    print("%-6s tls handshake %7.1f µs wall %7.1f µs CPU" % (name, hw * 1e6 / NHS, hc * 1e6 / NHS))
    print("RESULT %.4f %.4f %.4f %.4f %.2f %.2f" % (pw * 1e3 / MB, pc * 1e3 / MB, tw * 1e3 / MB, tc * 1e3 / MB,
                                                    hw * 1e6 / NHS, hc * 1e6 / NHS))


if "--uvloop" in sys.argv:
    import uvloop
    uvloop.install()
asyncio.run(main())
