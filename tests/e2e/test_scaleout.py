"""Per-room subscriptions: a pod takes from Redis only the rooms it hosts,
a welcome means the room is subscribed, lingering rooms are let go, and a
reconnect subscribes exactly the rooms hosted then."""
import asyncio
import json
import queue
import socket
import threading
import time

import websockets

from aio import T, connect, recv_json, run, silent
from conftest import ready, wait_for
from wsraw import http_get



def numsub(r, room):
    return dict(r.client().pubsub_numsub(f"realtime:room:{room}"))[f"realtime:room:{room}".encode()]


def room_channels(r):
    return {c.decode() for c in r.client().pubsub_channels("realtime:room:*")}


def two_pods_with(start_server, redis_server, **env):
    r = redis_server()
    url = f"redis://127.0.0.1:{r.port}"
    pods = [start_server(REDIS_URL=url, POD_ID=f"pod-{i}", **env) for i in (1, 2)]
    for p in pods:
        wait_for(lambda: ready(p), 10, "the pod to be ready")
    return r, pods


def test_a_pod_takes_only_the_rooms_it_hosts(two_pods):
    r, (p1, p2) = two_pods
    N = 300

    async def go():
        a = await connect(p1, "/ws/only-here")
        g1 = await connect(p1, "/ws")
        b = await connect(p2, "/ws/elsewhere")
        g = await connect(p2, "/ws")
        before = p2.stats()["broker"]
        assert numsub(r, "only-here") == 1 and numsub(r, "elsewhere") == 1
        for i in range(N):
            await a.send(json.dumps({"data": {"i": i}}))
        for i in range(N):
            assert (await recv_json(a))["data"] == {"i": i}
        # A global marker from the same pod goes through Redis after the
        # room's messages, on the same connection: once p2's client has it,
        # p2 would have had the room's messages too, had it subscribed.
        await g1.send(json.dumps({"type": "notification", "data": "marker"}))
        for c in (g, b, a, g1):  # global reaches room members too
            assert (await recv_json(c))["data"] == "marker"
        assert await silent(b)
        after = p2.stats()["broker"]
        assert after["taken"] == before["taken"] + 1, "p2 took only the marker from Redis"
        assert after["received"] == before["received"] + 1
        # p2 hosts "elsewhere", and gets its messages.
        r.client().publish("realtime:room:elsewhere", '{"n":1}')
        assert await asyncio.wait_for(b.recv(), T) == '{"n":1}'
        assert await silent(a)
        s1 = p1.stats()["broker"]
        assert s1["received"] == 0, "p1 hosts nothing p2 sent to"
        assert s1["taken"] == N + 1, "p1 took its own room's and its own marker's echoes"
        assert s1["rooms_subscribed"] == 1 and p2.stats()["broker"]["rooms_subscribed"] == 1
        metrics = http_get(p2.port, "/metrics")[2].decode()
        assert "chat_broker_rooms_subscribed 1\n" in metrics
        assert "chat_broker_subscribes_total 1\n" in metrics
    run(go())


def test_many_rooms_leave_no_subscription_behind(start_server, redis_server):
    r, (p1, p2) = two_pods_with(start_server, redis_server, ROOM_LINGER="1s")
    ROOMS, BATCH = 5000, 250

    async def go():
        for start in range(0, ROOMS, BATCH):
            conns = await asyncio.gather(*(
                websockets.connect((p1 if i % 2 else p2).url(f"/ws/many-{i}"))
                for i in range(start, start + BATCH)))
            for c in conns:
                assert (await recv_json(c))["data"]["event"] == "welcome"
            await asyncio.gather(*(c.close() for c in conns))
    run(go())
    wait_for(lambda: not room_channels(r), 30, "every room channel to be unsubscribed")
    for p in (p1, p2):
        wait_for(lambda: p.stats()["rooms"]["count"] == 0, 5)
        b = p.stats()["broker"]
        assert b["rooms_subscribed"] == 0
        # Batched SUBSCRIBEs may cover a room twice only if it was let go and
        # joined again, which never happens here: one each way per room.
        assert b["subscribes"] == ROOMS // 2 == b["unsubscribes"], b
    assert all(ready(p) for p in (p1, p2))


