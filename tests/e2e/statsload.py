"""Stats under polling: many rooms, a process polling /api/chat-api/ws/stats
at a fixed rate, and the latency of /healthz and of upgrades meanwhile.
Used by test_stats.py (a generous bound) and by `make bench` (the figures:
`python3 tests/e2e/statsload.py BIN`)."""
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wsraw import Raw, http_get  # noqa: E402

POLLER = r"""
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
req = b"GET /api/chat-api/ws/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req)
        while s.recv(65536):
            pass
    n += 1
    ahead = t0 + n / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print(n / (time.monotonic() - t0), flush=True)
"""


def cpu_seconds(pid):
    """User plus system CPU time of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats_cpu_ms(port, pid, n=300):
    """Server CPU milliseconds per stats request, over n requests in a row."""
    c0 = cpu_seconds(pid)
    for _ in range(n):
        assert http_get(port, "/api/chat-api/ws/stats")[0] == 200
    return (cpu_seconds(pid) - c0) * 1000 / n


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def probe(port, samples):
    """Milliseconds each of /healthz and of an upgrade to its welcome take,
    one after the other, samples times."""
    healthz, upgrade = [], []
    for i in range(samples):
        t0 = time.perf_counter()
        assert http_get(port, "/healthz")[0] == 200
        healthz.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        c = Raw(port, f"/ws/probe-{i % 10}")
        assert c.status == 101
        c.recv_frame()  # the welcome
        upgrade.append((time.perf_counter() - t0) * 1000)
        c.close()
        time.sleep(0.01)
    return healthz, upgrade


def hold_rooms(bench_bin, port, pid, rooms):
    """One connection in each of rooms rooms, held until the generator's
    stdin is closed."""
    g = subprocess.Popen([bench_bin, "--scenario", "rooms-held", "--port", str(port),
                          "--server-pid", str(pid), "--storm", str(rooms), "--rooms", str(rooms),
                          "--sources", "4", "--duration", "120"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    report = json.loads(g.stdout.readline())
    assert report["welcomed"] == rooms, report
    return g


def measure(port, pid, bench_bin, rooms=9000, rate=200, samples=60):
    """Returns the figures: latencies without and with the poller."""
    g = hold_rooms(bench_bin, port, pid, rooms)
    try:
        cpu_ms = stats_cpu_ms(port, pid)
        quiet_h, quiet_u = probe(port, samples // 3)
        t0 = time.monotonic()
        poller = subprocess.Popen([sys.executable, "-c", POLLER, str(port), str(rate), "3"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)  # the poller is at its pace before we measure
            busy_h, busy_u = [], []
            while time.monotonic() - t0 < 2.7:  # while it polls
                h, u = probe(port, 1)
                busy_h += h
                busy_u += u
            achieved = float(poller.communicate(timeout=60)[0])
        finally:
            if poller.poll() is None:
                poller.kill()
                poller.wait()
    finally:
        g.stdin.close()
        g.wait(60)
    return {"rooms": rooms, "stats_per_s": rate, "stats_per_s_achieved": round(achieved),
            "samples_polled": len(busy_h), "server_cpu_ms_per_stats": round(cpu_ms, 3),
            "healthz_ms_quiet": {"p50": percentile(quiet_h, .5), "p99": percentile(quiet_h, .99)},
            "healthz_ms_polled": {"p50": percentile(busy_h, .5), "p99": percentile(busy_h, .99)},
            "upgrade_ms_quiet": {"p50": percentile(quiet_u, .5), "p99": percentile(quiet_u, .99)},
            "upgrade_ms_polled": {"p50": percentile(busy_u, .5), "p99": percentile(busy_u, .99)}}


if __name__ == "__main__":
    import resource
    bin_, bench = sys.argv[1], sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), BIND_ADDR="127.0.0.1", WORKERS="1", LOG_LEVEL="warn")
    srv = subprocess.Popen(["taskset", "-c", os.environ.get("SERVER_CPU", "0"), bin_], env=env)
    try:
        for _ in range(200):
            try:
                if http_get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        print(json.dumps(dict(measure(port, srv.pid, bench), scenario="stats")))
    finally:
        srv.terminate()
        srv.wait()
