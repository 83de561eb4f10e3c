"""Chat semantics over real WebSocket clients (Debian's python3-websockets)."""
import asyncio
import json
import time

import websockets

from aio import T, recv_json, silent
from conftest import wait_for
from tokens import make_jwt
from wsraw import Raw

async def welcome(ws):
    m = await recv_json(ws)
    assert m["type"] == "system" and m["data"]["event"] == "welcome", m
    return m


def run(coro):
    return asyncio.run(coro)


def test_welcome_rooms_and_global(server):
    async def go():
        async with websockets.connect(server.url("/api/chat-api/ws/lobby")) as a, \
                   websockets.connect(server.url("/ws?room=lobby")) as b, \
                   websockets.connect(server.url("/ws/ops")) as o, \
                   websockets.connect(server.url("/api/chat-api/ws")) as g:
            wa = await welcome(a)
            assert wa["data"]["room"] == "lobby" and wa["data"]["pod"] == server.stats()["pod_id"]
            await welcome(b)
            await welcome(o)
            wg = await welcome(g)
            assert wg["data"]["room"] is None and wg["room"] is None

            await a.send("hi lobby")
            for c in (a, b):  # the sender's own copy is its acknowledgement
                m = await recv_json(c)
                assert m["type"] == "chat" and m["room"] == "lobby"
                assert m["data"] == {"text": "hi lobby"}
                assert m["from"] == wa["data"]["client_id"]
            # Room isolation: neither ops nor the global client hears it.
            assert await silent(o) and await silent(g)

            # A global message reaches everyone, room members included.
            await g.send(json.dumps({"type": "notification", "data": {"x": 1}}))
            for c in (a, b, o, g):
                m = await recv_json(c)
                assert m["room"] is None and m["type"] == "notification" and m["data"] == {"x": 1}
    run(go())


def test_envelope_rules(server):
    async def go():
        async with websockets.connect(server.url("/ws/lobby")) as a:
            me = (await welcome(a))["data"]["client_id"]
            await a.send(json.dumps({"type": "presence", "id": "my-1", "from": "mallory",
                                     "timestamp": "1999-01-01T00:00:00Z", "room": "lobby",
                                     "data": {"big": 12345678901234567891}}))
            raw = await asyncio.wait_for(a.recv(), T)
            m = json.loads(raw)
            assert m["id"] == "my-1" and m["type"] == "presence"
            assert m["from"] == me  # not forgeable
            assert m["timestamp"] != "1999-01-01T00:00:00Z"
            assert m["timestamp"].endswith("Z") and len(m["timestamp"]) == 24
            # data is carried byte for byte: the big integer keeps every digit.
            assert '"data":{"big": 12345678901234567891}' in raw
            # A server-made id is a UUID v4.
            await a.send("{}")
            m = await recv_json(a)
            assert len(m["id"]) == 36 and m["id"][14] == "4" and m["data"] == {}
            # Errors go to the sender alone, and the connection stays open.
            for msg, code in ((json.dumps({"room": "elsewhere"}), "not_in_room"),
                              (json.dumps({"type": "shout"}), "invalid_type"),
                              # system is the server's voice: a client's is refused.
                              (json.dumps({"type": "system", "data": {"event": "welcome"}}),
                               "invalid_type"),
                              (json.dumps({"id": "x" * 65}), "invalid_id")):
                await a.send(msg)
                m = await recv_json(a)
                assert m["type"] == "system" and m["data"]["event"] == "error"
                assert m["data"]["code"] == code and m["data"]["message"]
            await a.send("still here")
            assert (await recv_json(a))["data"] == {"text": "still here"}
    run(go())


