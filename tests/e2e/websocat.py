"""A stand-in for websocat's default text mode, for machines without it:
`websocat URL` sends each line of stdin as a text message and prints each
message received on a line of its own. Debian's python3-websockets."""
import asyncio
import os
import sys

import websockets


async def main(url):
    async with websockets.connect(url, max_queue=None) as ws:
        loop = asyncio.get_running_loop()

        async def lines_out():
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    await ws.close()
                    return
                await ws.send(line.rstrip("\n"))

        async def messages_in():
            async for m in ws:
                print(m, flush=True)

        asyncio.create_task(lines_out())
        await messages_in()
    sys.stdout.flush()
    os._exit(0)  # the stdin reader thread may still be blocked in readline


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        pass
