"""permessage-deflate (RFC 7692) as clients see it: compressing members read
exactly what plain members read, through an independent inflater (the
websockets library's zlib context per connection, as a browser keeps one);
the negotiation over the wire; bombs, bad data and RSV1 misuse. Runs on both
send paths (Makefile: SEND_PATH_SUITES)."""
import asyncio
import json
import random
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from aio import recv_json
from conftest import wait_for
from overload import SANITIZER
from wsraw import Raw, upgrade_request

WORDS = ("the quick brown fox jumps over a lazy dog while chat servers fan out messages to "
         "every member of the room in order and nobody loses a byte on the way there "
         "hello again release deploy tomorrow lunch coffee review merge ticket").split()


def chat_messages(n, seed):
    """n chat-sized messages (their envelopes 230-1,100 bytes), varied."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 120)))
        out.append(json.dumps({"data": {"text": text, "n": i, "mood": rnd.choice("abc")}}))
    return out


async def member(pod, path, **kw):
    """A client with its own compression choice; returns it after its welcome."""
    ws = await websockets.connect(pod.url(path), max_queue=None, max_size=None, **kw)
    m = await recv_json(ws)
    assert m["data"]["event"] == "welcome"
    return ws


PLAIN = {"compression": None}
NO_CONTEXT = {"compression": None,
              "extensions": [ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                            client_max_window_bits=True)]}


def agreed(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions") or ""


class Reader:
    """Reads a client's messages in the background, as raw text."""

    def __init__(self, ws):
        self.ws, self.got = ws, []
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for m in self.ws:
                self.got.append(m)
        except websockets.ConnectionClosed:
            pass

    async def until(self, n, timeout=15):
        for _ in range(int(timeout / 0.02)):
            if len(self.got) >= n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"got {len(self.got)} of {n} messages")


def per_sender(msgs):
    """Each sender's messages in order (the order the server promises)."""
    out = {}
    for m in msgs:
        out.setdefault(json.loads(m)["from"], []).append(m)
    return out


def is_slice(part, whole):
    if not part:
        return True
    try:
        at = whole.index(part[0])
    except ValueError:
        return False
    return whole[at:at + len(part)] == part


def test_compressing_members_read_what_plain_members_read(any_pods):
    """300 varied messages and global ones in between, members on both pods
    (and both workers) that compress with context, without, or not at all,
    joiners arriving mid-stream in two waves (the second while the stream is
    young, so its members read plain frames until the restart) and one
    leaving: every compressing member's messages are the plain member's,
    byte for byte."""
    mode, (p1, p2) = any_pods
    msgs = chat_messages(300, 7)
    cuts = [0, 100, 104, 200, 300]  # joiners after 100 and 104, one leaves after 200

    def with_globals(a, b):  # a global notification follows every tenth message
        return (b - a) + sum(1 for i in range(a, b) if i % 10 == 9)

    async def go():
        plain = [await member(p, "/ws/z", **PLAIN) for p in (p1, p2)]
        deflating = [await member(p, "/ws/z") for p in (p1, p2) * 6]
        alone = await member(p2, "/ws/z", **NO_CONTEXT)
        assert all("permessage-deflate" in agreed(ws) for ws in deflating)
        assert "client_no_context_takeover" in agreed(deflating[0])
        assert "server_no_context_takeover" in agreed(alone)
        assert agreed(plain[0]) == ""
        sender = await member(p1, "/ws/z", **PLAIN)
        notifier = await member(p2, "/ws")
        everyone = plain + deflating + [alone]
        readers = [Reader(ws) for ws in everyone]
        joiners = []
        for k in range(len(cuts) - 1):
            for i in range(cuts[k], cuts[k + 1]):
                await sender.send(msgs[i])
                if i % 10 == 9:
                    await notifier.send(json.dumps({"type": "notification", "data": {"at": i}}))
            for r in readers:
                await r.until(with_globals(0, cuts[k + 1]))
            for j, since in joiners:
                if not j.ws.closed:
                    await j.until(with_globals(since, cuts[k + 1]))
            if k in (0, 1):
                joiners += [(Reader(await member(p, "/ws/z")), cuts[k + 1]) for p in (p1, p2, p1)]
            if k == 2:
                await joiners[0][0].ws.close()
        for ws in everyone + [sender, notifier] + [j.ws for j, _ in joiners]:
            await ws.close()
        return readers, [j for j, _ in joiners]

    readers, joiners = asyncio.run(go())
    want = {pod: per_sender(readers[i].got) for i, pod in enumerate(("p1", "p2"))}
    texts = [json.loads(m)["data"].get("text") for m in readers[0].got]
    assert [t for t in texts if t] == [json.loads(m)["data"]["text"] for m in msgs]
    for r in readers[2:]:
        assert len(r.got) == with_globals(0, 300)
        got = per_sender(r.got)
        assert got == want["p1"] or got == want["p2"]
    for j in joiners:
        got = per_sender(j.got)
        assert sum(len(v) for v in got.values()) >= with_globals(100, 200)
        for sender, seq in got.items():
            assert is_slice(seq, want["p1"][sender]), "a joiner reads a slice of the stream"
    stats = [p1.stats()] if p1 is p2 else [p1.stats(), p2.stats()]
    z = {k: sum(s["compression"][k] for s in stats) for k in
         ("messages", "wire_bytes_saved", "negotiated", "resets_for_joiners", "members_synced")}
    assert z["messages"] >= 300 and z["wire_bytes_saved"] > 0 and z["negotiated"] >= 18
    assert z["resets_for_joiners"] >= 1 and z["members_synced"] >= 6


