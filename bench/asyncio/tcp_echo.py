"""tcp_echo server: asyncio streams (default) or a Protocol (--protocol).

usage: python3 tcp_echo.py PORT [--uvloop] [--protocol]; prints READY.
"""
import asyncio
import socket
import sys

from common import parse, run

PORT, UVLOOP = parse(7000)
PROTOCOL = "--protocol" in sys.argv


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.t.write(data)


async def handle(reader, writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def main():
    if PROTOCOL:
        server = await asyncio.get_running_loop().create_server(
            Echo, "127.0.0.1", PORT, backlog=1024)
    else:
        server = await asyncio.start_server(handle, "127.0.0.1", PORT,
                                            backlog=1024)
    print("READY", flush=True)
    async with server:
        await server.serve_forever()

run(main, UVLOOP)
