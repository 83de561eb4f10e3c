"""A raw RFC 6455 client over a plain socket, for the frames a polite client
library never sends, and a minimal HTTP/1.1 GET."""
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _answer(data):
    """(status, headers dict lower-case, body) of an HTTP answer's bytes."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return int(lines[0].split(" ")[1]), headers, body


def _read(s, until_head=False):
    data = b""
    while not (until_head and b"\r\n\r\n" in data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_request(port, raw, timeout=5):
    """Sends raw bytes, returns (status, headers dict lower-case, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return _answer(_read(s))


def upgrade_request(port, path, headers=""):
    """Sends a WebSocket upgrade for path and returns (status, headers, body)
    of the answer: a refusal is read to its end, a 101 only to the end of its
    head (the connection stays open after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
        data = _read(s, until_head=True)
        if _answer(data)[0] != 101:
            data += _read(s)
        return _answer(data)


def http_get(port, path, headers=""):
    # Connection: close, so a proxy in front (nginx) ends the response with EOF.
    return http_request(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              f"Connection: close\r\n{headers}\r\n".encode())


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Raw:
    def __init__(self, port, path="/ws/lobby", extra_headers="", rcvbuf=None, timeout=5):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        expect = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        if self.status == 101:
            assert b"Sec-WebSocket-Accept: " + expect in head

    def send(self, data):
        self.s.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.s.sendall(encode_frame(opcode, payload, **kw))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self):
        """Returns (fin, opcode, payload). Server frames are never masked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frame is masked"
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, at = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(at + n)
        payload = self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_until_close(self):
        """Skips data and control frames up to the close frame; returns
        (code or None, reason, frames skipped)."""
        skipped = []
        while True:
            fin, op, payload = self.recv_frame()
            if op == 8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode("utf-8"), skipped
            skipped.append((op, payload))

    def at_eof(self):
        """True once the server has closed the TCP connection."""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.s.close()
