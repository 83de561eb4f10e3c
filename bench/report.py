"""Prints the medians of bench/results/*.jsonl against the targets, writes
bench/results/summary.json and plots fanout latency against offered load."""
import json
import os
import statistics
import subprocess
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def load(name):
    path = os.path.join(OUT, name + ".jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


# (scenario, what we report, key, target, "min" or "max")
TARGETS = [
    ("fanout", "deliveries per server CPU-s", "deliveries_per_server_cpu_s", 5_000_000, "min"),
    ("rooms", "deliveries per server CPU-s", "deliveries_per_server_cpu_s", 2_000_000, "min"),
    ("fixed", "server cores at 500 msg/s x 1000", "server_cores", 0.8, "max"),
    ("fixed", "p99 latency, ms", "p99_ms", 5, "max"),
    ("pods", "pods+Redis cores / single pod", "pods_ratio", 1.5, "max"),
    ("pods", "p99 latency, ms", "p99_ms", 10, "max"),
    ("idle", "server bytes per idle connection", "bytes_per_connection", 512, "max"),
    ("connect", "handshakes per second", "handshakes_per_s", 20_000, "min"),
]


def main():
    data = {n: load(n) for n in ("fanout", "rooms", "fixed", "slow", "connect", "idle", "pods", "sweep",
                                 "storm", "stats")}
    for rows in data.values():
        for r in rows:
            if "p99_us" in r:
                r["p99_ms"] = r["p99_us"] / 1000
    fixed_cores = med(data["fixed"], "server_cores")
    for r in data["pods"]:
        r["pods_ratio"] = r["server_cores"] / fixed_cores if fixed_cores else float("nan")

    summary = {"machine": {"cpus": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3]},
               "scenarios": {}}
    print()
    print(f"{'scenario':9} {'runs':>4} {'deliveries/s':>13} {'per server CPU-s':>17} {'server cores':>12} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'loss':>5} {'dup/reord':>9} {'gen-bound':>9}")
    for name in ("fanout", "rooms", "fixed", "slow", "pods"):
        rows = data[name]
        if not rows:
            continue
        s = {k: med(rows, k) for k in ("deliveries_per_s", "deliveries_per_server_cpu_s", "server_cores",
                                        "p50_us", "p99_us", "p999_us", "max_us", "generator_cores")}
        s["loss"] = sum(r["loss"] for r in rows)
        s["dup_or_reorder"] = sum(r["dup_or_reorder"] for r in rows)
        s["generator_bound_runs"] = sum(r["generator_bound"] for r in rows)
        s["runs"] = len(rows)
        summary["scenarios"][name] = s
        print(f"{name:9} {len(rows):>4} {s['deliveries_per_s']:>13,.0f} {s['deliveries_per_server_cpu_s']:>17,.0f} "
              f"{s['server_cores']:>12.2f} {s['p50_us']/1000:>8.2f} {s['p99_us']/1000:>8.2f} "
              f"{s['p999_us']/1000:>9.2f} {s['loss']:>5} {s['dup_or_reorder']:>9} "
              f"{s['generator_bound_runs']:>6}/{len(rows)}")
    if data["connect"]:
        s = {k: med(data["connect"], k) for k in ("handshakes_per_s", "handshakes_per_server_cpu_s", "server_cores")}
        summary["scenarios"]["connect"] = s
        print(f"connect: {s['handshakes_per_s']:,.0f} handshakes/s at {s['server_cores']:.2f} server cores "
              f"({s['handshakes_per_server_cpu_s']:,.0f} per server CPU-s)")
    if data["storm"]:
        keys = ("handshakes_per_s", "last_welcome_s", "handshakes_per_server_cpu_s", "welcomed")
        s = {k: med(data["storm"], k) for k in keys}
        s["not_welcomed"] = sum(r["connections"] - r["welcomed"] for r in data["storm"])
        summary["scenarios"]["storm"] = s
        print(f"storm: {s['welcomed']:,.0f} clients at once, the last welcomed after "
              f"{s['last_welcome_s']:.2f} s ({s['handshakes_per_s']:,.0f} handshakes/s, "
              f"{s['handshakes_per_server_cpu_s']:,.0f} per server CPU-s); not welcomed in any "
              f"run: {s['not_welcomed']}")
    if data["stats"]:
        rows = data["stats"]
        s = {"server_cpu_ms_per_stats": med(rows, "server_cpu_ms_per_stats")}
        for k in ("healthz_ms_quiet", "healthz_ms_polled", "upgrade_ms_quiet", "upgrade_ms_polled"):
            for p in ("p50", "p99"):
                s[f"{k}_{p}"] = statistics.median(r[k][p] for r in rows)
        summary["scenarios"]["stats"] = s
        print(f"stats: {rows[0]['rooms']:,} rooms, {rows[0]['stats_per_s']} stats requests/s "
              f"({s['server_cpu_ms_per_stats']:.2f} ms of server CPU each): /healthz p50/p99 "
              f"{s['healthz_ms_quiet_p50']:.2f}/{s['healthz_ms_quiet_p99']:.2f} ms quiet, "
              f"{s['healthz_ms_polled_p50']:.2f}/{s['healthz_ms_polled_p99']:.2f} ms polled; "
              f"upgrade {s['upgrade_ms_quiet_p50']:.2f}/{s['upgrade_ms_quiet_p99']:.2f} ms quiet, "
              f"{s['upgrade_ms_polled_p50']:.2f}/{s['upgrade_ms_polled_p99']:.2f} ms polled")
    if data["idle"]:
        s = {k: med(data["idle"], k) for k in ("bytes_per_connection", "connections")}
        summary["scenarios"]["idle"] = s
        print(f"idle: {s['bytes_per_connection']:,.0f} bytes of server RSS per idle connection "
              f"({s['connections']:,.0f} connections)")

    print()
    print(f"{'target':48} {'median':>14} {'goal':>12}  met")
    results = []
    for name, label, key, goal, kind in TARGETS:
        if not data[name]:
            continue  # not run (ONLY=...)
        v = med(data[name], key)
        ok = (v >= goal) if kind == "min" else (v <= goal)
        verdict = "yes" if ok else "NO"
        # Both pods and Redis share the server's one core: once it is
        # saturated, their CPU cannot exceed one core and the ratio says nothing.
        if key == "pods_ratio" and med(data["pods"], "server_cores") >= 0.95:
            ok, verdict = None, "n/a (core saturated)"
        results.append({"scenario": name, "what": label, "median": v, "goal": goal, "kind": kind, "met": ok})
        sign = ">=" if kind == "min" else "<="
        print(f"{name + ': ' + label:48} {v:>14,.2f} {sign + ' ' + format(goal, ','):>12}  {verdict}")
    clean = all(r["loss"] == 0 and r["dup_or_reorder"] == 0 for n in ("fanout", "rooms", "fixed", "slow", "pods")
                for r in data[n])
    print(f"{'all: zero loss, duplication or reordering':48} {'':>14} {'':>12}  {'yes' if clean else 'NO'}")
    summary["targets"] = results
    summary["zero_loss_dup_reorder"] = clean
    json.dump(summary, open(os.path.join(OUT, "summary.json"), "w"), indent=2)

    sweep = sorted(data["sweep"], key=lambda r: r["rate_per_publisher"])
    if sweep:
        dat = os.path.join(OUT, "fanout-latency.dat")
        with open(dat, "w") as f:
            f.write("# offered_deliveries_per_s p50_ms p99_ms p999_ms server_cores\n")
            for r in sweep:
                f.write(f"{r['rate_per_publisher'] * r['members']:.0f} {r['p50_us']/1000:.3f} "
                        f"{r['p99_us']/1000:.3f} {r['p999_us']/1000:.3f} {r['server_cores']:.3f}\n")
        png = os.path.join(OUT, "fanout-latency.png")
        script = f"""
set terminal png size 900,540
set output '{png}'
set title 'fanout (1 room x 1000 members), open loop, server on one core'
set xlabel 'offered deliveries per second'
set ylabel 'latency (ms)'
set logscale y
set grid
set key top left
set y2label 'server cores'
set y2range [0:1.2]
set y2tics
plot '{dat}' using 1:2 with linespoints title 'p50', \\
     '{dat}' using 1:3 with linespoints title 'p99', \\
     '{dat}' using 1:4 with linespoints title 'p99.9', \\
     '{dat}' using 1:5 axes x1y2 with linespoints dashtype 2 title 'server cores'
"""
        try:
            subprocess.run(["gnuplot"], input=script.encode(), check=True)
            print(f"\nplot: {png}")
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"\nplot: gnuplot failed ({e}); data in {dat}")


main()
