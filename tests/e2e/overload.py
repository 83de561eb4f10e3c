"""Helpers for the overload suites: hostile traffic and measurements taken
from the outside (/proc, what clients actually received)."""
import json
import os
import selectors
import socket
import threading
import time

from wsraw import Raw, encode_frame

SANITIZER = os.environ.get("CHAT_API_SANITIZER", "")
# Sanitizer builds carry shadow memory and quarantines: memory bounds are
# scaled for them, time bounds are not.
MEM_SCALE = {"asan": 3, "tsan": 4}.get(SANITIZER, 1)


def server_env():
    """Environment for a server under test: ASan's quarantine of freed
    memory (256 MB by default) would look like growth."""
    env = {}
    if SANITIZER == "asan":
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")
    return env


def rss_mb(pid, field="VmRSS"):
    """pid's resident memory now (VmRSS), or at its peak (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler:
    """Samples the server's RSS every 100 ms in a thread, and with stats (a
    callable giving /ws/stats) the largest inbox budget a worker had."""

    def __init__(self, pid, stats=None):
        self.pid, self.samples = pid, []
        self.stats, self.budget_mib = stats, 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.wait(0.1):
            try:
                self.samples.append(rss_mb(self.pid))
                if self.stats:
                    budgets = [w["inbox_budget"] for w in self.stats()["workers"]]
                    self.budget_mib = max([self.budget_mib] + [b / 2**20 for b in budgets])
            except (FileNotFoundError, AssertionError, OSError):
                return  # the process has ended

    def stop(self):
        self.stop_ev.set()
        self.t.join()
        return max(self.samples) if self.samples else 0.0


class Drain:
    """Reads and discards everything sent to a set of raw clients, from one
    thread, so they are as fast a reader as this machine allows."""

    def __init__(self, clients):
        self.sel = selectors.DefaultSelector()
        self.bytes = 0
        self.closed = 0
        for c in clients:
            self.add(c)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def add(self, client):
        """Drains one more client (any thread)."""
        client.s.setblocking(False)
        self.sel.register(client.s, selectors.EVENT_READ)

    def _run(self):
        while not self.stop_ev.is_set():
            for key, _ in self.sel.select(0.1):
                try:
                    chunk = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self.sel.unregister(key.fileobj)
                    key.fileobj.close()
                    self.closed += 1
                else:
                    self.bytes += len(chunk)

    def stop(self):
        self.stop_ev.set()
        self.t.join()


class Flooder:
    """One connection writing small chat frames as fast as TCP allows, and
    reading (and discarding) its own copies so it is never a slow consumer."""

    def __init__(self, port, path, size=64):
        self.raw = Raw(port, path)
        self.raw.recv_frame()  # welcome
        self.blob = b"".join(encode_frame(1, b"f" * size) for _ in range(2000))
        self.frames_sent = 0
        self.stop_ev = threading.Event()
        self.drain = Drain([self.raw])
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        view, off = memoryview(self.blob), 0
        sel = selectors.DefaultSelector()
        sel.register(self.raw.s, selectors.EVENT_WRITE)
        while not self.stop_ev.is_set():
            if not sel.select(0.1):
                continue  # the server stopped reading us: that is the point
            try:
                off += self.raw.s.send(view[off:])
            except BlockingIOError:
                continue
            except OSError:
                return
            if off == len(self.blob):
                self.frames_sent += 2000
                off = 0

    def stop_sending(self):
        self.stop_ev.set()
        self.t.join()

    def stop(self):
        self.stop_sending()
        self.drain.stop()
        self.raw.close()


class Backend:
    """A backend publishing to one channel, pipelined, as fast as it can."""

    def __init__(self, client, channel, payload, rate=None):
        self.client, self.channel, self.payload = client, channel, payload
        self.rate = rate  # messages per second, or None: as fast as Redis takes them
        self.published = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        t0 = time.monotonic()
        while not self.stop_ev.is_set():
            p = self.client.pipeline(transaction=False)
            for _ in range(500):
                p.publish(self.channel, self.payload)
            p.execute()
            self.published += 500
            if self.rate:
                ahead = t0 + self.published / self.rate - time.monotonic()
                if ahead > 0:
                    self.stop_ev.wait(ahead)

    def stop(self):
        self.stop_ev.set()
        self.t.join()


def readers(port, path, n):
    clients = [Raw(port, path) for _ in range(n)]
    return clients


def wait_text(raw, text, timeout=5.0):
    """Reads raw's frames until a chat message whose text is text arrives;
    returns when it did (monotonic)."""
    raw.s.settimeout(timeout)
    while True:
        _, op, payload = raw.recv_frame()
        if op == 1:
            m = json.loads(payload)
            if m.get("data") == {"text": text}:
                return time.monotonic()


def probe_latencies(send, member, count, every=0.3):
    """Sends count probes through send(text) and measures how long each took
    to reach member (a Raw client). Returns the latencies in seconds."""
    out = []
    for i in range(count):
        text = f"probe-{i}-{time.monotonic_ns()}"
        t0 = time.monotonic()
        send(text)
        out.append(wait_text(member, text) - t0)
        time.sleep(every)
    return out


class Attacker(threading.Thread):
    """Holds n idle sockets from `sources` addresses; every one the server
    closes is opened again at once."""

    def __init__(self, port, n, sources):
        super().__init__(daemon=True)
        self.port, self.n, self.sources = port, n, sources
        self.stop = threading.Event()
        self.opened = 0
        self.sel = selectors.DefaultSelector()

    def _open(self, i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((f"127.0.0.{2 + i % self.sources}", 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        self.sel.register(s, selectors.EVENT_READ, i)
        self.opened += 1

    def run(self):
        for i in range(self.n):
            self._open(i)
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:  # dropped (or refused): come back at once
                    self.sel.unregister(s)
                    s.close()
                    self._open(key.data)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def timed(port, raw, until):
    """Seconds from connecting to port until the answer to raw holds until
    (None: closed first)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(raw)
        buf = b""
        while until not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return None
            buf += chunk
    return time.monotonic() - t0
