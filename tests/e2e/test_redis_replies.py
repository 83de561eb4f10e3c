"""A Redis (or something posing as one) that never finishes a reply, or
sends one far larger than any message can be (issue 25): liveness used to
be judged by bytes received, so a reply trickled for ever was never a hang,
and a 400 MB bulk was read whole. A reply now has a deadline and a bound."""
import os
import socket
import threading

from conftest import wait_for

SANITIZER = os.environ.get("CHAT_API_SANITIZER", "")


class EndlessRedis:
    """Answers PING and confirms SUBSCRIBE, then starts a message that never
    ends: trickled a byte at a time ("trickle"), or a huge bulk streamed as
    fast as the pod reads it ("flood")."""

    def __init__(self, mode):
        self.mode = mode
        self.connections = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while not self.stop.is_set():
                head = f.readline()
                if not head.startswith(b"*"):
                    return
                args = []
                for _ in range(int(head[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2])
                cmd = args[0].upper()
                if cmd == b"PING":
                    c.sendall(b"+PONG\r\n")
                elif cmd == b"SUBSCRIBE":
                    for i, ch in enumerate(args[1:], 1):
                        c.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n" % (len(ch), ch, i))
                    self._endless(c)
                    return
                else:
                    c.sendall(b"-ERR not here\r\n")
        except (OSError, ValueError):
            return
        finally:
            c.close()

    def _endless(self, c):
        c.sendall(b"*3\r\n$7\r\nmessage\r\n$15\r\nrealtime:global\r\n$400000000\r\n")
        chunk = b"x" * 65536
        while not self.stop.is_set():
            if self.mode == "trickle":
                c.sendall(b"x")
                self.stop.wait(0.1)
            else:
                c.sendall(chunk)

    def close(self):
        self.stop.set()
        self.sock.close()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


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
        peak = peak_rss_mb(p.proc.pid)
        print(f"peak RSS {peak:.0f} MB")
        if not SANITIZER:  # the sanitizers' own memory is not the pod's
            assert peak < 64, f"peak RSS {peak:.0f} MB for a refused 400 MB reply"
    finally:
        r.close()
