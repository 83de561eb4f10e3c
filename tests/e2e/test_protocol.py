"""RFC 6455 rules on the wire, with a raw client for hostile frames."""
import json
import socket
import struct

import pytest

from wsraw import Raw, encode_frame

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def connect(server, path="/ws/lobby"):
    c = Raw(server.port, path)
    assert c.status == 101
    if "echo" not in path:
        fin, op, payload = c.recv_frame()
        assert op == TEXT and b'"welcome"' in payload
    return c


def expect_close(c, code):
    got, reason, _ = c.recv_until_close()
    assert got == code, (got, reason)
    assert c.at_eof()
    return reason


def test_ping_gets_pong_with_same_payload(server):
    c = connect(server)
    c.send_frame(PING, b"are you there?")
    assert c.recv_frame() == (True, PONG, b"are you there?")
    c.send_frame(PING, b"")
    assert c.recv_frame() == (True, PONG, b"")


@pytest.mark.parametrize("chop", [None, 1], ids=["autobahn-2.10", "autobahn-2.11"])
def test_every_ping_gets_its_own_pong(server, chop):
    """Autobahn|Testsuite 2.10 and 2.11: ten pings with payloads, sent
    together (2.10) or one byte at a time (2.11), then a close: a pong for
    each, in order, then the close answered with 1000."""
    c = connect(server)
    pings = [f"payload-{i}".encode() for i in range(1, 11)]
    data = b"".join(encode_frame(PING, p) for p in pings)
    if chop is None:
        c.send(data)
    else:
        c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send(data[i:i + 1])
    c.send_frame(CLOSE, struct.pack(">H", 1000))
    got = [c.recv_frame() for _ in pings]
    assert got == [(True, PONG, p) for p in pings]
    expect_close(c, 1000)


def test_64k_passes_and_one_more_byte_is_1009(server):
    c = connect(server)
    # A text message of exactly 65536 bytes is accepted (and comes back).
    c.send_frame(TEXT, b"x" * 65536)
    fin, op, payload = c.recv_frame()
    assert op == TEXT and json.loads(payload)["data"]["text"] == "x" * 65536
    c.send_frame(TEXT, b"y" * 65537)
    expect_close(c, 1009)
    # Over the limit across fragments too, caught at the frame that crosses it.
    d = connect(server)
    d.send_frame(TEXT, b"a" * 40000, fin=False)
    d.send_frame(CONT, b"b" * 30000, fin=True)
    expect_close(d, 1009)


def test_fragmented_message_with_ping_between(server):
    c = connect(server)
    c.send_frame(TEXT, b"hel", fin=False)
    c.send_frame(PING, b"mid")
    # RFC 6455 5.4: the pong comes while the message is still incomplete.
    assert c.recv_frame() == (True, PONG, b"mid")
    c.send_frame(CONT, b"lo \xe2\x82", fin=False)  # a character cut between fragments
    c.send_frame(CONT, b"\xac", fin=True)
    fin, op, payload = c.recv_frame()
    assert '"text":"hello €"'.encode() in payload


@pytest.mark.parametrize("frame,code", [
    (dict(opcode=TEXT, payload=b"hi", mask=False), 1002),            # unmasked client frame
    (dict(opcode=TEXT, payload=b"hi", rsv=4), 1002),                 # RSV1
    (dict(opcode=TEXT, payload=b"hi", rsv=1), 1002),                 # RSV3
    (dict(opcode=3, payload=b"hi"), 1002),                           # reserved data opcode
    (dict(opcode=0xB, payload=b""), 1002),                           # reserved control opcode
    (dict(opcode=PING, payload=b"p" * 126), 1002),                   # control over 125 bytes
    (dict(opcode=PING, payload=b"p", fin=False), 1002),              # fragmented control
    (dict(opcode=CONT, payload=b"x"), 1002),                         # continuation of nothing
    (dict(opcode=TEXT, payload=b"\xed\xa0\x80"), 1007),              # surrogate: invalid UTF-8
    (dict(opcode=TEXT, payload=b"\xc0\xaf"), 1007),                  # overlong form
    (dict(opcode=BINARY, payload=b"\x00\x01"), 1003),                # binary on a chat connection
    (dict(opcode=CLOSE, payload=b"\x03"), 1002),                     # close with 1 byte
    (dict(opcode=CLOSE, payload=struct.pack(">H", 1005)), 1002),     # reserved close code
    (dict(opcode=CLOSE, payload=struct.pack(">H", 999)), 1002),
    (dict(opcode=CLOSE, payload=b"\x03\xe8\xff"), 1007),             # close reason not UTF-8
])
def test_bad_frames_get_the_rfc_close_code(server, frame, code):
    from wsraw import encode_frame
    c = connect(server)
    c.send(encode_frame(**frame))
    expect_close(c, code)


def test_new_message_inside_fragmented_one_is_1002(server):
    c = connect(server)
    c.send_frame(TEXT, b"a", fin=False)
    c.send_frame(TEXT, b"b")
    expect_close(c, 1002)


def test_non_minimal_length_is_1002(server):
    c = connect(server)
    # 5 bytes announced in the 16-bit form.
    c.send(bytes([0x81, 0xFE, 0x00, 0x05]) + b"\x00\x00\x00\x00" + b"hello")
    expect_close(c, 1002)


def test_invalid_utf8_fails_before_the_message_ends(server):
    c = connect(server)
    # The first fragment is already impossible; the close comes without a FIN.
    c.send_frame(TEXT, b"ok \xf4\x90", fin=False)
    expect_close(c, 1007)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_client_close_is_echoed(server, code):
    c = connect(server)
    c.send_frame(CLOSE, struct.pack(">H", code) + b"bye")
    assert expect_close(c, code) == ""


def test_close_without_code_gets_empty_close(server):
    c = connect(server)
    c.send_frame(CLOSE, b"")
    assert expect_close(c, None) == ""


def test_frames_behind_the_handshake_are_not_lost(server):
    """A client may send its first frame in the same packet as its request."""
    import base64
    import os
    import socket
    from wsraw import encode_frame
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws/fast HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
              + encode_frame(TEXT, b"first"))
    data = b""
    while b'"first"' not in data:
        chunk = s.recv(65536)
        assert chunk, "closed before the first message came back"
        data += chunk
    s.close()


def test_echo_endpoint(start_server):
    srv = start_server(ECHO_ENDPOINT="true", MAX_MESSAGE_SIZE=1000)
    c = connect(srv, "/api/chat-api/echo")
    c.send_frame(TEXT, "héllo".encode())
    assert c.recv_frame() == (True, TEXT, "héllo".encode())
    c.send_frame(BINARY, b"\x00\xff\x10")
    assert c.recv_frame() == (True, BINARY, b"\x00\xff\x10")
    c.send_frame(BINARY, b"ab", fin=False)
    c.send_frame(PING, b"!")
    assert c.recv_frame() == (True, PONG, b"!")
    c.send_frame(CONT, b"cd")
    assert c.recv_frame() == (True, BINARY, b"abcd")
    # The same limits as chat.
    c.send_frame(TEXT, b"z" * 1001)
    expect_close(c, 1009)
