"""A stream you can count, for the tests that break Redis under it: a sender
on each of two pods streaming numbered messages into one room, receivers on
both, and stream_through(fault, ...) checking every client afterwards."""
import json
import threading
import time

from conftest import ready, wait_for
from wsraw import Raw, encode_frame

RATE = 300  # messages per second from each sender


class Sender:
    """Streams numbered messages at RATE from a thread."""

    def __init__(self, pod, tag):
        self.raw = Raw(pod.port, "/ws/stream")
        self.raw.recv_frame()  # welcome
        self.tag, self.sent = tag, 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t.start()

    def _run(self):
        t0 = time.monotonic()
        while not self.stop_ev.is_set():
            self.raw.send(encode_frame(1, json.dumps({"data": {"s": self.tag, "n": self.sent}})
                                       .encode()))
            self.sent += 1
            ahead = t0 + self.sent / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def stop(self):
        self.stop_ev.set()
        self.t.join()


class Receiver:
    """Records (sender, number) of every message, in arrival order; also
    drains the sender's own copies when given its socket."""

    def __init__(self, pod, raw=None):
        self.raw = raw or Raw(pod.port, "/ws/stream")
        if raw is None:
            self.raw.recv_frame()  # welcome
        self.got = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.raw.s.settimeout(None)
        try:
            while True:
                _, op, payload = self.raw.recv_frame()
                if op == 1:
                    d = json.loads(payload)["data"]
                    if "s" in d:
                        self.got.append((d["s"], d["n"]))
        except (OSError, EOFError):
            return

    def numbers(self, tag):
        return [n for s, n in self.got if s == tag]


def lost_from(pod, origin):
    return pod.stats()["broker"]["lost_by_origin"].get(origin, 0)


def stream_through(fault, two_pods, settle=2.0):
    """Runs the stream, applies fault() in the middle, and checks every
    client once the stream has ended and every pod is back."""
    r, (p1, p2) = two_pods
    a, b = Sender(p1, "A"), Sender(p2, "B")
    ra, rb = Receiver(p1, a.raw), Receiver(p2, b.raw)  # the senders' own copies
    r1, r2 = Receiver(p1), Receiver(p2)
    a.start()
    b.start()
    time.sleep(1.5)
    fault(r, (p1, p2))
    wait_for(lambda: ready(p1) and ready(p2), 30, "both pods to be ready again")
    time.sleep(settle)  # messages after the recovery reveal every gap
    a.stop()
    b.stop()
    for recv, sender in ((r1, a), (ra, a), (r2, b), (rb, b), (r1, b), (r2, a)):
        wait_for(lambda: sender.sent - 1 in recv.numbers(sender.tag), 20,
                 f"{sender.tag}'s last message to reach every client")
    for recv in (r1, r2, ra, rb):
        for tag in ("A", "B"):
            got = recv.numbers(tag)
            assert got == sorted(set(got)), f"{tag}: duplicates or reordering at a client"
    # Same pod: everything, whatever Redis did.
    assert r1.numbers("A") == list(range(a.sent)) == ra.numbers("A")
    assert r2.numbers("B") == list(range(b.sent)) == rb.numbers("B")
    # Other pod: what is missing is exactly what that pod counted as lost.
    missing_a = a.sent - len(r2.numbers("A"))
    missing_b = b.sent - len(r1.numbers("B"))
    assert rb.numbers("A") == r2.numbers("A") and ra.numbers("B") == r1.numbers("B")
    assert lost_from(p2, "pod-1") == missing_a, (missing_a, p2.stats()["broker"])
    assert lost_from(p1, "pod-2") == missing_b, (missing_b, p1.stats()["broker"])
    for c in (r1, r2, ra, rb):
        c.raw.close()
    return missing_a + missing_b, p1.stats()["broker"], p2.stats()["broker"]
