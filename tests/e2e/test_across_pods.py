"""What clients on different pods see, in every mode: standalone (one
server stands for both pods), a single Redis and a Redis Cluster. One
fixture (any_pods, conftest.py) runs each test in all three."""
import asyncio
import json

from aio import connect, recv_json, run, silent


def test_rooms_and_global_across_pods(any_pods):
    mode, (p1, p2) = any_pods

    async def go():
        a = await connect(p1, "/ws/lobby")
        b = await connect(p2, "/ws/lobby")
        o = await connect(p2, "/ws/ops")
        g1 = await connect(p1, "/ws")
        g2 = await connect(p2, "/ws")
        await a.send("hi from pod 1")
        for c in (a, b):
            m = await recv_json(c)
            assert m["data"] == {"text": "hi from pod 1"} and m["pod"] == "pod-1"
        for c in (a, b, o, g1, g2):
            assert await silent(c), "room isolation across pods, and no echo twice"
        await g2.send(json.dumps({"type": "notification", "data": {"n": 1}}))
        for c in (a, b, o, g1, g2):
            m = await recv_json(c)
            assert m["room"] is None and m["data"] == {"n": 1}
        for c in (a, b, o, g1, g2):
            assert await silent(c, 0.2), "each recipient gets it once"
    run(go())
    for p in (p1, p2):
        broker = p.stats()["broker"]
        assert broker["mode"] == ("standalone" if mode == "standalone" else "redis")
        assert broker["cluster"] is (mode == "cluster")


def test_exactly_once_and_in_order_across_pods(any_pods):
    _, (p1, p2) = any_pods
    N = 500

    async def go():
        s1, s2 = await connect(p1, "/ws/x"), await connect(p2, "/ws/x")
        r1, r2 = await connect(p1, "/ws/x"), await connect(p2, "/ws/x")

        async def read(c):
            got = [await recv_json(c, 10) for _ in range(2 * N)]
            assert await silent(c, 0.3)
            return got

        readers = [asyncio.create_task(read(c)) for c in (s1, s2, r1, r2)]

        async def send(c, tag):
            for i in range(N):
                await c.send(json.dumps({"data": {"tag": tag, "seq": i}}))
        await asyncio.gather(send(s1, "one"), send(s2, "two"))
        for got in await asyncio.gather(*readers):
            for tag in ("one", "two"):
                assert [m["data"]["seq"] for m in got if m["data"]["tag"] == tag] == list(range(N))
    run(go())
