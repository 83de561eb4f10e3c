"""Access control: which rooms a token may enter, read-only tokens, token
lifetime on a live connection, secrets from files, origins, and that no
secret or token ever reaches a log line."""
import json
import os
import subprocess
import tempfile
import time

from conftest import BIN, free_port, wait_for
from tokens import make_jwt
from wsraw import Raw, http_get, upgrade_request

SECRET = "s3cret-for-tests"


def upgrade_status(srv, path, headers=""):
    status, _, body = upgrade_request(srv.port, path, headers)
    return status, body.decode("utf-8", "replace")  # after a 101: the welcome frame


def joined(srv, path):
    r = Raw(srv.port, path)
    assert r.status == 101, r.status
    _, op, payload = r.recv_frame()
    assert json.loads(payload)["data"]["event"] == "welcome"
    return r


def test_rooms_claim_exact_prefix_and_global(start_server):
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET)
    tok = make_jwt({"sub": "ann", "rooms": ["lobby", "team-42-*", "global"]}, SECRET)
    for path in ("/ws/lobby", "/ws/team-42-dev", "/ws", "/ws?room=team-42-"):
        assert upgrade_status(srv, f"{path}{'&' if '?' in path else '?'}token={tok}")[0] == 101, path
    status, body = upgrade_status(srv, f"/ws/ops?token={tok}")
    assert status == 403 and "rooms claim" in body
    assert upgrade_status(srv, f"/ws/team-4?token={tok}")[0] == 403
    only_lobby = make_jwt({"sub": "bob", "rooms": ["lobby"]}, SECRET)
    assert upgrade_status(srv, f"/ws?token={only_lobby}")[0] == 403, "global needs \"global\""
    # Without the claim, every room (AUTH_REQUIRE_ROOMS is off).
    assert upgrade_status(srv, f"/ws/ops?token={make_jwt({'sub': 'cy'}, SECRET)}")[0] == 101


def test_require_rooms(start_server):
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET, AUTH_REQUIRE_ROOMS="true")
    status, body = upgrade_status(srv, f"/ws/ops?token={make_jwt({'sub': 'cy'}, SECRET)}")
    assert status == 403 and "AUTH_REQUIRE_ROOMS" in body
    tok = make_jwt({"sub": "cy", "rooms": ["ops"]}, SECRET)
    assert upgrade_status(srv, f"/ws/ops?token={tok}")[0] == 101


def test_read_only_token_receives_but_cannot_speak(start_server):
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET)
    reader = joined(srv, f"/ws/news?token={make_jwt({'sub': 'reader', 'read_only': True}, SECRET)}")
    editor = joined(srv, f"/ws/news?token={make_jwt({'sub': 'editor'}, SECRET)}")
    editor.send_frame(1, b"extra, extra")
    for c in (reader, editor):
        m = json.loads(c.recv_frame()[2])
        assert m["from"] == "editor" and m["data"] == {"text": "extra, extra"}
    reader.send_frame(1, b"can I?")
    m = json.loads(reader.recv_frame()[2])
    assert m["type"] == "system" and m["data"]["code"] == "read_only"
    # The editor hears nothing of it; the reader is still connected and served.
    editor.send_frame(1, b"second")
    assert json.loads(editor.recv_frame()[2])["data"] == {"text": "second"}
    assert json.loads(reader.recv_frame()[2])["data"] == {"text": "second"}
    st = srv.stats()
    assert st["messages"]["read_only"] == 1
    reader.close()
    editor.close()


def test_live_connection_closed_at_exp_plus_leeway(start_server):
    """One rule for clock skew: a token 3 s past exp is admitted (5 s of
    leeway), and its connection is closed with 1008 when exp + 5 s comes;
    nothing it sends from that moment on is delivered."""
    import threading
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET)
    exp = int(time.time()) - 3
    c = joined(srv, f"/ws/x?token={make_jwt({'sub': 'brief', 'exp': exp}, SECRET)}")
    listener = joined(srv, f"/ws/x?token={make_jwt({'sub': 'ear'}, SECRET)}")
    end = exp + 5  # the leeway of interface.md's upgrade check
    stop = threading.Event()

    def chatter():
        i = 0
        while not stop.is_set():
            try:
                c.send_frame(1, json.dumps({"data": {"i": i}}).encode())
            except OSError:
                return
            i += 1
            time.sleep(0.02)
    t = threading.Thread(target=chatter)
    t.start()
    try:
        c.s.settimeout(15)
        code, reason, _ = c.recv_until_close()
        closed_at = time.time()
    finally:
        stop.set()
        t.join()
    assert (code, reason) == (1008, "token expired")
    assert closed_at > end - 0.05, f"closed {end - closed_at:.2f} s before exp + leeway"
    assert closed_at < end + 5, "closed long after exp + leeway"
    # What the listener got from the expired sender: all stamped before the end.
    got = []
    listener.s.settimeout(1)
    try:
        while True:
            m = json.loads(listener.recv_frame()[2])
            if m["from"] == "brief":
                got.append(m["timestamp"])
    except OSError:
        pass
    assert got, "the token was good until exp + leeway: messages went through"
    limit = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end)) + ".000Z"
    assert max(got) < limit, (max(got), limit)
    assert srv.stats()["tokens_expired"] == 1
    c.close()
    listener.close()


