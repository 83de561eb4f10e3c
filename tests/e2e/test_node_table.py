"""A pod that meets more Redis masters over its life than it has node slots
(REDIS_NODES_MAX, 64): the node table used to keep every node it ever met,
so past 64 new masters could not be used until a restart (issue 25). Nodes
that left the map and hold nothing are now freed. A fake cluster in this
process names 40 masters, then 40 others for the same slots."""
import binascii
import json

from aio import connect, recv_json, run
from conftest import ready, wait_for
from fake_redis import FakeRedis, confirm_subscribe

SLOTS = 16384
N = 40


def slot_of(channel):
    return binascii.crc_hqx(channel.encode(), 0) % SLOTS


class FakeMaster(FakeRedis):
    """Takes (S)PUBLISH and (S)SUBSCRIBE, and answers CLUSTER SLOTS with the
    cluster's map of the moment; a master of the old map hangs up."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.published = 0
        self.subscribed = set()
        super().__init__()

    def answer(self, c, args):
        if self.cluster.gone(self):
            return False
        cmd = args[0].upper()
        if cmd == b"CLUSTER":
            c.sendall(self.cluster.slots_reply())
        elif cmd in (b"SPUBLISH", b"PUBLISH"):
            self.published += 1
            c.sendall(b":0\r\n")
        elif cmd in (b"SSUBSCRIBE", b"SUBSCRIBE"):
            self.subscribed.update(ch.decode() for ch in args[1:])
            confirm_subscribe(c, cmd, args[1:])
        else:
            c.sendall(b"-ERR not here\r\n")


class FakeCluster:
    def __init__(self):
        self.seed = FakeMaster(self)
        self.old = [FakeMaster(self) for _ in range(N)]
        self.new = [FakeMaster(self) for _ in range(N)]
        self.switched = False

    def masters(self):
        return self.new if self.switched else self.old

    def gone(self, m):
        return self.switched and m in self.old

    def slots_reply(self):
        ms = self.masters()
        out = [b"*%d\r\n" % len(ms)]
        for i, m in enumerate(ms):
            first, last = i * SLOTS // N, (i + 1) * SLOTS // N - 1
            out.append(b"*3\r\n:%d\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n" % (first, last, m.port))
        return b"".join(out)

    def switch(self):
        self.switched = True
        for m in self.old:
            m.close()  # refuses new connections; open ones hang up at their next command

    def close(self):
        for m in [self.seed] + self.old + self.new:
            m.close()


def one_room_per_range():
    rooms, k = {}, 0
    while len(rooms) < N:
        name = f"r{k}"
        rooms.setdefault(slot_of(f"realtime:room:{name}") * N // SLOTS, name)
        k += 1
    return [rooms[i] for i in range(N)]


def test_more_masters_than_node_slots_over_a_pods_life(start_server):
    cl = FakeCluster()
    try:
        p = start_server(REDIS_URL=f"redis://127.0.0.1:{cl.seed.port}", REDIS_CLUSTER="true",
                         POD_ID="pod-1")
        wait_for(lambda: ready(p), 15, "the pod to be ready on the fake cluster")
        rooms = one_room_per_range()

        async def go():
            clients = [await connect(p, f"/ws/{room}") for room in rooms]

            async def send_all(tag):
                for c in clients:
                    await c.send(json.dumps({"data": {"t": tag}}))
                for c in clients:
                    assert (await recv_json(c))["data"] == {"t": tag}
            await send_all("old")
            wait_for(lambda: all(m.published for m in cl.old), 15,
                     "every room's message to reach its master")
            cl.switch()
            await send_all("new")
            wait_for(lambda: all(m.published for m in cl.new), 30,
                     "every room's message to reach its new master (80 masters met)")
            wait_for(lambda: all(f"realtime:room:{room}" in cl.new[i].subscribed
                                 for i, room in enumerate(rooms)), 30,
                     "every room to be subscribed on its new master")
        run(go())
        assert ready(p)
    finally:
        cl.close()
