"""make soak: ten minutes of mixed traffic against two pods and Redis, with
RSS and open descriptors of each pod sampled every 10 s.

Traffic repeats every minute, so any minute looks like any other: steady
chatters, connections that join, talk and leave, readers that never answer a
ping (the heartbeat closes them; they are replaced), a slow reader, head-less
TCP connections, a client flood (seconds 20-30 of each minute) and a backend
flood through Redis (seconds 40-50). Redis is killed and restarted once, at
the middle. Samples go to bench/results/soak.jsonl and a plot to
bench/results/soak.png. Memory and descriptors must not grow: a leak is a
trend, so a least-squares line is fitted to each pod's samples after the
first minute (warm-up), and the growth it shows over the run must stay
within 10% of the settled median (at least 4 MB, or 20 descriptors). The
check is one-sided, since falling is no leak, and a line over every sample
is not moved much by one sample landing on a burst of head-less connections
(which comparing two medians was). Exit status 1 when they grow.
"""
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import redis  # noqa: E402

from conftest import RedisServer, Server, ready, wait_for  # noqa: E402
from overload import Backend, Drain, Flooder, open_fds, rss_mb  # noqa: E402
from wsraw import Raw, encode_frame  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE_EVERY = 10
ROOMS = [f"room-{i}" for i in range(20)]
OUT = os.path.join(HERE, "results")


class Stop(Exception):
    pass


def joined(pod, path):
    r = Raw(pod.port, path)
    r.recv_frame()
    return r