def test_far_future_exp_is_no_end(start_server):
    """exp of 9.3e15 or 1e300 (past any int64 of milliseconds) is a token that
    does not end soon: admitted and kept, not closed at once."""
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET)
    conns = [joined(srv, f"/ws/far?token={make_jwt({'sub': f'u{i}', 'exp': exp}, SECRET)}")
             for i, exp in enumerate((9.3e15, 1e300))]
    # A token ending a second from now: once it is closed, the server has
    # looked at the far ones too (they would have been closed at once).
    brief = joined(srv, f"/ws/far?token={make_jwt({'sub': 'b', 'exp': int(time.time()) - 4}, SECRET)}")
    brief.s.settimeout(10)
    assert brief.recv_until_close()[:2] == (1008, "token expired")
    brief.close()
    for c in conns:
        c.send_frame(1, b"still here")
        for other in conns:
            m = json.loads(other.recv_frame()[2])
            assert m["data"] == {"text": "still here"}
    assert srv.stats()["tokens_expired"] == 1
    for c in conns:
        c.close()


def test_secret_from_a_file(start_server):
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(SECRET + "\n")  # as echo writes it
    try:
        srv = start_server(AUTH_ENABLED="true", JWT_SECRET_FILE=f.name)
        assert upgrade_status(srv, f"/ws/x?token={make_jwt({'sub': 'f'}, SECRET)}")[0] == 101
        assert upgrade_status(srv, f"/ws/x?token={make_jwt({'sub': 'f'}, SECRET + chr(10))}")[0] == 401
        for env, word in (({"JWT_SECRET_FILE": f.name, "JWT_SECRET": "x"}, "both"),
                          ({"JWT_SECRET_FILE": "/nonexistent/secret"}, "cannot read")):
            p = subprocess.run([BIN], env={"AUTH_ENABLED": "true", "PORT": str(free_port()), **env},
                               capture_output=True, timeout=10)
            assert p.returncode == 2 and b"JWT_SECRET_FILE" in p.stderr and word.encode() in p.stderr
    finally:
        os.unlink(f.name)


def test_origin_suffix_entries(start_server):
    srv = start_server(ALLOWED_ORIGINS="*.example.com,https://exact.org,http://*.dev.test:8080")
    cases = {"https://chat.example.com": 101, "http://a.b.example.com:8443": 101,
             "https://example.com": 403, "https://evil-example.com": 403,
             "https://example.com.evil.org": 403, "https://exact.org": 101,
             "https://sub.exact.org": 403, "http://x.dev.test:8080": 101,
             "https://x.dev.test:8080": 403, "http://x.dev.test:9090": 403}
    for origin, want in cases.items():
        assert upgrade_status(srv, "/ws/x", f"Origin: {origin}\r\n")[0] == want, origin


def test_no_secret_or_token_in_any_log_line(start_server, redis_server):
    """At debug level, through good and bad tokens and a Redis that wants a
    password: neither the JWT secret, nor a token, nor the Redis password
    appears in the log."""
    r = redis_server(password="redis-pass-xyz")
    srv = start_server(AUTH_ENABLED="true", JWT_SECRET=SECRET, LOG_LEVEL="debug",
                       REDIS_URL=f"redis://:redis-pass-xyz@127.0.0.1:{r.port}")
    good = make_jwt({"sub": "ok"}, SECRET)
    bad = make_jwt({"sub": "ok"}, "wrong-secret")
    expired = make_jwt({"sub": "ok", "exp": 1}, SECRET)
    assert upgrade_status(srv, f"/ws/x?token={good}")[0] == 101
    for t in (bad, expired):
        assert upgrade_status(srv, "/ws/x", f"Authorization: Bearer {t}\r\n")[0] == 401
    r.kill()  # the pod retries, logging why
    r.start(password="another-pass")
    wait_for(lambda: http_get(srv.port, "/readyz")[0] == 503, 10, "the pod to notice")
    # The refusal of the pod's password is in the log (read as it is written).
    wait_for(lambda: "WRONGPASS" in srv.log(), 30, "the pod to log Redis' refusal")
    _, err = srv.stop()
    assert "debug" in err, "debug lines were written"
    for secret in (SECRET, good, bad, expired, "redis-pass-xyz", "another-pass"):
        assert secret not in err
