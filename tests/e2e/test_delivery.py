"""Cross-pod delivery you can count. Two pods and a real redis-server, a
sender on each pod streaming a few hundred messages a second into one room,
and a fault injected in Redis during the stream. Afterwards, at every
client: no duplicate, no reordering; from its own pod's sender, every
message; from the other pod's sender, every message but those the
receiving pod counted in broker.lost, exactly."""
import json
import signal
import socket
import time

import pytest

from conftest import ready, wait_for
from pod_stream import stream_through
from wsraw import Raw, http_get, http_request


@pytest.fixture
def pods(two_pods):
    return two_pods


def test_redis_frozen_then_thawed(pods):
    """SIGSTOP for 12 s: /readyz turns 503 within a few seconds; batches
    Redis took while frozen and the pods sent again are delivered once."""
    def freeze(r, ps):
        r.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            # Within a few seconds (the 3 s command deadline), well inside the freeze.
            wait_for(lambda: not ready(ps[0]) and not ready(ps[1]), 10,
                     "both pods to say not ready")
            time.sleep(max(0.0, 12 - (time.monotonic() - t0)))
        finally:
            r.proc.send_signal(signal.SIGCONT)
    missing, b1, b2 = stream_through(freeze, pods)
    print(f"frozen: {missing} lost, duplicates dropped {b1['duplicates']} + {b2['duplicates']}")


def test_client_pause(pods):
    def pause(r, ps):
        r.client().execute_command("CLIENT", "PAUSE", 4000, "ALL")
        time.sleep(4.5)
    stream_through(pause, pods)


def test_subscribers_killed(pods):
    def kill_subscribers(r, ps):
        assert r.client().execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 2
    missing, _, _ = stream_through(kill_subscribers, pods)
    print(f"subscribers killed: {missing} lost")


def test_redis_killed_and_restarted(pods):
    def restart(r, ps):
        r.kill()
        time.sleep(2)
        r.start()
    missing, b1, b2 = stream_through(restart, pods)
    assert b1["reconnects"] >= 1 and b2["reconnects"] >= 1
    print(f"restarted: {missing} lost")


def test_redis_back_with_an_unknown_password_then_without(pods):
    def wrong_password(r, ps):
        r.kill()
        r.start(password="not-the-pods")
        wait_for(lambda: not ready(ps[0]) and not ready(ps[1]), 10, "both pods to say not ready")
        time.sleep(3)
        r.kill()
        r.start()
    stream_through(wrong_password, pods)


def test_refused_pod_backs_off_for_real(start_server, redis_server):
    """Redis that accepts connections and refuses everything (a password the
    pod does not have): fewer than 40 connections from the pod in 20 s, and
    the same refusal is not logged on every try."""
    r = redis_server()
    p = start_server(REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="lonely", LOG_LEVEL="info")
    wait_for(lambda: ready(p), 10, "the pod to be ready")
    r.kill()
    r.start(password="secret")
    admin = r.client()
    before = admin.info("stats")["total_connections_received"]
    time.sleep(20)
    made = admin.info("stats")["total_connections_received"] - before
    assert not ready(p)
    assert made < 40, f"{made} connections in 20 s"
    code, err = p.stop()
    assert code == 0
    refusals = [line for line in err.splitlines() if "NOAUTH" in line or "AUTH" in line]
    print(f"{made} connections, {len(refusals)} log lines about it")
    assert len(refusals) <= 16, "\n".join(refusals)


def test_backend_payloads_are_checked_against_their_channel(pods):
    r, (p1, _) = pods
    c = Raw(p1.port, "/ws/ops")
    c.recv_frame()
    cli = r.client()
    cli.publish("realtime:room:ops", json.dumps({"room": "dev", "data": {"n": 1}}))
    cli.publish("realtime:global", json.dumps({"room": "ops", "data": {"n": 2}}))
    cli.publish("realtime:room:ops", json.dumps({"data": {"n": 3}, "pod": "pod-1"}))
    cli.publish("realtime:room:ops", json.dumps({"room": "ops", "data": {"n": 4}}))
    _, _, payload = c.recv_frame()
    assert json.loads(payload)["data"] == {"n": 4}, "only the payload that matches arrives"
    b = wait_for(lambda: (s := p1.stats()["broker"])["forged_pod"] == 1 and s, 5,
                 "the forged pod id to be counted")
    assert b["mismatch_dropped"] == 2
    c.close()


def test_pings_repeat_until_pong_timeout(start_server):
    srv = start_server(PING_INTERVAL="300ms", PONG_TIMEOUT="1100ms")
    c = Raw(srv.port, "/ws/hb")
    c.recv_frame()
    c.s.settimeout(5)
    pings = 0
    try:
        while True:
            _, op, _ = c.recv_frame()
            if op == 9:
                pings += 1
            elif op == 8:
                break
    except EOFError:
        pass
    assert pings >= 3, f"{pings} pings before the close"


def test_http_details(start_server):
    srv = start_server()

    def raw(req):
        return http_request(srv.port, req.encode())
    # RFC 9112 3.2.2: the absolute-form is accepted.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall((f"GET http://127.0.0.1:{srv.port}/api/chat-api/ws/lobby HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
              .encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 101 ")
    s.close()
    # Methods are case-sensitive.
    assert raw("get /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 405
    # HEAD: the head of the GET answer, no body.
    for path in ("/healthz", "/readyz", "/metrics"):
        status, headers, body = raw(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        get_status, _, get_body = http_get(srv.port, path)
        assert status == get_status == 200 and body == b""
        assert int(headers["content-length"][0]) > 0
    # Repeated ?room= that disagree.
    status, _, body = raw("GET /ws?room=a&room=b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n")
    assert status == 400


def test_sub_that_would_break_other_clients_is_refused(start_server):
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    def token(payload):
        head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(payload)
        sig = hmac.new(b"k", head.encode(), hashlib.sha256).digest()
        return head + "." + b64(sig)
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET="k")
    for sub in (b'{"sub":"ev\xffil"}', b'{"sub":"system"}', b'{"sub":"a\\u001bb"}'):
        assert http_get(srv.port, f"/ws/x?token={token(sub)}",
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n")[0] == 401, sub
    alice = token(b'{"sub":"alice"}')
    ok = Raw(srv.port, f"/ws/x?token={alice}")
    assert ok.status == 101
    ok.close()

