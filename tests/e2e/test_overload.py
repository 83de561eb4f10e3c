"""Overload: what a hostile client or backend can make the server do.
Every bound is measured from the outside: RSS and descriptors from /proc,
latency and close codes as clients see them, drops as stats count them."""
import json
import resource
import socket
import time


from conftest import ready, wait_for
from overload import (MEM_SCALE, SANITIZER, Attacker, Backend, Drain, Flooder, Sampler, open_fds,
                      probe_latencies, readers, rss_mb, server_env, timed)
from wsraw import Raw, encode_frame, http_get

FLOOD_S = 10          # the flood length
# A message in another room arrives within PROBE_LIMIT, and half of them
# within PROBE_MEDIAN: generous bounds that hold on a loaded 2-core machine
# under the sanitizers (bench/README.md has the measured figures). A room
# stuck behind the flood would wait for the whole backlog: many seconds.
PROBE_LIMIT = 1.0
PROBE_MEDIAN = 0.25
MEM_GROWTH_MB = 64    # RSS growth allowed during a flood (times MEM_SCALE)


def joined(port, path):
    r = Raw(port, path)
    _, op, payload = r.recv_frame()
    assert op == 1 and json.loads(payload)["data"]["event"] == "welcome"
    return r


def send_text(raw):
    return lambda text: raw.send_frame(1, text.encode())


def run_probes(seconds, *senders_and_members):
    """Probes every (send, member) pair in turn until seconds have passed."""
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for send, member in senders_and_members:
            lat += probe_latencies(send, member, 1, every=0.15)
    return lat


