"""Redis Cluster mode: the cross-pod tests against 3 masters with a replica
each, backends with SPUBLISH, per-room sharded subscriptions, and a master
failover during a stream."""
import asyncio
import json
import subprocess
import time


from aio import T, connect, recv_json, run, silent
from conftest import ready, wait_for
from doc_blocks import block
from pod_stream import stream_through



def shard_subscribers(cl, room):
    channel = f"realtime:room:{room}"
    node = cl.node(cl.master_of(channel))
    reply = node.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    return int(reply[1])


def test_backend_spublish_as_the_docs_show(cluster_pods):
    """docs/operations.md's cluster-backend block, run as printed with only
    the seed's address changed: redis-cli -c follows the slot to its master."""
    cl, (p1, p2) = cluster_pods
    seed = cl.alive()[0]
    spublish, publish = [line.replace("-h 10.0.0.1 -p 7000", f"-h 127.0.0.1 -p {seed}")
                         for line in block("cluster-backend")]

    async def go():
        ops = await connect(p2, "/ws/ops")
        other = await connect(p1, "/ws/lobby")
        g = await connect(p1, "/ws")
        subprocess.run(["sh", "-c", spublish], check=True, stdout=subprocess.DEVNULL)
        assert json.loads(await asyncio.wait_for(ops.recv(), T)) == \
            {"type": "notification", "data": {"deploy": "done"}}
        subprocess.run(["sh", "-c", publish], check=True, stdout=subprocess.DEVNULL)
        for c in (ops, other, g):
            assert json.loads(await asyncio.wait_for(c.recv(), T))["data"] == \
                "maintenance at 18:00"
        assert await silent(other) and await silent(g, 0)
    run(go())


def test_each_pod_subscribes_only_its_rooms_on_their_shards(cluster_pods):
    """Rooms spread over every shard: each pod SSUBSCRIBEs exactly the
    rooms it hosts, on the master of each room's slot, and a welcome means
    subscribed there (a backend SPUBLISH right after it arrives)."""
    cl, (p1, p2) = cluster_pods
    rooms = [f"shard-{i}" for i in range(60)]
    masters = {cl.master_of(f"realtime:room:{r}") for r in rooms}
    assert len(masters) == 3, "the rooms cover every shard"

    async def go():
        conns = {}
        for i, room in enumerate(rooms):
            pod = p1 if i % 2 else p2
            conns[room] = await connect(pod, f"/ws/{room}")
            cl.node(cl.master_of(f"realtime:room:{room}")).execute_command(
                "SPUBLISH", f"realtime:room:{room}", json.dumps({"to": room}))
            assert json.loads(await asyncio.wait_for(conns[room].recv(), T)) == {"to": room}
        for room in rooms:
            assert shard_subscribers(cl, room) == 1
        g = await connect(p1, "/ws")
        before = [p.stats()["broker"]["received"] for p in (p1, p2)]
        # A message in a room of pod 2 travels through Redis to nobody else;
        # a global one from pod 1 comes after it.
        await conns["shard-0"].send("only pod 2 hosts this")
        await recv_json(conns["shard-0"])
        await g.send(json.dumps({"type": "notification", "data": "marker"}))
        await recv_json(g)
        wait_for(lambda: p2.stats()["broker"]["received"] == before[1] + 1, 5,
                 "pod 2 to get pod 1's global marker")
        assert p1.stats()["broker"]["received"] == before[0]
        for p in (p1, p2):
            assert p.stats()["broker"]["rooms_subscribed"] == 30
    run(go())


def test_master_failover_during_a_stream(start_server, redis_cluster):
    """The master of the stream's room is killed; its replica is promoted
    (cluster-node-timeout 1 s). Both pods subscribe the room again on the
    new master within 10 s; at every client nothing is duplicated or
    reordered, and what one pod's clients missed from the other pod is
    exactly what that pod counted as lost."""
    cl = redis_cluster()
    pods = [start_server(REDIS_URL=cl.url(), REDIS_CLUSTER="true", POD_ID=f"pod-{i}")
            for i in (1, 2)]
    for p in pods:
        wait_for(lambda: ready(p), 15, "the pod to be ready")
    took = {}

    def failover(cl_, ps):
        channel = "realtime:room:stream"
        old = cl_.master_of(channel)
        t0 = time.monotonic()
        cl_.kill(old)

        def moved_and_subscribed():
            try:
                port = cl_.master_of(channel)
                if port == old:
                    return False
                return int(cl_.node(port).execute_command("PUBSUB", "SHARDNUMSUB",
                                                          channel)[1]) == 2
            except Exception:
                return False
        wait_for(moved_and_subscribed, 20, "a replica to take over and both pods to subscribe")
        took["s"] = time.monotonic() - t0
    missing, b1, b2 = stream_through(failover, (cl, pods))
    print(f"failover: recovered in {took['s']:.1f} s, {missing} lost "
          f"(pod-1 lost {b1['lost']}, pod-2 lost {b2['lost']})")
    assert took["s"] < 15  # cluster-node-timeout 1 s; generous for a loaded machine


def test_slot_migration_moves_the_subscription(cluster_pods):
    """The slot of a room moves to another master (CLUSTER SETSLOT, as
    redis-cli --cluster reshard does): the old master pushes sunsubscribe,
    the pod subscribes the room at the new owner, and a backend SPUBLISH
    there reaches the member."""
    cl, (p1, _) = cluster_pods
    channel = "realtime:room:migrating"

    async def go():
        a = await connect(p1, "/ws/migrating")
        src = cl.master_of(channel)
        seed = cl.node(src)
        slot = seed.execute_command("CLUSTER KEYSLOT", channel)
        ids = {}  # port -> (node id, flags); Debian's python3-redis parses CLUSTER NODES
        for addr, info in seed.execute_command("CLUSTER NODES").items():
            ids[int(addr.split(":")[1].split("@")[0])] = (info["node_id"], info["flags"])
        masters = [p for p, (_, flags) in ids.items()
                   if "master" in flags and "fail" not in flags]
        dst = next(p for p in masters if p != src)
        src_id, dst_id = ids[src][0], ids[dst][0]
        cl.node(dst).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        cl.node(src).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        for p in masters:
            cl.node(p).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        wait_for(lambda: cl.master_of(channel) == dst, 10, "the slot to have moved")
        wait_for(lambda: int(cl.node(dst).execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])
                 == 1, 10, "the pod to subscribe the room at the new owner")
        cl.node(dst).execute_command("SPUBLISH", channel, '{"moved":true}')
        assert json.loads(await asyncio.wait_for(a.recv(), T)) == {"moved": True}
        assert p1.stats()["broker"]["rooms_subscribed"] == 1
    run(go())
