"""Plain HTTP: routes, refusals, limits and slow clients."""
import json
import socket
import time

from conftest import wait_for
from wsraw import Raw, http_get, http_request

UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def test_plain_routes(server):
    assert http_get(server.port, "/healthz")[0] == 200
    status, _, body = http_get(server.port, "/readyz")
    assert status == 200 and body == b"ready\n"
    status, headers, body = http_get(server.port, "/")
    assert status == 200 and headers["content-type"][0].startswith("text/html")
    assert b"<title>chat-api</title>" in body
    for path in ("/api/chat-api/ws/stats", "/ws/stats"):
        status, headers, body = http_get(server.port, path)
        assert status == 200 and headers["content-type"] == ["application/json"]
        stats = json.loads(body)
        assert set(stats) >= {"pod_id", "uptime_seconds", "connections", "rooms", "messages",
                              "slow_consumers_closed", "broker", "workers"}
        assert stats["broker"] == {**stats["broker"], "mode": "standalone", "connected": True}
        assert len(stats["workers"]) == 2
    status, _, body = http_get(server.port, "/metrics")
    assert status == 200
    assert b"# TYPE chat_connections_current gauge" in body
    assert b"chat_messages_delivered_total 0" in body


def test_refusals_have_the_contract_status(server):
    p = server.port
    cases = [
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("POST /api/chat-api/ws HTTP/1.1\r\nHost: x\r\n" + UPGRADE + "\r\n", 405),
        ("GET /api/chat-api/ws HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        ("GET /ws/lobby HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426),
        ("GET /ws/bad%20room HTTP/1.1\r\nHost: x\r\n" + UPGRADE + "\r\n", 400),
        ("GET /ws/" + "a" * 129 + " HTTP/1.1\r\nHost: x\r\n" + UPGRADE + "\r\n", 400),
        ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n", 400),
        ("GET /ws HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("BLAH\r\n\r\n", 400),
        ("GET /api/chat-api/echo HTTP/1.1\r\nHost: x\r\n" + UPGRADE + "\r\n", 404),
    ]
    for raw, want in cases:
        status, headers, body = http_request(p, raw.encode())
        assert status == want, (raw, status, body)
        assert body.endswith(b"\n") and len(body) > 1, "refusals say why"
        if status == 426:
            assert headers["sec-websocket-version"] == ["13"]
        if status == 405:
            assert headers["allow"] == ["GET"]
    stats = server.stats()
    assert stats["http"]["bad_requests"] >= len(cases)


def test_head_over_8k_is_431(server):
    raw = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    assert http_request(server.port, raw)[0] == 431


def test_slowloris_does_not_delay_others(server):
    """Clients dribbling a head byte by byte, or sending nothing, must not
    hold up anyone else; a head not complete within 10 s is dropped."""
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /ws/lob")
        slow.append(s)
    silent = socket.create_connection(("127.0.0.1", server.port))
    t0 = time.monotonic()
    for _ in range(5):
        assert http_get(server.port, "/healthz")[0] == 200
        c = Raw(server.port, "/ws/lobby")
        assert c.status == 101
        c.recv_frame()  # welcome
        c.close()
        for s in slow:
            s.sendall(b"b")
    # Well before the 10 s head deadline would free anything: nobody waited
    # for the slow clients.
    assert time.monotonic() - t0 < 8.0
    # The silent client is disconnected at its 10 s deadline, not before.
    silent.settimeout(20)
    assert silent.recv(1) == b""
    assert 9.0 < time.monotonic() - t0 < 16
    for s in slow:
        s.close()


def test_readyz_and_upgrades_refused_while_shutting_down(start_server):
    srv = start_server(SHUTDOWN_TIMEOUT="3s")
    holder = Raw(srv.port, "/ws/lobby")  # keeps the drain going
    holder.recv_frame()
    srv.terminate()
    code, reason, _ = holder.recv_until_close()
    assert code == 1001
    assert http_get(srv.port, "/readyz")[0] == 503
    status, _, body = http_request(srv.port, ("GET /ws HTTP/1.1\r\nHost: x\r\n" + UPGRADE + "\r\n").encode())
    assert status == 503
    holder.close()


def test_max_connections_gives_503(start_server):
    srv = start_server(MAX_CONNECTIONS=2)
    a, b = Raw(srv.port, "/ws"), Raw(srv.port, "/ws")
    assert a.status == 101 and b.status == 101
    c = Raw(srv.port, "/ws")
    assert c.status == 503
    assert srv.stats()["connections"]["rejected"] == 1
    a.close()
    wait_for(lambda: srv.stats()["connections"]["current"] == 1, what="a to be gone")
    d = Raw(srv.port, "/ws")
    assert d.status == 101
    for x in (b, c, d):
        x.close()
