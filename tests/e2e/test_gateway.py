"""The gateway of docker-compose.yml (deploy/nginx.conf), run with Debian's
nginx in front of two real pods: WebSocket upgrades pass through it, are
spread over both pods, and messages cross between them."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile

import pytest
import websockets

from conftest import RedisServer, free_port, ready, wait_for
from wsraw import http_get

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(HERE, "../../deploy/nginx.conf")


def run_gateway(start_server, **pod_env):
    """Redis, two pods and nginx with deploy/nginx.conf; yields (port, pods)."""
    r = RedisServer()
    tmp = tempfile.mkdtemp(prefix="chat-nginx-")
    proc = None
    try:
        url = f"redis://127.0.0.1:{r.port}"
        pods = [start_server(REDIS_URL=url, POD_ID=f"chat-{i}", **pod_env) for i in (1, 2)]
        for p in pods:
            wait_for(lambda: ready(p), 10, "pod ready")
        port = free_port()
        conf = open(CONF).read()
        # Only the addresses change: compose's service names become our ports.
        conf = conf.replace("server chat-1:8080;", f"server 127.0.0.1:{pods[0].port};")
        conf = conf.replace("server chat-2:8080;", f"server 127.0.0.1:{pods[1].port};")
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        assert conf.count("127.0.0.1") == 3, "deploy/nginx.conf no longer has the expected shape"
        temp_paths = "".join(f"    {k}_temp_path {tmp}/{k};\n"
                             for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = conf.replace("http {\n", "http {\n    access_log off;\n" + temp_paths, 1)
        conf = f"daemon off;\npid {tmp}/nginx.pid;\nerror_log stderr warn;\n" + conf
        path = os.path.join(tmp, "nginx.conf")
        open(path, "w").write(conf)
        proc = subprocess.Popen(["nginx", "-c", path, "-p", tmp], stderr=subprocess.PIPE)

        def up():
            if proc.poll() is not None:
                raise AssertionError("nginx exited: " + proc.stderr.read().decode())
            try:
                return http_get(port, "/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, 10, "nginx to answer")
        yield port, pods
    finally:
        # Runs whether setup failed or the test ran: nothing is left behind.
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        r.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def gateway(start_server):
    yield from run_gateway(start_server)


@pytest.fixture
def limited_gateway(start_server):
    # As docker-compose.yml sets them: the pods believe the gateway's
    # X-Forwarded-For, and count connections per real client.
    yield from run_gateway(start_server, TRUSTED_PROXIES="127.0.0.1", MAX_CONNECTIONS_PER_IP="1")


def test_per_address_limit_counts_clients_behind_the_gateway(limited_gateway):
    """nginx connects from 127.0.0.1 for everyone; the pods count the address
    nginx saw (X-Forwarded-For), so one busy client does not lock out others."""
    port, pods = limited_gateway

    def connect(source):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /api/chat-api/ws/lobby HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        status = int(s.recv(4096).split(b" ")[1])
        return s, status
    held = []
    for _ in range(2):  # one on each pod (least_conn)
        s, st = connect("127.0.0.2")
        assert st == 101
        held.append(s)
    s, st = connect("127.0.0.2")
    held.append(s)
    assert st == 503, "a third connection from the same client is over the limit on its pod"
    s, st = connect("127.0.0.3")
    held.append(s)
    assert st == 101, "another client behind the same gateway is not"
    for s in held:
        s.close()


def test_gateway_balances_upgrades_across_pods(gateway):
    port, pods = gateway

    async def go():
        conns, seen = [], set()
        for _ in range(6):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/chat-api/ws/lobby")
            w = json.loads(await asyncio.wait_for(ws.recv(), 5))
            seen.add(w["data"]["pod"])
            conns.append(ws)
        assert seen == {"chat-1", "chat-2"}, "least_conn spreads upgrades over both pods"
        await conns[0].send("through the gateway")
        for ws in conns:
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["data"] == {"text": "through the gateway"}
        for ws in conns:
            await ws.close()
    asyncio.run(go())


def test_demo_page_through_the_gateway(gateway):
    """The page's URLs are relative: served through nginx, two pages land on
    the two pods and chat (Chromium, tests/browser/gateway.mjs)."""
    port, _ = gateway
    browser_dir = os.path.join(HERE, "..", "browser")
    out = subprocess.run(["node", os.path.join(browser_dir, "gateway.mjs"),
                          f"http://127.0.0.1:{port}/"], cwd=browser_dir,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
