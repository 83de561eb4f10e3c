"""make fleet: a simulated fleet on this machine (issue 11).

A Redis Cluster of 3 masters and 3 replicas (Debian's redis-server on
loopback), 8 pods with WORKERS=1 and REDIS_CLUSTER=true, and chat-bench
spreading ROOMS rooms over the pods (each room's members on 2 of them, so
each pod hosts a quarter of the rooms). Mid-run one master is killed.

It prints and writes to bench/results/fleet.json:
  - per pod: messages Redis sent it (broker.taken) against the messages of
    the rooms it hosts, and their ratio (per-room subscriptions: ~1.0);
  - the cluster's total output bytes, and per delivered message;
  - exactly-once and order at every client (chat-bench's counters);
  - a frozen master (issue 17): before the kill, another master is stopped
    (SIGSTOP) for 8 s while probe rooms, one per master, carry 10 messages/s
    from one pod to another: the worst and 99th-percentile latency during
    the freeze for rooms on healthy shards and on the sick one;
  - the failover: time until every pod has its rooms subscribed again, and
    messages lost, checked against the pods' broker.lost (each lost message
    of a pod is missed by its members in that room).
Run with /usr/bin/python3 (Debian's python3-redis, python3-pytest).
"""
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("CHAT_API_BIN", os.path.join(HERE, "..", "build", "chat-api"))

from conftest import RedisCluster, Server, ready, wait_for  # noqa: E402

PODS = 8
ROOMS = int(os.environ.get("FLEET_ROOMS", "240"))
MEMBERS = 4       # per room, 2 on each of its 2 pods
SPREAD = 2
RATE = 5.0        # messages/s per room (one publisher per room)
DURATION = 80.0   # seconds of sending after warm-up (freeze, linger, kill, recovery)
LINGER_S = 12.0   # after the probes: their rooms' linger (10 s) passes
FREEZE_S = 8.0    # the frozen master's time stopped
BENCH = os.path.join(HERE, "..", "build", "chat-bench")


def cluster_cpu_s(cl, ports):
    out = {}
    for p in ports:
        try:
            info = cl.node(p).info("cpu")
            out[p] = info["used_cpu_sys"] + info["used_cpu_user"]
        except Exception:
            pass
    return out


def cluster_output_bytes(cl, ports):
    out = {}
    for p in ports:
        try:
            out[p] = cl.node(p).info("stats")["total_net_output_bytes"]
        except Exception:
            pass
    return out


def probe_rooms(cl):
    """One probe room per master: {master port: room}."""
    found, i = {}, 0
    while len(found) < 3:
        room = f"probe-{i}"
        found.setdefault(cl.master_of(f"realtime:room:{room}"), room)
        i += 1
    return found


async def frozen_phase(cl, pods, sick_port, rooms):
    """Probe rooms send 10 messages/s from pods[0] to pods[1] while the
    master sick_port is stopped for FREEZE_S. Returns per room: worst and
    p99 latency (ms) of messages sent during the freeze, and how many of
    them arrived."""
    import websockets
    sick = next(proc for port, proc in cl.nodes if port == sick_port)
    send, recv = {}, {}
    for room in rooms.values():
        send[room] = await websockets.connect(pods[0].url(f"/ws/{room}"))
        recv[room] = await websockets.connect(pods[1].url(f"/ws/{room}"), max_queue=None)
        await send[room].recv()
        await recv[room].recv()  # the welcomes
    sent_at, got = {}, {room: {} for room in rooms.values()}

    async def reader(room):
        try:
            async for raw in recv[room]:
                d = json.loads(raw).get("data")
                if isinstance(d, dict) and d.get("probe") == room:
                    got[room].setdefault(d["i"], time.monotonic())
        except websockets.ConnectionClosed:
            pass
    tasks = [asyncio.ensure_future(reader(r)) for r in rooms.values()]
    n = 0
    sick.send_signal(signal.SIGSTOP)
    try:
        t_end = time.monotonic() + FREEZE_S
        while time.monotonic() < t_end:
            for room in rooms.values():
                sent_at[(room, n)] = time.monotonic()
                await send[room].send(json.dumps({"type": "chat", "data": {"probe": room, "i": n}}))
            n += 1
            await asyncio.sleep(0.1)
    finally:
        sick.send_signal(signal.SIGCONT)
    await asyncio.sleep(10)  # late arrivals of the sick shard
    out = {}
    for port, room in rooms.items():
        lat = sorted((got[room][i] - sent_at[(room, i)]) * 1000 for i in got[room] if i < n)
        out[room] = {"shard": "sick" if port == sick_port else "healthy", "sent": n,
                     "arrived": len(lat),
                     "worst_ms": round(lat[-1]) if lat else None,
                     "p99_ms": round(lat[int(len(lat) * 0.99) - 1]) if lat else None}
    for t in tasks:
        t.cancel()
    for ws in list(send.values()) + list(recv.values()):
        await ws.close()
    return out


