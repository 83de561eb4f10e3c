#!/usr/bin/python3
"""The accept pause as a weapon (issue 25): idle connections from many
source addresses, each re-opened as soon as the server drops it, keep the
acceptor's pending list full of young, headless clients. Meanwhile a real
client upgrades and asks /healthz every 50 ms; their latencies are what the
attack costs. Prints one JSON line.

    bench/accept_attack.py [--bin build/chat-api] [--idle 6000] [--sources 100]
                           [--seconds 10]

Loopback only (127.0.0.2 and up for the attacker, 127.0.0.1 for the probes)."""
import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from overload import Attacker, timed  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    """CPU seconds pid has used (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p))] * 1000, 1) if v else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "../build/chat-api"))
    ap.add_argument("--idle", type=int, default=6000)
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    env = dict(os.environ, PORT=str(port), BIND_ADDR="127.0.0.1", WORKERS="2", LOG_LEVEL="error")
    srv = subprocess.Popen([a.bin], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                timed(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n\r\n")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        atk = Attacker(port, a.idle, a.sources)
        atk.start()
        time.sleep(1)  # the attack reaches its steady state
        up, hz, failed = [], [], 0
        opened0, t0, cpu0 = atk.opened, time.monotonic(), cpu_s(srv.pid)
        head = (b"GET /api/chat-api/ws/probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
        while time.monotonic() - t0 < a.seconds:
            for kind, raw, out in (("up", head, up), ("hz", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                                           b"Connection: close\r\n\r\n", hz)):
                try:
                    d = timed(port, raw, b"\r\n\r\n")
                except OSError:
                    d = None
                if d is None:
                    failed += 1
                else:
                    out.append(d)
            time.sleep(0.05)
        rate = (atk.opened - opened0) / (time.monotonic() - t0)
        cores = (cpu_s(srv.pid) - cpu0) / (time.monotonic() - t0)
        atk.stop.set()
        atk.join()
        print(json.dumps({"idle": a.idle, "sources": a.sources, "attack_reopens_per_s": round(rate),
                          "upgrades": len(up), "upgrade_p50_ms": pct(up, 0.5),
                          "upgrade_p99_ms": pct(up, 0.99), "healthz": len(hz),
                          "healthz_p50_ms": pct(hz, 0.5), "healthz_p99_ms": pct(hz, 0.99),
                          "failed": failed, "server_cores": round(cores, 2),
                          "load": os.getloadavg()[0]}))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)


if __name__ == "__main__":
    main()
