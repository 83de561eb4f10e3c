"""A server that speaks just enough RESP to pose as Redis or a sentinel:
it takes commands (arrays of bulk strings) and hands each to answer(), on
a thread per connection, for tests of what a real Redis will not do."""
import socket
import threading


class FakeRedis:
    def __init__(self):
        self.connections = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def answer(self, conn, args):
        """Answers one command (args: bytes); returns False to end the
        connection."""
        raise NotImplementedError

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
                if args[0].upper() == b"PING":
                    c.sendall(b"+PONG\r\n")
                elif self.answer(c, args) is False:
                    return
        except (OSError, ValueError):
            return
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def confirm_subscribe(conn, cmd, channels):
    """What Redis answers to (S)SUBSCRIBE: one confirmation per channel."""
    kind = cmd.lower()
    for i, ch in enumerate(channels, 1):
        conn.sendall(b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n" % (len(kind), kind, len(ch), ch, i))
