"""Sentinels that disagree, or one that names a replica (issue 25): the
pods use an address only when it answers ROLE as a master, and keep the
master in use while any sentinel names it and no other has a majority."""
import asyncio

from aio import connect, recv_json, run, silent
from conftest import ready, wait_for
from fake_redis import FakeRedis


class FakeSentinel(FakeRedis):
    """Answers SENTINEL get-master-addr-by-name with one fixed address, as a
    sentinel with its own (mistaken or not) view would."""

    def __init__(self, master_port):
        self.master_port = master_port
        self.asks = 0
        super().__init__()

    def answer(self, c, args):
        if args[0].upper() != b"SENTINEL":
            c.sendall(b"-ERR unknown command\r\n")
            return
        self.asks += 1
        port = str(self.master_port).encode()
        c.sendall(b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(port), port))


def replica_of(master, replica):
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up", 20,
             "the replica to sync")


def test_sentinels_that_disagree_leave_the_pods_on_the_master(start_server, redis_server):
    """One sentinel names the master M, the other its replica R. Each pod
    used to believe whichever it asked last: 40 "new master" lines each,
    the hold re-armed for ever (8 of 297 messages crossed), and backend
    messages twice (subscribed on M and on R, which replicates M)."""
    m, r = redis_server(), redis_server()
    replica_of(m, r)
    s_m, s_r = FakeSentinel(m.port), FakeSentinel(r.port)
    try:
        url = f"redis://127.0.0.1:{s_m.port},127.0.0.1:{s_r.port}"
        p1, p2 = [start_server(REDIS_URL=url, REDIS_SENTINEL="chatmaster", POD_ID=f"pod-{i}")
                  for i in (1, 2)]
        for p in (p1, p2):
            wait_for(lambda: ready(p), 15, "the pod to be ready through the sentinels")

        async def go():
            a = await connect(p1, "/ws/votes")
            b = await connect(p2, "/ws/votes")
            asks = s_r.asks
            for i in range(60):  # over about three polls of both sentinels
                await a.send(str(i))
                await asyncio.sleep(0.05)
            want = [str(i) for i in range(60)]
            for c in (a, b):  # a's own copies, and b's across the pods
                assert [(await recv_json(c))["data"]["text"] for _ in range(60)] == want
            assert s_r.asks >= asks + 4, "the disagreeing sentinel was asked meanwhile"
            m.client().publish("realtime:room:votes", '{"type":"notification","data":{"n":1}}')
            for c in (a, b):
                assert (await recv_json(c))["data"] == {"n": 1}
            for c in (a, b):
                assert await silent(c, 0.5), "a backend message arrived twice"
        run(go())
        for p in (p1, p2):
            assert "new master" not in p.log(), p.log()
        assert r.client().execute_command("PUBSUB", "NUMSUB", "realtime:global")[1] == 0
    finally:
        s_m.close()
        s_r.close()


def test_a_sentinel_that_names_a_replica_is_not_believed(start_server, redis_server):
    """A pod whose only sentinel named the replica sent nothing across, counted
    nothing lost and said it was ready. Now the address must answer ROLE as a
    master: the pod says it is not ready, and why."""
    m, r = redis_server(), redis_server()
    replica_of(m, r)
    s_r = FakeSentinel(r.port)
    try:
        p = start_server(REDIS_URL=f"redis://127.0.0.1:{s_r.port}", REDIS_SENTINEL="chatmaster",
                         POD_ID="pod-1", LOG_LEVEL="debug")
        wait_for(lambda: "is no master (ROLE)" in p.log(), 10, "the ROLE check to refuse R")
        wait_for(lambda: s_r.asks >= 3, 10, "the sentinel to be asked again")
        assert not ready(p)
    finally:
        s_r.close()
