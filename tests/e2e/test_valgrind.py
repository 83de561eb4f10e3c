"""Valgrind finds no leak and no memory error after a run with clients,
graceful shutdown included. Skipped in the sanitizer runs, whose binaries
cannot run under valgrind (they check the same things their own way)."""
import asyncio
import json
import os
import shutil

import pytest
import websockets

from conftest import Server
from wsraw import Raw


@pytest.mark.skipif(bool(os.environ.get("CHAT_API_SANITIZER")), reason="sanitizer build")
@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is installed by make deps")
def test_no_leaks_under_valgrind():
    srv = Server({"WORKERS": "2", "SHUTDOWN_TIMEOUT": "3s"},
                 wrapper=("valgrind", "--quiet", "--leak-check=full",
                          "--errors-for-leak-kinds=definite,indirect",
                          "--show-leak-kinds=definite,indirect", "--error-exitcode=99"),
                 start_timeout=60)

    async def chat():
        async with websockets.connect(srv.url("/ws/lobby")) as a, \
                   websockets.connect(srv.url("/ws")) as g:
            await asyncio.wait_for(a.recv(), 20)
            await asyncio.wait_for(g.recv(), 20)
            for i in range(20):
                await a.send(json.dumps({"data": {"i": i}}))
                await g.send("global %d" % i)
            got = 0
            while got < 40:
                json.loads(await asyncio.wait_for(a.recv(), 20))
                got += 1
            await a.send(json.dumps({"room": "elsewhere"}))  # an error answer
            await asyncio.wait_for(a.recv(), 20)
            # Left open: graceful shutdown closes them.
            srv.terminate()
            await asyncio.wait_for(a.wait_closed(), 30)
    bad = Raw(srv.port, "/ws/lobby", timeout=30)
    bad.recv_frame()
    bad.send(bytes([0x81, 0x02, 0x68, 0x69]))  # unmasked: closed 1002
    assert bad.recv_until_close()[0] == 1002
    http = Raw(srv.port, "/ws/half", timeout=30)  # a connection the server must free
    asyncio.run(chat())
    code, err = srv.stop(timeout=60)
    assert code == 0, err
    http.close()
