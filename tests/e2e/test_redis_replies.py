"""A Redis (or something posing as one) that never finishes a reply, or
sends one far larger than any message can be (issue 25): liveness used to
be judged by bytes received, so a reply trickled for ever was never a hang,
and a 400 MB bulk was read whole. A reply now has a deadline and a bound."""
import os

from conftest import wait_for
from fake_redis import FakeRedis, confirm_subscribe
from overload import rss_mb

SANITIZER = os.environ.get("CHAT_API_SANITIZER", "")


class EndlessRedis(FakeRedis):
    """Confirms SUBSCRIBE, then starts a message that never ends: trickled a
    byte at a time ("trickle"), or a huge bulk streamed as fast as the pod
    reads it ("flood")."""

    def __init__(self, mode):
        self.mode = mode
        super().__init__()

    def answer(self, c, args):
        if args[0].upper() != b"SUBSCRIBE":
            c.sendall(b"-ERR not here\r\n")
            return
        confirm_subscribe(c, args[0].upper(), args[1:])
        c.sendall(b"*3\r\n$7\r\nmessage\r\n$15\r\nrealtime:global\r\n$400000000\r\n")
        chunk = b"x" * 65536
        while not self.stop.is_set():
            if self.mode == "trickle":
                c.sendall(b"x")
                self.stop.wait(0.1)
            else:
                c.sendall(chunk)
        return False


def test_a_reply_trickled_for_ever_is_a_hang(start_server):
    r = EndlessRedis("trickle")
    try:
        p = start_server(REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="pod-1")
        wait_for(lambda: "a reply unfinished for 3000 ms" in p.log(), 15,
                 "the pod to give the trickling link up")
        wait_for(lambda: r.connections >= 3, 10, "the subscriber to connect again")
    finally:
        r.close()


def test_a_reply_larger_than_any_message_is_refused(start_server):
    r = EndlessRedis("flood")
    try:
        p = start_server(REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="pod-1")
        wait_for(lambda: "a reply longer than" in p.log(), 15, "the pod to refuse the reply")
        peak = rss_mb(p.proc.pid, "VmHWM")
        print(f"peak RSS {peak:.0f} MB")
        if not SANITIZER:  # the sanitizers' own memory is not the pod's
            assert peak < 64, f"peak RSS {peak:.0f} MB for a refused 400 MB reply"
    finally:
        r.close()
