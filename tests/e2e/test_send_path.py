"""The two ways a worker writes (docs/operations.md, "The send path"):
through an io_uring, or with writev where io_uring is refused or IO_URING=off.
The log says which runs, and a stream reaches every member of a room whole
and in order on each. make test also runs the chat, protocol and overload
suites a second time with IO_URING=off."""
import asyncio
import json
import os

import pytest

from aio import connect, recv_json, run, silent

HERE = os.path.dirname(os.path.abspath(__file__))
NO_URING = os.environ.get("CHAT_NO_URING_BIN", os.path.join(HERE, "../../build/no-uring"))

PATHS = {
    "auto": ({"IO_URING": "auto"}, ()),
    "off": ({"IO_URING": "off"}, ()),
    # As under Docker's default seccomp profile: io_uring_setup is EPERM.
    "refused": ({"IO_URING": "auto"}, (NO_URING,)),
}


@pytest.fixture(params=sorted(PATHS))
def path_server(request, start_server):
    from conftest import Server
    env, wrapper = PATHS[request.param]
    srv = Server({"LOG_LEVEL": "info", **env}, wrapper=wrapper)
    yield request.param, srv
    code, err = srv.stop()
    assert code == 0, err


def test_the_log_says_which_path_runs(path_server):
    path, srv = path_server
    log = srv.log()
    if path == "off":
        assert "workers send with writev (IO_URING=off)" in log, log
    elif path == "refused":
        assert "workers send with writev (io_uring_setup: Operation not permitted)" in log, log
    else:  # this machine's kernel may or may not allow io_uring: either is said
        assert ("workers send through io_uring" in log or
                "workers send with writev (io_uring_setup:" in log), log


def test_a_stream_arrives_whole_and_in_order(path_server):
    """Two senders pipeline 300 messages each into a room of 40: every
    member gets all 600, each sender's in order, nothing twice; a global
    connection gets none of them."""
    _, srv = path_server
    N, MEMBERS = 300, 40

    async def go():
        members = [await connect(srv, "/ws/stream") for _ in range(MEMBERS)]
        g = await connect(srv, "/ws")
        payload = "x" * 700  # several frames per write, and partial writes

        async def send(c, tag):
            for i in range(N):
                await c.send(json.dumps({"data": {"tag": tag, "n": i, "p": payload}}))

        async def read(c):
            got = [await recv_json(c, 20) for _ in range(2 * N)]
            return got
        readers = [asyncio.create_task(read(c)) for c in members]
        await asyncio.gather(send(members[0], "a"), send(members[1], "b"))
        for got in await asyncio.gather(*readers):
            for tag in ("a", "b"):
                assert [m["data"]["n"] for m in got if m["data"]["tag"] == tag] == list(range(N))
        for c in members[:3]:
            assert await silent(c, 0.2)
        assert await silent(g, 0)
    run(go())
