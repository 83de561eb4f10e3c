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