def assert_prompt(lat):
    lat = sorted(lat)
    assert lat[-1] < PROBE_LIMIT, f"another room waited {lat[-1]:.3f} s"
    assert lat[len(lat) // 2] < PROBE_MEDIAN, f"another room's median wait {lat[len(lat) // 2]:.3f} s"


def test_client_flood_is_slowed_not_buffered(start_server):
    """One connection writes as fast as TCP allows into a room of 100
    readers. The server stops reading it whenever the workers' inboxes are
    full, so memory stays flat, a message in another room still arrives
    promptly, and nothing the flooder sent is dropped."""
    srv = start_server(WORKERS=2, **server_env())
    pid = srv.proc.pid
    big = readers(srv.port, "/ws/big", 100)
    drain = Drain(big)
    member, sender = joined(srv.port, "/ws/quiet"), joined(srv.port, "/ws/quiet")
    base = rss_mb(pid)
    floor_mib = max(w["inbox_budget"] for w in srv.stats()["workers"]) / 2**20
    sampler = Sampler(pid, srv.stats)
    flood = Flooder(srv.port, "/ws/big")
    lat = run_probes(FLOOD_S, (send_text(sender), member))
    peak = sampler.stop()
    flood.stop_sending()
    st = wait_for(lambda: (s := srv.stats())["backpressure"]["paused_now"] == 0 and s, 10,
                  "the flooder's last message to be admitted")
    flood.stop()
    drain.stop()
    print(f"client flood: {flood.frames_sent} frames sent, peak RSS {peak:.0f} MB "
          f"(base {base:.0f}), inbox budget up to {sampler.budget_mib:.0f} MiB, "
          f"probes max {max(lat) * 1000:.0f} ms over {len(lat)}, "
          f"reads paused {st['backpressure']['reads_paused']}, slow closed "
          f"{st['slow_consumers_closed']}, drained {drain.bytes >> 20} MiB")
    assert st["backpressure"]["reads_paused"] > 0, "the flood outran the workers and was slowed"
    assert st["messages"]["dropped"] == 0, "nothing a client sent was dropped for the flood"
    if not SANITIZER:
        # The budget follows what the workers write: the flood raised it, so
        # the wait below was measured with the larger budget.
        assert sampler.budget_mib > floor_mib, f"the inbox budget stayed at {floor_mib:.0f} MiB"
    assert_prompt(lat)
    assert peak - base < MEM_GROWTH_MB * MEM_SCALE, f"RSS grew {peak - base:.0f} MB"
    for r in big + [member, sender]:
        r.close()


def test_redis_flood_is_dropped_and_counted(start_server, redis_server):
    """A backend publishes to a room of 100 members as fast as Redis takes
    it. What the workers have no room for is dropped and counted (every
    published message is either delivered or counted), memory stays flat,
    and other rooms, whether their messages come from a local client or
    from Redis, are served within 250 ms."""
    r = redis_server()
    # Redis drops a subscriber whose unread output passes 32 MB (its default
    # pubsub limit): 0.27 s of this flood. On a busy 2-core machine the
    # subscriber thread can be off the CPU that long while the workers are
    # overloaded, and Redis then cut it off and what its buffer held was lost
    # (issue 25: seen as a probe that never arrived, reconnects 1). That is
    # Redis' policy, not the pod's (docs/operations.md says so and what to
    # set); this test is about the pod, so its Redis has room for such a
    # stall, as a Redis for bursty backends should.
    r.client().config_set("client-output-buffer-limit", "pubsub 256mb 64mb 60")
    env = server_env()
    if SANITIZER == "tsan":
        # ThreadSanitizer slows the subscriber's reading 5-15 times but not
        # the kernel's writes; through io_uring the workers then keep up
        # with this flood in bursts, and episodes come and go. With writev
        # (IO_URING=off) the overload this test is calibrated for holds.
        env["IO_URING"] = "off"
    srv = start_server(WORKERS=2, REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="p1", **env)
    wait_for(lambda: ready(srv), 10, "the pod to be ready")
    pid = srv.proc.pid
    big = readers(srv.port, "/ws/big", 100)
    drain = Drain(big)
    member, sender = joined(srv.port, "/ws/quiet"), joined(srv.port, "/ws/quiet")
    side = r.client()
    via_redis = []

    def publish_quiet(text):
        via_redis.append(text)
        side.publish("realtime:room:quiet",
                     json.dumps({"type": "chat", "room": "quiet", "data": {"text": text}}))

    base = rss_mb(pid)
    sampler = Sampler(pid, srv.stats)
    # 30,000 messages/s of 4 KB to 100 members is 12 GB/s of delivery: far past
    # what the pod can write, well within what its subscriber can read (a
    # backend faster than that fills Redis' buffer instead, and no pod design
    # serves other rooms' Redis messages ahead of that queue). The sanitizers
    # read slower: ASan keeps up with 30,000 a second of 1 KB, ThreadSanitizer
    # with about 17,000; both are still overloaded at those rates.
    size = 1000 if SANITIZER else 4000
    payload = json.dumps({"type": "notification", "room": "big", "data": {"n": "x" * size}})
    rate = 5000 if SANITIZER == "tsan" else 30000
    backend = Backend(r.client(), "realtime:room:big", payload, rate=rate)
    lat = run_probes(FLOOD_S, (send_text(sender), member), (publish_quiet, member))
    peak = sampler.stop()
    backend.stop()
    expected = backend.published + len(via_redis)

    def accounted():
        b = srv.stats()["broker"]
        return b["received"] + b["overload_dropped"] == expected and b
    b = wait_for(accounted, 20, "every published message to be delivered or counted")
    drain.stop()
    print(f"redis flood: {backend.published} published, {b['overload_dropped']} dropped, "
          f"peak RSS {peak:.0f} MB (base {base:.0f}), inbox budget up to {sampler.budget_mib:.0f} MiB, "
          f"probes max {max(lat) * 1000:.0f} ms, median {sorted(lat)[len(lat) // 2] * 1000:.0f} ms")
    assert b["overload_dropped"] > 0, "the flood outran the pod"
    assert b["reconnects"] == 0, "the subscriber kept up with Redis: nothing was lost uncounted"
    assert_prompt(lat)
    assert peak - base < MEM_GROWTH_MB * MEM_SCALE, f"RSS grew {peak - base:.0f} MB"
    code, err = srv.stop()
    assert code == 0, err
    # One line when an episode starts, one when a quiet second ends it: a
    # handful for the whole flood, never one per drop.
    starts, ends = err.count("dropping what does not fit"), err.count("overload over")
    assert 1 <= starts == ends <= 5, f"{starts} episode starts, {ends} ends"
    for c in big + [member, sender]:
        c.close()


def test_sigterm_during_a_flood_keeps_shutdown_timeout(start_server, redis_server):
    """SIGTERM while a client and a backend flood: the process exits 0 soon
    after SHUTDOWN_TIMEOUT, whatever is queued (its readers never answer the
    close, so without the timeout it would never exit)."""
    r = redis_server()
    # Long queues, so that the readers are rarely closed before the flood
    # meets the budget.
    srv = start_server(WORKERS=2, REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="p1",
                       SHUTDOWN_TIMEOUT="3s", SEND_BUFFER=65536, **server_env())
    wait_for(lambda: ready(srv), 10, "the pod to be ready")
    big = readers(srv.port, "/ws/big", 50)  # they never answer a close: the timeout decides
    drain = Drain(big)
    flood = Flooder(srv.port, "/ws/big")
    backend = Backend(r.client(), "realtime:room:big", json.dumps({"data": {"n": 1}}))
    # The flood has outrun someone: the flooder is paused, or (on a loaded
    # machine, where one Python thread drains 50 readers slowly) readers
    # were dropped as slow consumers. Either way work is queued.
    # Usually within 1-3 s; but the readers can keep up with the flood for
    # much longer (27 s once under ASan): after 5 s they stop reading, and
    # the flood outruns them at once.
    t_b = time.monotonic()

    def bitten():
        if time.monotonic() - t_b > 5:
            drain.stop()  # the readers stop reading
        s = srv.stats()
        return (s["backpressure"]["reads_paused"] > 0 or s["slow_consumers_closed"] > 0) and s
    st = wait_for(bitten, 30, "the flood to bite")
    print(f"the flood bit after {time.monotonic() - t_b:.1f} s: reads paused "
          f"{st['backpressure']['reads_paused']}, slow consumers {st['slow_consumers_closed']}, "
          f"inbox budgets {[w['inbox_budget'] >> 20 for w in st['workers']]} MiB")
    t0 = time.monotonic()
    srv.terminate()
    code = srv.proc.wait(10)
    took = time.monotonic() - t0
    backend.stop()
    flood.stop()
    drain.stop()
    assert code == 0
    assert took < 3 + 4, f"shutdown took {took:.1f} s"
    for c in big:
        c.close()


def test_second_signal_exits_at_once(start_server):
    # The forced exit joins no thread on purpose; ThreadSanitizer would
    # spend a second describing that before the process ends.
    # (and sleeps a second at any exit, atexit_sleep_ms).
    env = {"TSAN_OPTIONS": "report_thread_leaks=0:atexit_sleep_ms=0"} if SANITIZER == "tsan" else {}
    srv = start_server(SHUTDOWN_TIMEOUT="60s", **env)
    mute = joined(srv.port, "/ws/lobby")  # never answers the close: shutdown would wait 60 s
    srv.terminate()
    wait_for(lambda: srv.stats()["shutting_down"], 5, "the shutdown to begin")
    srv.proc.send_signal(2)  # SIGINT, as a second Ctrl-C
    srv.expect_code = 128 + 2
    # Without the second signal the shutdown would wait 60 s for mute.
    assert srv.proc.wait(10) == 128 + 2
    mute.close()
    _, err = srv.stop()
    assert "second signal during shutdown: exiting at once" in err


def test_pipelined_pings_get_the_latest_pong_and_keep_the_connection(start_server):
    """1000 pings in one write, with an 8-message send queue: the first 16
    get a pong each, past that pongs are coalesced to the latest ping
    (RFC 6455 5.5.3), so the client stays connected and no one is counted
    as a slow consumer."""
    srv = start_server(SEND_BUFFER="8", WORKERS=1)
    c = joined(srv.port, "/ws/pings")
    c.send(b"".join(encode_frame(9, b"%d" % i) for i in range(1000)))
    pongs = []
    while not pongs or pongs[-1] != b"999":
        _, op, payload = c.recv_frame()
        assert op == 10, f"unexpected frame {op}"
        pongs.append(payload)
    assert pongs[:16] == [b"%d" % i for i in range(16)], "one pong each up to the bound"
    assert len(pongs) <= 1000
    assert pongs == sorted(pongs, key=int), "pongs answer pings in order"
    c.send_frame(1, b"still here")
    _, op, payload = c.recv_frame()
    assert op == 1 and json.loads(payload)["data"] == {"text": "still here"}
    assert srv.stats()["slow_consumers_closed"] == 0
    c.close()


def test_slow_consumer_is_told_1008_and_counted(start_server):
    srv = start_server(SEND_BUFFER="8", WORKERS=1)
    slow = Raw(srv.port, "/ws/s", rcvbuf=4096)  # reads nothing until it is closed
    sender = joined(srv.port, "/ws/s")
    pad = "p" * 30000
    for i in range(200):
        sender.send_frame(1, json.dumps({"data": {"i": i, "pad": pad}}).encode())
        if srv.stats()["slow_consumers_closed"]:
            break
    assert srv.stats()["slow_consumers_closed"] == 1
    code, reason, _ = slow.recv_until_close()
    assert (code, reason) == (1008, "slow consumer: send queue full")
    slow.close()
    sender.close()


def test_headless_connections_cannot_starve_real_clients(start_server):
    """19,000 connections that never send a request head: the server keeps a
    bounded number, drops the oldest once they have had their grace, and
    /healthz and a real upgrade still get through long before the 10 s head
    deadline would free a single slot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = start_server(WORKERS=1)
    idle = []
    try:
        for i in range(19000):
            s = socket.socket()
            s.setblocking(False)
            s.bind((f"127.0.0.{2 + i % 4}", 0))  # spread over source addresses
            try:
                s.connect(("127.0.0.1", srv.port))
            except BlockingIOError:
                pass
            idle.append(s)
        wait_for(lambda: srv.stats()["http"]["heads_evicted"] > 17000, 30,
                 "the server to drop the oldest head-less clients")
        t0 = time.monotonic()
        assert http_get(srv.port, "/healthz")[0] == 200
        c = joined(srv.port, "/ws/real")
        # Without eviction nothing frees before the 10 s deadline; the bound
        # leaves room for a loaded machine and a SYN retried from a full backlog.
        assert time.monotonic() - t0 < 8
        c.close()
        st = srv.stats()
        assert st["http"]["pending_heads"] <= 1024
        assert open_fds(srv.proc.pid) < 1200, "descriptors stay bounded"
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_sockets_reopened_from_many_addresses_cannot_pause_accepting(start_server):
    """Issue 25: 6,000 idle sockets from 100 addresses, each reopened as soon
    as it is dropped, kept every pending slot young: accepting paused, real
    clients waited in a full backlog (their SYNs retried after 1, 3, 7 s):
    upgrades took 0.8 s at the median and 2.8-7 s at p99, /healthz 0.8-5 s.
    Now the heaviest address's oldest headless client goes once it is 50 ms
    old, so accepting goes on and a client whose head came with its
    handshake is answered at once. `bench/accept_attack.py` measures it
    (p99 about 5 ms here); the test asserts the order of magnitude."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        srv = start_server(WORKERS=2)
        atk = Attacker(srv.port, 6000, 100)
        atk.start()
        wait_for(lambda: srv.stats()["http"]["pending_heads"] >= 1000, 20,
                 "the attack to fill the pending list")
        head = (b"GET /api/chat-api/ws/probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
        healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        lat = []
        for _ in range(20):
            for raw in (head, healthz):
                d = timed(srv.port, raw, b"\r\n\r\n")
                assert d is not None, "a real client was dropped"
                lat.append(d)
        atk.stop.set()
        atk.join()
        lat.sort()
        print(f"accept attack: {atk.opened} sockets opened; real clients median "
              f"{lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms")
        # The sanitizers run the acceptor 5-15 times slower while the attacker
        # (Python) is not slowed: the same attack weighs that much more (under
        # ThreadSanitizer alone, median 23-47 ms, max 146-169 ms; 346 ms at the
        # median once in a full CI run). The bounds scale with it.
        scale = 10 if SANITIZER else 1
        assert lat[len(lat) // 2] < 0.1 * scale, f"median {lat[len(lat) // 2]:.3f} s"
        assert lat[-1] < 1.0 * scale, f"max {lat[-1]:.3f} s (a SYN retried from a full backlog)"
        assert srv.stats()["http"]["pending_heads"] <= 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_escaped_expansion_is_refused_not_amplified(start_server):
    """A text of control characters escapes six-fold in JSON: the server
    answers too_large instead of sending others a frame they cannot take,
    and never builds the blown-up frame."""
    srv = start_server(MAX_MESSAGE_SIZE="16777216", WORKERS=1, **server_env())
    a, b = joined(srv.port, "/ws/x"), joined(srv.port, "/ws/x")
    base = rss_mb(srv.proc.pid)
    a.send_frame(1, b"\x01" * (4 << 20))
    _, op, payload = a.recv_frame()
    m = json.loads(payload)
    assert m["type"] == "system" and m["data"]["code"] == "too_large"
    assert rss_mb(srv.proc.pid) - base < 48 * MEM_SCALE, "the 24 MiB envelope was never built"
    # Right up to the bound passes: MAX_MESSAGE_SIZE of plain text, plus the envelope.
    a.send_frame(1, b"y" * (16 << 20))
    for c in (a, b):
        _, op, payload = c.recv_frame()
        assert len(payload) <= (16 << 20) + 1024
        assert json.loads(payload)["data"]["text"] == "y" * (16 << 20)
    st = srv.stats()
    assert st["messages"]["too_large"] == 1
    a.close()
    b.close()


def test_default_limit_frames_stay_within_max_message_size_plus_slack(start_server):
    srv = start_server(WORKERS=1)
    a, b = joined(srv.port, "/ws/x"), joined(srv.port, "/ws/x")
    a.send_frame(1, b"\n" * 40000)  # 80,000 bytes escaped: over 65536 + 1024
    m = json.loads(a.recv_frame()[2])
    assert m["data"]["code"] == "too_large"
    a.send_frame(1, json.dumps({"data": {"t": "z" * 65000}}).encode())
    for c in (a, b):
        payload = c.recv_frame()[2]
        assert len(payload) <= 65536 + 1024
        assert json.loads(payload)["data"]["t"] == "z" * 65000
    a.close()
    b.close()


def test_oversize_backend_payload_is_dropped_and_counted(start_server, redis_server):
    r = redis_server()
    srv = start_server(REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="p1",
                       MAX_MESSAGE_SIZE="4096")
    wait_for(lambda: ready(srv), 10, "the pod to be ready")
    c = joined(srv.port, "/ws/x")
    cli = r.client()

    def payload(total):
        head = '{"data":{"t":"'
        return head + "q" * (total - len(head) - 3) + '"}}'
    cli.publish("realtime:room:x", payload(4096 + 1024 + 1))
    cli.publish("realtime:room:x", payload(4096 + 1024))
    got = c.recv_frame()[2]
    assert len(got) == 4096 + 1024, "the one at the bound arrives, the one past it does not"
    assert wait_for(lambda: srv.stats()["broker"]["oversize_dropped"] == 1, 5, "the drop counted")
    c.close()