def main():
    t_start = time.monotonic()
    load_before = os.getloadavg()
    cl = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
    pods = []
    bench = None
    try:
        for i in range(PODS):
            pods.append(Server({"REDIS_URL": cl.url(), "REDIS_CLUSTER": "true",
                                "POD_ID": f"fleet-{i}", "WORKERS": "1", "LOG_LEVEL": "warn"}))
        for p in pods:
            wait_for(lambda: ready(p), 20, "a pod to be ready")
        all_ports = [p for p, _ in cl.nodes]
        out0 = cluster_output_bytes(cl, all_ports)
        cpu0 = cluster_cpu_s(cl, all_ports)
        taken0 = {p.port: p.stats()["broker"]["taken"] for p in pods}
        bench = subprocess.Popen(
            [BENCH, "--scenario", "fleet", "--port", ",".join(str(p.port) for p in pods),
             "--server-pid", ",".join(str(p.proc.pid) for p in pods),
             "--rooms", str(ROOMS), "--members", str(MEMBERS), "--publishers", "1",
             "--rate", str(RATE), "--duration", str(DURATION), "--warmup", "2",
             "--spread", str(SPREAD), "--sources", "4", "--payload", "64"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        hosted = {p.port: None for p in pods}
        wait_for(lambda: sum(p.stats()["rooms"]["count"] for p in pods) == ROOMS * SPREAD, 60,
                 "every pod to host its rooms")
        for p in pods:
            hosted[p.port] = p.stats()["broker"]["rooms_subscribed"]
        # The kill's victim: the first room's master, which also carries some
        # pods' realtime:global. The frozen one: another master.
        victim = cl.master_of("realtime:room:bench-0")
        probes = probe_rooms(cl)
        frozen_port = next(p for p in sorted(probes) if p != victim)
        frozen = asyncio.run(frozen_phase(cl, pods, frozen_port, probes))
        # The probes' rooms came and went: wait for the pods' counts again
        # (and for the frozen master's shard to be served, by it or its
        # replica), then the kill.
        wait_for(cl.healthy, 30, "the cluster to be ok after the freeze")
        wait_for(lambda: all(p.stats()["broker"]["rooms_subscribed"] >= hosted[p.port]
                             for p in pods), 30, "every pod to have its rooms after the freeze")
        time.sleep(LINGER_S)
        victim = cl.master_of("realtime:room:bench-0")
        out_victim = cluster_output_bytes(cl, [victim])
        cpu_victim = cluster_cpu_s(cl, [victim])
        t_kill = time.monotonic()
        cl.kill(victim)
        wait_for(lambda: cl.master_of("realtime:room:bench-0") != victim, 30,
                 "a replica to take over")
        t_promoted = time.monotonic()
        try:
            wait_for(lambda: all(p.stats()["broker"]["rooms_subscribed"] == hosted[p.port]
                                 for p in pods), 30, "every pod to have its rooms again")
        except AssertionError:
            for p in pods:
                b = p.stats()["broker"]
                print(f"pod {p.port}: rooms_subscribed {b['rooms_subscribed']} of "
                      f"{hosted[p.port]}, rooms {p.stats()['rooms']['count']}, "
                      f"connected {b['connected']}", file=sys.stderr)
                print(p.log()[-3000:], file=sys.stderr)
            raise
        t_recovered = time.monotonic()
        out, err = bench.communicate(timeout=DURATION + 120)
        if bench.returncode != 0:
            raise SystemExit(f"chat-bench failed: {err}")
        result = json.loads(out)
        alive = cl.alive()
        out1 = cluster_output_bytes(cl, alive)
        cpu1 = cluster_cpu_s(cl, alive)
        redis_cpu = sum(cpu1[p] - cpu0.get(p, 0) for p in cpu1) + \
            (cpu_victim.get(victim, 0) - cpu0.get(victim, 0))
        output_bytes = sum(out1[p] - out0.get(p, 0) for p in out1) + \
            (out_victim.get(victim, 0) - out0.get(victim, 0))

        per_pod = []
        lost_total = 0
        for p in pods:
            st = p.stats()
            b = st["broker"]
            rooms = [r for r, ports in enumerate(result["room_ports"]) if p.port in ports]
            hosted_msgs = sum(result["room_sent"][r] for r in rooms)
            taken = b["taken"] - taken0[p.port]
            lost_total += b["lost"]
            per_pod.append({"pod": st["pod_id"], "rooms": len(rooms), "hosted_messages": hosted_msgs,
                            "taken_from_redis": taken, "lost": b["lost"],
                            "duplicates_dropped": b["duplicates"],
                            "ratio": round(taken / hosted_msgs, 4) if hosted_msgs else None,
                            "ratio_with_lost": round((taken + b["lost"]) / hosted_msgs, 4)
                            if hosted_msgs else None})
        total_sent = sum(result["room_sent"])
        missed = result["gap_messages"] + result["loss"]
        members_per_pod = MEMBERS // SPREAD
        report = {
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "load_before": [round(x, 2) for x in load_before],
                        "load_after": [round(x, 2) for x in os.getloadavg()]},
            "setup": {"pods": PODS, "workers_per_pod": 1, "redis": "cluster 3 masters + 3 replicas",
                      "rooms": ROOMS, "members": MEMBERS, "pods_per_room": SPREAD,
                      "rate_per_room": RATE, "duration_s": DURATION},
            "pods": per_pod,
            "messages_sent": total_sent,
            "deliveries": result["deliveries"],
            "redis_output_bytes": output_bytes,
            "redis_output_bytes_per_message_sent": round(output_bytes / total_sent, 1),
            "redis_cpu_s": round(redis_cpu, 2),
            "redis_messages_per_cpu_s": round(total_sent / redis_cpu) if redis_cpu else None,
            "pods_cpu_s_measured": result["server_cpu_s"],
            "deliveries_per_pod_cpu_s": result["deliveries_per_server_cpu_s"],
            "clients": {"dup_or_reorder": result["dup_or_reorder"], "missed": missed,
                        "readers_closed": result["readers_closed"]},
            "frozen_master": {"port": frozen_port, "seconds": FREEZE_S, "probe_rooms": frozen},
            "failover": {"killed_master": victim,
                         "replica_promoted_s": round(t_promoted - t_kill, 2),
                         "recovered_s": round(t_recovered - t_kill, 2),
                         "pods_lost_total": lost_total,
                         "clients_missed_expected": lost_total * members_per_pod,
                         "clients_missed": missed},
            "p50_us": result["p50_us"], "p99_us": result["p99_us"], "max_us": result["max_us"],
            "wall_s": round(time.monotonic() - t_start, 1),
        }
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "fleet.json"), "w") as f:
            json.dump(report, f, indent=1)
        print(f"{'pod':10} {'rooms':>5} {'hosted msgs':>11} {'from Redis':>10} {'ratio':>6} "
              f"{'lost':>5}")
        for r in per_pod:
            print(f"{r['pod']:10} {r['rooms']:5} {r['hosted_messages']:11} "
                  f"{r['taken_from_redis']:10} {r['ratio']:6} {r['lost']:5}")
        print(f"messages sent {total_sent}, deliveries {result['deliveries']}, Redis output "
              f"{output_bytes} bytes ({report['redis_output_bytes_per_message_sent']} per message)")
        print(f"Redis CPU {redis_cpu:.2f} s for the whole run ({report['redis_messages_per_cpu_s']} "
              f"messages per Redis CPU-second, replication and cluster bus included); pods "
              f"{result['deliveries_per_server_cpu_s']:.0f} deliveries per CPU-second")
        print(f"clients: duplicates/reordering {result['dup_or_reorder']}, missed {missed}; "
              f"pods counted lost {lost_total} x {members_per_pod} members = "
              f"{lost_total * members_per_pod}")
        for room, r in frozen.items():
            print(f"frozen master ({FREEZE_S:.0f} s): {room} on a {r['shard']} shard: "
                  f"{r['arrived']}/{r['sent']} arrived, worst {r['worst_ms']} ms, "
                  f"p99 {r['p99_ms']} ms")
        print(f"failover: replica promoted after {report['failover']['replica_promoted_s']} s, "
              f"every pod subscribed again after {report['failover']['recovered_s']} s")
        print(f"wall {report['wall_s']} s; load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
        healthy_ok = all(r["arrived"] == r["sent"] and r["worst_ms"] < 2500
                         for r in frozen.values() if r["shard"] == "healthy")
        ok = result["dup_or_reorder"] == 0 and missed == lost_total * members_per_pod and \
            all(abs(r["ratio_with_lost"] - 1) <= 0.05 for r in per_pod) and healthy_ok
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if bench and bench.poll() is None:
            bench.kill()
        for p in pods:
            p.terminate()
        for p in pods:
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
        cl.close()


if __name__ == "__main__":
    sys.exit(main())
