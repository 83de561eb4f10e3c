"""A slot that moves while messages to it are in flight (issue 25): a
PUBLISH answered MOVED used to be sent again behind newer ones of its slot
(1 in 10,000 reordered over three moves, then counted lost by receivers and
dropped as a duplicate). A fake cluster in this process moves every slot
from master A to master B in the middle of a stream; B must get the rest in
the order they were sent."""
import json
import time

from aio import connect, recv_json, run
from conftest import ready, wait_for
from fake_redis import FakeRedis, confirm_subscribe


class Master(FakeRedis):
    def __init__(self, cluster):
        self.cluster = cluster
        self.got = []  # the numbers published here, in order
        super().__init__()

    def answer(self, c, args):
        cmd = args[0].upper()
        if cmd == b"CLUSTER":
            c.sendall(self.cluster.slots_reply())
        elif cmd == b"SPUBLISH":
            owner = self.cluster.owner
            if owner is not self:
                # One answer per write, a moment apart: the pod reads them
                # one at a time while newer messages are still in flight.
                time.sleep(0.002)
                c.sendall(b"-MOVED 0 127.0.0.1:%d\r\n" % owner.port)
                return
            self.got.append(json.loads(args[2])["data"]["i"])
            c.sendall(b":1\r\n")
        elif cmd == b"PUBLISH":
            c.sendall(b":0\r\n")
        elif cmd in (b"SSUBSCRIBE", b"SUBSCRIBE"):
            confirm_subscribe(c, cmd, args[1:])
        else:
            c.sendall(b"-ERR not here\r\n")


class Cluster:
    def __init__(self):
        self.a = Master(self)
        self.b = Master(self)
        self.owner = self.a

    def slots_reply(self):
        return b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n" % self.owner.port

    def close(self):
        self.a.close()
        self.b.close()


def test_a_slot_that_moves_mid_stream_keeps_its_order(start_server):
    cl = Cluster()
    try:
        p = start_server(REDIS_URL=f"redis://127.0.0.1:{cl.a.port}", REDIS_CLUSTER="true",
                         POD_ID="pod-1")
        wait_for(lambda: ready(p), 15, "the pod to be ready on the fake cluster")
        n = 400

        async def go():
            c = await connect(p, "/ws/moving")
            for i in range(n):
                if i == n // 4:
                    cl.owner = cl.b  # the slot moves; A answers MOVED from now on
                await c.send(json.dumps({"data": {"i": i}}))
            for i in range(n):
                assert (await recv_json(c))["data"] == {"i": i}
        run(go())
        wait_for(lambda: len(cl.a.got) + len(cl.b.got) >= n, 20,
                 "every message to be published on A or B")
        assert cl.a.got == list(range(len(cl.a.got))), "A took them in order"
        assert cl.b.got == list(range(len(cl.a.got), n)), \
            f"B took the rest out of order: {[x for i, x in enumerate(cl.b.got) if i and x < cl.b.got[i - 1]][:10]}"
    finally:
        cl.close()