class SlowLink:
    """A TCP relay to Redis that holds what the pod sends for delay seconds
    (a distant Redis): a SUBSCRIBE reaches Redis well after it was sent."""

    def __init__(self, port, delay):
        self.port, self.delay = port, delay
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.listen_port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.ls.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.port))
            q = queue.Queue()
            threading.Thread(target=self._read, args=(down, q), daemon=True).start()
            threading.Thread(target=self._send_late, args=(q, up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down), daemon=True).start()

    def _read(self, src, q):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _send_late(self, q, dst):
        while True:
            due, data = q.get()
            time.sleep(max(0.0, due - time.monotonic()))  # the link's latency
            if not data:
                dst.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def _pipe(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
        dst.close()

    def close(self):
        self.ls.close()


def test_welcome_means_subscribed(start_server, redis_server):
    """100 fresh rooms: a client joins on pod 1, whose link to Redis is
    slow, and the moment it has its welcome pod 2's client and a backend
    send to the room: none missed."""
    r = redis_server()
    link = SlowLink(r.port, 0.05)
    p1 = start_server(REDIS_URL=f"redis://127.0.0.1:{link.listen_port}", POD_ID="pod-1")
    p2 = start_server(REDIS_URL=f"redis://127.0.0.1:{r.port}", POD_ID="pod-2")
    for p in (p1, p2):
        wait_for(lambda: ready(p), 10, "the pod to be ready")
    backend = r.client()

    async def go():
        for i in range(100):
            room = f"fresh-{i}"
            b = await connect(p2, f"/ws/{room}")
            a = await connect(p1, f"/ws/{room}")
            await b.send(f"hello {i}")
            backend.publish(f"realtime:room:{room}", json.dumps({"backend": i}))
            got = [await recv_json(a), await recv_json(a)]  # two senders: any order
            assert {"backend": i} in got, got
            m = next(m for m in got if m != {"backend": i})
            assert m["data"] == {"text": f"hello {i}"} and m["pod"] == "pod-2", m
            await a.close()
            await b.close()
    run(go())
    link.close()


def test_linger_keeps_a_room_for_a_returning_client(start_server, redis_server):
    r, (p1, _) = two_pods_with(start_server, redis_server, ROOM_LINGER="1m")

    async def go():
        a = await connect(p1, "/ws/back-soon")
        await a.close()
        assert numsub(r, "back-soon") == 1, "still subscribed during the linger"
        a = await connect(p1, "/ws/back-soon")
        r.client().publish("realtime:room:back-soon", '{"again":true}')
        assert await asyncio.wait_for(a.recv(), T) == '{"again":true}'
        b = p1.stats()["broker"]
        assert b["subscribes"] == 1 and b["unsubscribes"] == 0
    run(go())


def test_reconnect_subscribes_exactly_the_hosted_rooms(start_server, redis_server):
    r, (p1, p2) = two_pods_with(start_server, redis_server, ROOM_LINGER="1m")

    async def go():
        stay = [await connect(p1, "/ws/stay-1"), await connect(p2, "/ws/stay-2")]
        gone = await connect(p1, "/ws/gone")
        await gone.close()
        assert room_channels(r) == {"realtime:room:stay-1", "realtime:room:stay-2",
                                    "realtime:room:gone"}
        r.kill()
        wait_for(lambda: not ready(p1) and not ready(p2), 10, "the pods to see Redis gone")
        # Joining while Redis is away: welcomed at once, served locally.
        late = await connect(p1, "/ws/late")
        await late.send("local")
        assert (await recv_json(late))["data"] == {"text": "local"}
        r.start()
        wait_for(lambda: ready(p1) and ready(p2), 15, "the pods to be ready again")
        wait_for(lambda: room_channels(r) == {"realtime:room:stay-1", "realtime:room:stay-2",
                                              "realtime:room:late"}, 10,
                 "exactly the hosted rooms to be subscribed again")
        for c, room in ((stay[0], "stay-1"), (stay[1], "stay-2"), (late, "late")):
            r.client().publish(f"realtime:room:{room}", json.dumps({"room": room}))
            assert json.loads(await asyncio.wait_for(c.recv(), T)) == {"room": room}
    run(go())
