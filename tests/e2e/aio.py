"""Small asyncio helpers shared by the WebSocket suites."""
import asyncio
import json

T = 5  # seconds any single receive may take


async def recv_json(ws, timeout=T):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def silent(ws, seconds=0.3):
    """True when no message arrives within the time given."""
    try:
        await asyncio.wait_for(ws.recv(), seconds)
        return False
    except asyncio.TimeoutError:
        return True


OPEN = []  # every client a test opened with connect(), closed by run()


async def connect(pod, path, **kw):
    """Opens a client on pod at path and reads its welcome. The websockets
    library offers permessage-deflate unless told compression=None."""
    import websockets
    ws = await websockets.connect(pod.url(path), max_queue=None, **kw)
    OPEN.append(ws)
    m = await recv_json(ws)
    assert m["data"]["event"] == "welcome"
    return ws


def run(coro):
    """Runs a test's coroutine and closes every client it opened."""
    async def wrapped():
        try:
            await coro
        finally:
            await asyncio.gather(*(ws.close() for ws in OPEN), return_exceptions=True)
            OPEN.clear()
    asyncio.run(wrapped())
