# bench/ws_echo: the same echo server on python3-websockets (asyncio).
import asyncio, sys
import websockets

async def echo(ws):
    async for msg in ws:
        await ws.send(msg)

async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=2**20) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