def test_order_and_exactly_once_500(server):
    """Two senders in one room, 500 messages each: every member gets each
    message once, and each sender's messages in the order it sent them."""
    N = 500

    async def go():
        conns = [await websockets.connect(server.url("/ws/order"), max_queue=None) for _ in range(4)]
        ids = [(await welcome(c))["data"]["client_id"] for c in conns]

        async def send_all(c, tag):
            for i in range(N):
                await c.send(json.dumps({"data": {"tag": tag, "seq": i}}))

        async def read_all(c):
            got = []
            while len(got) < 2 * N:
                got.append(await recv_json(c))
            assert await silent(c, 0.2)
            return got

        readers = [asyncio.create_task(read_all(c)) for c in conns]
        await asyncio.gather(send_all(conns[0], "a"), send_all(conns[1], "b"))
        results = await asyncio.gather(*readers)
        for got in results:
            for tag, sender in (("a", ids[0]), ("b", ids[1])):
                seqs = [m["data"]["seq"] for m in got if m["data"]["tag"] == tag]
                assert seqs == list(range(N)), "each message once, in send order"
                assert all(m["from"] == sender for m in got if m["data"]["tag"] == tag)
        for c in conns:
            await c.close()
    run(go())
    stats = server.stats()
    assert stats["messages"]["received"] == 2 * N
    assert stats["messages"]["published"] == 2 * N
    assert stats["messages"]["delivered"] >= 4 * 2 * N


def test_stats_follow_clients(server):
    assert server.stats()["connections"]["current"] == 0
    a, b, c = Raw(server.port, "/ws/lobby"), Raw(server.port, "/ws/lobby"), Raw(server.port, "/ws/ops")
    # Counters are live; the rooms are a snapshot at most about a second old.
    st = wait_for(lambda: (s := server.stats())["connections"]["current"] == 3 and
                  s["rooms"]["count"] == 2 and s, what="3 connections in 2 rooms in stats")
    assert st["connections"]["total"] == 3
    assert st["rooms"] == {"count": 2, "members": {"lobby": 2, "ops": 1}}
    assert sum(w["connections"] for w in st["workers"]) == 3
    a.close()
    c.close()
    st = wait_for(lambda: (s := server.stats())["connections"]["current"] == 1 and
                  s["rooms"]["count"] == 1 and s, what="1 connection in 1 room in stats")
    assert st["rooms"] == {"count": 1, "members": {"lobby": 1}}
    b.close()
    wait_for(lambda: server.stats()["rooms"]["count"] == 0, what="no rooms")


def test_auth(start_server):
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET="s3cret")
    good = make_jwt({"sub": "alice", "exp": int(time.time()) + 60}, "s3cret")
    assert Raw(srv.port, "/ws/lobby").status == 401
    assert Raw(srv.port, "/ws/lobby?token=" + make_jwt({"sub": "x"}, "wrong")).status == 401
    assert Raw(srv.port, "/ws/lobby?token=" + make_jwt({"sub": "x", "exp": 1}, "s3cret")).status == 401
    assert Raw(srv.port, "/ws/lobby?token=" + make_jwt({"sub": "x"}, "s3cret", alg="none")).status == 401

    async def go():
        async with websockets.connect(srv.url("/ws/lobby"),
                                      extra_headers={"Authorization": "Bearer " + good}) as a:
            assert (await welcome(a))["data"]["client_id"] == "alice"
            await a.send("hello")
            assert (await recv_json(a))["from"] == "alice"
        async with websockets.connect(srv.url("/ws/lobby?token=" + good)) as b:
            assert (await welcome(b))["data"]["client_id"] == "alice"
    run(go())


def test_auth_requires_secret():
    import subprocess
    from conftest import BIN
    p = subprocess.run([BIN], env={"AUTH_ENABLED": "true", "PORT": "1"}, capture_output=True, timeout=10)
    assert p.returncode == 2 and b"JWT_SECRET" in p.stderr


def test_origin_allowlist(start_server):
    srv = start_server(ALLOWED_ORIGINS="http://good.example")
    assert Raw(srv.port, "/ws", "Origin: http://evil.example\r\n").status == 403
    assert Raw(srv.port, "/ws", "Origin: http://good.example\r\n").status == 101
    assert Raw(srv.port, "/ws").status == 101