def test_the_negotiation_over_the_wire(start_server):
    srv = start_server(ECHO_ENDPOINT="true")
    off = start_server(COMPRESSION="off")
    ext = "sec-websocket-extensions"
    cases = [
        ("permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_no_context_takeover"),
        ("permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
         "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
         "server_max_window_bits=10"),
        ("x-webkit-deflate-frame", None),
        ("permessage-deflate; server_max_window_bits=7, permessage-deflate; mux, "
         "permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover"),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
    ]
    before = srv.stats()["compression"]
    for offer, answer in cases:
        for path in ("/ws/lobby", "/api/chat-api/echo"):
            status, headers, _ = upgrade_request(srv.port, path,
                                                 f"Sec-WebSocket-Extensions: {offer}\r\n")
            assert status == 101, offer  # a declined offer never refuses the upgrade
            assert headers.get(ext, [None]) == [answer], offer
    after = srv.stats()["compression"]
    assert after["negotiated"] - before["negotiated"] == 6
    assert after["offers_declined"] - before["offers_declined"] == 2 * 4
    status, headers, _ = upgrade_request(off.port, "/ws/lobby",
                                         "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert status == 101 and ext not in headers


def deflate_raw(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def raw_deflating(port, path="/ws/lobby"):
    r = Raw(port, path, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert r.status == 101
    return r


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_bombs_bad_data_and_rsv1_misuse(start_server):
    srv = start_server()
    # A bomb: 50 MB of one byte, about 50 KB compressed, inflates only up to
    # MAX_MESSAGE_SIZE (64 KiB) before the connection is closed with 1009.
    bomb = deflate_raw(b"\0" * (50 << 20))
    assert len(bomb) < 64 << 10
    base = rss_kb(srv.proc.pid)
    for _ in range(20):
        r = raw_deflating(srv.port)
        r.recv_frame()  # welcome
        r.send_frame(1, bomb, rsv=4)
        assert r.recv_until_close()[0] == 1009
    # 20 bombs of 50 MB each: what they may cost is a message's buffers, not
    # their 50 MB (the sanitizers' allocators and shadow memory add theirs).
    grown = rss_kb(srv.proc.pid) - base
    assert grown < (24 << 10 if SANITIZER else 8 << 10), f"{grown} KB for 20 bombs"
    cases = [
        (dict(opcode=1, payload=b"\xff\xfe\xfd\xfc", rsv=4), 1007),          # not DEFLATE
        (dict(opcode=1, payload=deflate_raw(b"\xc3\x28 bad"), rsv=4), 1007),  # not UTF-8
        (dict(opcode=9, payload=b"", rsv=4), 1002),                          # on a ping
    ]
    for frame, code in cases:
        r = raw_deflating(srv.port)
        r.recv_frame()
        r.send_frame(frame["opcode"], frame["payload"], rsv=frame["rsv"])
        assert r.recv_until_close()[0] == code, frame
    # On a continuation frame, and without negotiation: 1002.
    r = raw_deflating(srv.port)
    r.recv_frame()
    part = deflate_raw(b'{"data":"split"}')
    r.send_frame(1, part[:3], fin=False, rsv=4)
    r.send_frame(0, part[3:], rsv=4)
    assert r.recv_until_close()[0] == 1002
    r = Raw(srv.port, "/ws/lobby")
    r.recv_frame()
    r.send_frame(1, deflate_raw(b"hi"), rsv=4)
    assert r.recv_until_close()[0] == 1002
    z = srv.stats()["compression"]["inflate_refused"]
    assert z["too_big"] == 20 and z["bad_data"] == 2
    # A good compressed message (fragmented, RSV1 on the first frame) is
    # delivered as its text, and the server is as it was.
    r = raw_deflating(srv.port)
    r.recv_frame()
    part = deflate_raw(json.dumps({"data": {"text": "whole again " * 20}}).encode())
    r.send_frame(1, part[:5], fin=False, rsv=4)
    r.send_frame(0, part[5:])
    fin, op, payload = r.recv_frame()
    assert json.loads(zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff"))[
        "data"]["text"] == "whole again " * 20


@pytest.mark.parametrize("offer", [
    dict(),
    dict(server_max_window_bits=8), dict(server_max_window_bits=9),
    dict(server_max_window_bits=15), dict(server_no_context_takeover=True),
    dict(server_no_context_takeover=True, server_max_window_bits=8),
    dict(server_no_context_takeover=True, server_max_window_bits=15),
    dict(client_no_context_takeover=True, client_max_window_bits=9),
])
def test_echo_with_autobahns_offers(start_server, offer):
    """Autobahn 12.x and 13.x: echoes of 16 B to 128 KiB, text and binary,
    with each offer their cases make (the client's own zlib reads them;
    window 8 is left out on the client's side: zlib cannot make it)."""
    srv = start_server(ECHO_ENDPOINT="true", MAX_MESSAGE_SIZE=1 << 20)
    offer.setdefault("client_max_window_bits", True)
    rnd = random.Random(12)

    async def go():
        ws = await websockets.connect(srv.url("/api/chat-api/echo"), compression=None,
                                      extensions=[ClientPerMessageDeflateFactory(**offer)],
                                      max_size=None)
        assert "permessage-deflate" in agreed(ws)
        for size in (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072):
            text = " ".join(rnd.choice(WORDS) for _ in range(size // 4))[:size]
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 10) == text
            blob = bytes(rnd.getrandbits(8) for _ in range(size))
            await ws.send(blob)
            assert await asyncio.wait_for(ws.recv(), 10) == blob
        await ws.close()
    asyncio.run(go())
    # Echoes are compressed alone with a 2^15 window: a client that limits
    # the server's window below it gets them plain (RFC 7692 allows either).
    compressed = offer.get("server_max_window_bits", 15) == 15
    assert (srv.stats()["compression"]["messages"] > 0) == compressed


def test_many_rooms_past_the_stream_cap(start_server):
    """With COMPRESSION_STREAMS=1 a worker keeps one room stream: the other
    rooms' messages go out compressed alone, and every member still reads
    exactly what was sent; idle members hold no zlib state."""
    srv = start_server(WORKERS=1, COMPRESSION_STREAMS=1)
    msgs = chat_messages(40, 3)

    async def go():
        rooms = [[await member(srv, f"/ws/cap{k}") for _ in range(2)] for k in range(3)]
        for k, (a, b) in enumerate(rooms):
            for m in msgs:
                await a.send(m)
        for k, pair in enumerate(rooms):
            for ws in pair:
                got = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"]
                       for _ in msgs]
                assert got == [json.loads(m)["data"] for m in msgs]
        for pair in rooms:
            for ws in pair:
                await ws.close()
    asyncio.run(go())
    z = srv.stats()["compression"]
    assert z["streams_refused"] >= 40 and z["messages"] >= 120
    wait_for(lambda: srv.stats()["compression"]["streams"] == 0, 10,
             "streams freed when their rooms have no stream members")