def loop(stop, every, fn):
    """Runs fn every `every` seconds until stop is set; errors from a single
    round (a pod restarting its Redis, a client closed by the server) are the
    traffic, not the soak's failure."""
    def run():
        while not stop.wait(every):
            try:
                fn()
            except (OSError, EOFError, AssertionError, redis.exceptions.RedisError):
                pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    r = RedisServer()
    url = f"redis://127.0.0.1:{r.port}"
    pods = [Server({"REDIS_URL": url, "POD_ID": f"soak-{i}", "WORKERS": "2",
                    "PING_INTERVAL": "3s", "PONG_TIMEOUT": "8s", "SEND_BUFFER": "64",
                    "LOG_LEVEL": "error"})  # stderr is a pipe nobody reads until the end
            for i in (1, 2)]
    for p in pods:
        wait_for(lambda: ready(p), 10, "the pod to be ready")
    stop = threading.Event()
    t0 = time.monotonic()
    rng = random.Random(1)

    # Steady chatters: 20 per pod, each sending twice a second, reading all.
    chatters = [joined(pods[i % 2], f"/ws/{ROOMS[i % len(ROOMS)]}") for i in range(40)]
    chat_drain = Drain(chatters)

    def chat():
        for c in chatters:
            try:  # non-blocking: the drain thread reads these sockets
                c.s.send(encode_frame(1, json.dumps({"data": {"t": time.time()}}).encode()))
            except BlockingIOError:
                pass

    # Readers that never answer pings: closed by the heartbeat (the drain
    # then closes them too), replaced.
    readers = []
    reader_drain = Drain([])

    def top_up_readers():
        live = [x for x in readers if x.s.fileno() >= 0]
        for _ in range(30 - len(live)):
            x = joined(pods[rng.randrange(2)], f"/ws/{rng.choice(ROOMS)}")
            reader_drain.add(x)
            live.append(x)
        readers[:] = live

    # Join, talk, leave.
    def churn():
        c = joined(pods[rng.randrange(2)], f"/ws/{rng.choice(ROOMS)}")
        for _ in range(3):
            c.send_frame(1, b"hello and goodbye")
        c.send_frame(8, b"\x03\xe8")
        c.close()

    # A reader with a tiny buffer that never reads: a slow consumer.
    def slow_reader():
        Raw(pods[rng.randrange(2)].port, "/ws/room-0", rcvbuf=4096)  # dropped by the server

    # Head-less TCP connections.
    def headless():
        socks = []
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", pods[rng.randrange(2)].port))
            except BlockingIOError:
                pass
            socks.append(s)
        time.sleep(2)
        for s in socks:
            s.close()

    # The floods, at fixed seconds of every minute.
    last_flood = {}

    def floods():
        minute, second = divmod(int(time.monotonic() - t0), 60)
        kind = "client" if 20 <= second < 30 else "backend" if 40 <= second < 50 else None
        if kind is None or last_flood.get(kind) == minute:
            return
        last_flood[kind] = minute
        if kind == "client":
            f = Flooder(pods[0].port, "/ws/room-1")
            time.sleep(10)
            f.stop()
        else:
            b = Backend(redis.Redis(port=r.port, socket_timeout=5), "realtime:room:room-2",
                        json.dumps({"type": "notification", "data": {"n": 1}}))
            time.sleep(10)
            b.stop()

    threads = [loop(stop, 0.5, chat), loop(stop, 1, top_up_readers), loop(stop, 0.2, churn),
               loop(stop, 15, slow_reader), loop(stop, 20, headless), loop(stop, 1, floods)]

    samples = []
    restarted = False
    path = os.path.join(OUT, "soak.jsonl")
    with open(path, "w") as out:
        next_sample = 0
        while True:
            now = time.monotonic() - t0
            if now >= next_sample:
                for p in pods:
                    s = {"t": round(now), "pod": p.proc.pid, "rss_mb": round(rss_mb(p.proc.pid), 1),
                         "fds": open_fds(p.proc.pid)}
                    samples.append(s)
                    out.write(json.dumps(s) + "\n")
                    out.flush()
                print(f"soak: t={round(now)}s " + " ".join(
                    f"rss={s['rss_mb']}MB fds={s['fds']}" for s in samples[-2:]), flush=True)
                next_sample += SAMPLE_EVERY
            if not restarted and now >= SECONDS / 2:
                r.kill()
                time.sleep(2)
                r.start()
                restarted = True
            if now >= SECONDS:
                break
            time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    chat_drain.stop()
    reader_drain.stop()
    codes = [p.stop(60)[0] for p in pods]
    r.close()

    ok = all(c == 0 for c in codes)
    verdicts = []
    for pid in sorted({s["pod"] for s in samples}):
        mine = [s for s in samples if s["pod"] == pid]
        for key in ("rss_mb", "fds"):
            points = [(s["t"], s[key]) for s in mine if s["t"] >= 60]
            settled = statistics.median(v for _, v in points)
            grew = slope(points) * (points[-1][0] - points[0][0])
            allowed = max(0.10 * settled, GROWTH_FLOOR[key])
            flat = grew <= allowed
            ok &= flat
            verdicts.append(f"pod {pid} {key}: settled {settled}, trend {grew:+.1f} over the run "
                            f"(allowed {allowed:.1f}): {'flat' if flat else 'GROWING'}")
    plot(samples, os.path.join(OUT, "soak.png"))
    print("\n".join(verdicts))
    print(f"soak: exit statuses {codes}; {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


# Growth always allowed over the run, whatever 10% of the median is.
GROWTH_FLOOR = {"rss_mb": 4.0, "fds": 20}


def slope(points):
    """Least-squares slope of (t, value) points, per second."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def plot(samples, png):
    pids = sorted({s["pod"] for s in samples})
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, pid in enumerate(pids):
            f = os.path.join(d, f"pod{i}.dat")
            with open(f, "w") as out:
                for s in samples:
                    if s["pod"] == pid:
                        out.write(f"{s['t']} {s['rss_mb']} {s['fds']}\n")
            files.append(f)
        lines = ", ".join(
            [f"'{f}' using 1:2 with linespoints title 'pod {i + 1} RSS (MB)'" for i, f in enumerate(files)]
            + [f"'{f}' using 1:3 axes x1y2 with lines title 'pod {i + 1} descriptors'"
               for i, f in enumerate(files)])
        script = (f"set terminal png size 900,450; set output '{png}'; set key outside;"
                  "set xlabel 'seconds'; set ylabel 'RSS (MB)'; set y2label 'open descriptors';"
                  "set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*];"
                  f"set title 'make soak: two pods, mixed traffic, Redis restarted at {SECONDS // 2} s';"
                  f"plot {lines}")
        subprocess.run(["gnuplot", "-e", script], check=False)


if __name__ == "__main__":
    sys.exit(main())
