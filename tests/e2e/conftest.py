"""Fixtures for end-to-end tests: start the real binary on a free port.

The binary comes from CHAT_API_BIN (set by `make e2e`, and by `make asan` /
`make tsan` to their sanitizer builds). Every server a test starts is stopped
with SIGTERM at the end and must exit 0: a sanitizer finding (a leak, a race)
makes the exit status non-zero and fails the test that ran it.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import redis

from wsraw import http_get

BIN = os.environ.get("CHAT_API_BIN", os.path.join(os.path.dirname(__file__), "../../build/chat-api"))
# The load generator (bench/chat-bench.c), for storms of clients.
BENCH = os.environ.get("CHAT_BENCH_BIN",
                       os.path.join(os.path.dirname(__file__), "../../build/chat-bench"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, what="condition"):
    """Polls pred until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Server:
    def __init__(self, env, wrapper=(), start_timeout=20):
        self.port = int(env["PORT"]) if "PORT" in env else free_port()
        self.terminated = False
        self.expect_code = 0  # the exit status the fixture expects
        full = dict(os.environ)
        full.update({"PORT": str(self.port), "BIND_ADDR": "127.0.0.1", "WORKERS": "2",
                     "LOG_LEVEL": "warn", "SHUTDOWN_TIMEOUT": "5s"})
        full.update(env)
        self.proc = subprocess.Popen([*wrapper, BIN], env=full, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        # The log is read as it is written: a pipe nobody drains fills up
        # (64 KiB) and would block the server's next log line.
        self._log = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

        def up():
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError("server exited at start: " + self.log())
            try:
                return http_get(self.port, "/healthz")[0] == 200
            except OSError:
                return False
        try:
            wait_for(up, start_timeout, "the server to answer /healthz")
        except BaseException:
            self.proc.kill()  # never leave a half-started server behind
            self.proc.wait()
            raise

    def _drain(self):
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self._log.append(chunk)

    def log(self):
        """What the server has written to stderr so far."""
        return b"".join(self._log).decode("utf-8", "replace")

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def stats(self):
        import json
        status, _, body = http_get(self.port, "/api/chat-api/ws/stats")
        assert status == 200
        return json.loads(body)

    def terminate(self):
        """Sends SIGTERM once: a second one means "exit at once"."""
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout=30):
        """SIGTERM (unless already sent); returns (exit status, stderr)."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop within %ss of SIGTERM" % timeout)
        self._reader.join(10)
        return self.proc.returncode, self.log()


def ready(srv):
    """Whether srv answers /readyz with 200."""
    return http_get(srv.port, "/readyz")[0] == 200


@pytest.fixture
def start_server():
    started = []

    def start(**env):
        s = Server({k: str(v) for k, v in env.items()})
        started.append(s)
        return s
    yield start
    for s in started:
        code, err = s.stop()
        assert code == s.expect_code, f"server exited {code}:\n{err}"


@pytest.fixture
def server(start_server):
    return start_server()


class RedisServer:
    def __init__(self, port=None, password=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-redis-")
        self.start(password)

    def start(self, password=None):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if password:
            args += ["--requirepass", password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.password = password

        def up():
            try:
                return self.client().ping()
            except redis.exceptions.ConnectionError:
                return False
        try:
            wait_for(up, 10, "redis-server to answer PING")
        except BaseException:
            self.proc.kill()  # never leave a half-started Redis behind
            self.proc.wait()
            raise

    def client(self):
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    servers = []

    def start(**kw):
        r = RedisServer(**kw)
        servers.append(r)
        return r
    yield start
    for r in servers:
        r.close()


@pytest.fixture
def two_pods(start_server, redis_server):
    r = redis_server()
    url = f"redis://127.0.0.1:{r.port}"
    pods = [start_server(REDIS_URL=url, POD_ID=f"pod-{i}") for i in (1, 2)]
    for p in pods:
        wait_for(lambda: ready(p), 10, "the pod to be ready")
    return r, pods


def cluster_port():
    """A free port whose cluster bus port (+10000) is free too."""
    import random
    while True:
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


class RedisCluster:
    """A Redis Cluster on loopback from Debian's redis-server: masters, each
    with replicas, joined by redis-cli --cluster create."""

    def __init__(self, masters=3, replicas=1, node_timeout_ms=1000):
        self.dir = tempfile.mkdtemp(prefix="chat-cluster-")
        self.nodes = []  # [port, Popen]
        n = masters * (1 + replicas)
        try:
            self.node_timeout_ms = node_timeout_ms
            for _ in range(n):
                port = cluster_port()
                self.nodes.append([port, self.start_node(port)])
            for port, _ in self.nodes:
                wait_for(lambda: self._ping(port), 10, "a cluster node to answer PING")
            subprocess.run(["redis-cli", "--cluster", "create",
                            *[f"127.0.0.1:{p}" for p, _ in self.nodes],
                            "--cluster-replicas", str(replicas), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for(self.healthy, 30, "the cluster to be ok on every node")
            # A replica that never synced would not take over from its master.
            wait_for(self.replicas_synced, 30, "every replica to be in sync")
        except BaseException:
            self.close()
            raise

    def start_node(self, port):
        """Starts (or starts again) the node of port; its nodes-<port>.conf
        keeps its identity and slots across a restart."""
        return subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--cluster-enabled", "yes",
             "--cluster-config-file", f"{self.dir}/nodes-{port}.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--repl-diskless-sync-delay", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _ping(self, port):
        try:
            return redis.Redis(port=port, socket_timeout=2).ping()
        except redis.exceptions.ConnectionError:
            return False

    def alive(self):
        return [p for p, proc in self.nodes if proc.poll() is None]

    def healthy(self):
        for port in self.alive():
            try:
                info = redis.Redis(port=port, socket_timeout=2).execute_command("CLUSTER INFO")
            except redis.exceptions.RedisError:
                return False
            if isinstance(info, bytes):
                info = info.decode()
            ok = info.get("cluster_state") == "ok" if isinstance(info, dict) else \
                "cluster_state:ok" in str(info)
            if not ok:
                return False
        return True

    def replicas_synced(self):
        for port in self.alive():
            info = self.node(port).info("replication")
            if info["role"] == "slave" and info["master_link_status"] != "up":
                return False
        return True

    def url(self):
        return "redis://" + ",".join(f"127.0.0.1:{p}" for p in self.alive()[:3])

    def client(self):
        return redis.RedisCluster(host="127.0.0.1", port=self.alive()[0], socket_timeout=5)

    def node(self, port):
        return redis.Redis(port=port, socket_timeout=5)

    def master_of(self, channel):
        """The port of the master that owns channel's slot."""
        c = self.node(self.alive()[0])
        slot = c.execute_command("CLUSTER KEYSLOT", channel)
        for first, last, master, *_ in c.execute_command("CLUSTER SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise AssertionError(f"no master for slot {slot}")

    def kill(self, port):
        for p, proc in self.nodes:
            if p == port:
                proc.kill()
                proc.wait()

    def close(self):
        for _, proc in self.nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_cluster():
    clusters = []

    def start(**kw):
        c = RedisCluster(**kw)
        clusters.append(c)
        return c
    yield start
    for c in clusters:
        c.close()


@pytest.fixture
def cluster_pods(start_server, redis_cluster):
    cl = redis_cluster()
    pods = [start_server(REDIS_URL=cl.url(), REDIS_CLUSTER="true", POD_ID=f"pod-{i}")
            for i in (1, 2)]
    for p in pods:
        wait_for(lambda: ready(p), 15, "the pod to be ready")
    return cl, pods


@pytest.fixture(params=["standalone", "redis", "cluster"])
def any_pods(request, start_server):
    """Two pods as each mode has them: in standalone mode one server stands
    for both (its clients are all on one pod); with a single Redis and with a
    Redis Cluster, two pods. Returns (mode, (p1, p2))."""
    if request.param == "standalone":
        srv = start_server(POD_ID="pod-1")
        return request.param, (srv, srv)
    fixture = "two_pods" if request.param == "redis" else "cluster_pods"
    _, pods = request.getfixturevalue(fixture)
    return request.param, pods
