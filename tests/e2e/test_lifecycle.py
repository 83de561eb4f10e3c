"""Heartbeats, slow consumers, configuration errors and graceful shutdown."""
import asyncio
import json
import subprocess
import time

import pytest
import websockets

from conftest import BIN, wait_for
from wsraw import Raw


def test_heartbeat_closes_a_silent_client_and_keeps_a_live_one(start_server):
    srv = start_server(PING_INTERVAL="300ms", PONG_TIMEOUT="900ms")

    def silent_client():
        """Blocking raw client that never answers: run in a thread so the
        event loop stays free to answer the live client's pings."""
        silent = Raw(srv.port, "/ws/hb")
        t0 = time.monotonic()
        silent.recv_frame()  # welcome
        fin, op, payload = silent.recv_frame()
        assert op == 9, "the server pings an idle connection"
        silent.s.settimeout(5)
        assert silent.at_eof(), "and drops it when no pong comes"
        return time.monotonic() - t0

    async def go():
        # websockets answers pings by itself: this client stays.
        async with websockets.connect(srv.url("/ws/hb"), ping_interval=None) as live:
            await asyncio.wait_for(live.recv(), 5)  # welcome
            elapsed = await asyncio.to_thread(silent_client)
            # Not before PONG_TIMEOUT; the upper bound is for a loaded machine.
            assert 0.8 < elapsed < 5
            # The live client has been through the same interval and is still served.
            await live.send("still alive")
            m = json.loads(await asyncio.wait_for(live.recv(), 5))
            assert m["data"] == {"text": "still alive"}
    asyncio.run(go())
    assert srv.stats()["heartbeat_timeouts"] == 1


def test_slow_consumer_is_closed_and_others_get_everything(start_server):
    """A member that never reads fills its kernel buffers and then its send
    ring (SEND_BUFFER); it is closed, and the members that do read get every
    message. 600 x 16 KB is more than the non-reader's buffers can absorb."""
    srv = start_server(SEND_BUFFER="64", WORKERS="1")
    N = 600
    slow = Raw(srv.port, "/ws/flood", rcvbuf=4096)  # never reads after the handshake

    async def go():
        async with websockets.connect(srv.url("/ws/flood"), max_size=None, max_queue=None) as fast, \
                   websockets.connect(srv.url("/ws/flood"), max_size=None, max_queue=None) as sender:
            await asyncio.wait_for(fast.recv(), 5)
            await asyncio.wait_for(sender.recv(), 5)
            pad = "p" * 16000

            acked = asyncio.Condition()
            own = []

            async def read_all(ws, mine):
                seqs = []
                while len(seqs) < N:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    seqs.append(m["data"]["seq"])
                    if mine:
                        async with acked:
                            own.append(seqs[-1])
                            acked.notify()
                return seqs

            readers = [asyncio.create_task(read_all(fast, False)),
                       asyncio.create_task(read_all(sender, True))]
            # Closed loop: at most 32 messages in flight, acknowledged by the
            # sender's own copies, so the readers are never the bottleneck.
            for i in range(N):
                async with acked:
                    await acked.wait_for(lambda: len(own) >= i - 32)
                await sender.send(json.dumps({"data": {"seq": i, "pad": pad}}))
            for got in await asyncio.gather(*readers):
                assert got == list(range(N))
    asyncio.run(go())
    wait_for(lambda: srv.stats()["slow_consumers_closed"] == 1,
                  what="the slow consumer to be counted")
    # It stays in the room only while its 1008 waits to be read (2 s at most).
    wait_for(lambda: "flood" not in srv.stats()["rooms"]["members"], 5,
             "the slow consumer to leave its room")
    slow.close()


def test_graceful_shutdown_sends_queued_messages_then_1001():
    from conftest import Server
    srv = Server({"SHUTDOWN_TIMEOUT": "5s"})
    reader = Raw(srv.port, "/ws/bye")  # does not read until the server is stopping

    async def send_and_wait_for_own_copies():
        async with websockets.connect(srv.url("/ws/bye")) as sender:
            await asyncio.wait_for(sender.recv(), 5)
            for i in range(50):
                await sender.send(json.dumps({"data": {"seq": i}}))
            for i in range(50):
                assert json.loads(await asyncio.wait_for(sender.recv(), 5))["data"]["seq"] == i
            srv.terminate()
            # The sender is closed with 1001 too.
            await asyncio.wait_for(sender.wait_closed(), 10)
            assert sender.close_code == 1001
    asyncio.run(send_and_wait_for_own_copies())
    code, reason, frames = reader.recv_until_close()
    assert code == 1001 and reason == "server shutting down"
    msgs = [json.loads(p) for op, p in frames if op == 1]
    assert msgs[0]["data"]["event"] == "welcome"
    assert [m["data"]["seq"] for m in msgs[1:]] == list(range(50))
    exit_code, err = srv.stop()
    assert exit_code == 0, err


def test_shutdown_timeout_bounds_a_client_that_never_closes():
    from conftest import Server
    srv = Server({"SHUTDOWN_TIMEOUT": "1s"})
    stubborn = Raw(srv.port, "/ws/x")  # never answers the close
    t0 = time.monotonic()
    exit_code, err = srv.stop()
    assert exit_code == 0, err
    assert time.monotonic() - t0 < 1 + 7  # SHUTDOWN_TIMEOUT, and room for a loaded machine
    stubborn.close()


@pytest.mark.parametrize("env,name", [
    ({"PORT": "0"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"WORKERS": "lots"}, "WORKERS"),
    ({"PING_INTERVAL": "5 minutes"}, "PING_INTERVAL"),
    ({"PING_INTERVAL": "90s"}, "PONG_TIMEOUT"),
    ({"MAX_MESSAGE_SIZE": "-1"}, "MAX_MESSAGE_SIZE"),
    ({"SEND_BUFFER": "0"}, "SEND_BUFFER"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ({"REDIS_URL": "mysql://x"}, "REDIS_URL"),
    ({"BIND_ADDR": "not-an-ip"}, "BIND_ADDR"),
])
def test_bad_configuration_is_refused_naming_the_variable(env, name):
    p = subprocess.run([BIN], env=env, capture_output=True, timeout=10)
    assert p.returncode == 2
    assert f"configuration error: {name}:".encode() in p.stderr, p.stderr


def test_port_in_use_is_a_clear_error(server):
    p = subprocess.run([BIN], env={"PORT": str(server.port), "BIND_ADDR": "127.0.0.1"},
                       capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"cannot listen on 127.0.0.1:" in p.stderr
