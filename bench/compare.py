#!/usr/bin/env python3
"""Prints make compare's table: medians per server and scenario, and the
ratio ours / each peer, with the targets of issue 19 marked met or not.
Usage: compare.py DIR ours PEER..."""
import json
import os
import statistics
import sys

# scenario: (field, what it is, better when, target ratio ours/peer or None)
FIGURES = [
    ("fanout", "deliveries_per_server_cpu_s", "deliveries per server CPU-second", "higher", 1.25),
    ("rooms", "deliveries_per_server_cpu_s", "deliveries per server CPU-second", "higher", 1.25),
    ("fixed", "server_cores", "server cores at 250,000 deliveries/s", "lower", 0.8),
    ("fixed", "p99_us", "p99 latency at 250,000 deliveries/s, us", "lower", 1.0),
    ("fixed100", "server_cores", "server cores at 100,000 deliveries/s", "lower", None),
    ("idle", "bytes_per_connection", "server bytes per idle connection", "lower", 0.75),
    ("storm", "handshakes_per_s", "handshakes per second in a storm", "higher", 1.0),
    ("deflate25", "wire_bytes_per_delivery", "wire bytes/delivery, 25 compressing", "lower", 1.0),
    ("deflate300", "wire_bytes_per_delivery", "wire bytes/delivery, 300 compressing", "lower", 1.0),
    ("deflate300", "server_cpu_us_per_delivery", "server CPU us/delivery, 300 compressing", "lower",
     0.6),
    ("plain300", "wire_bytes_per_delivery", "wire bytes/delivery, 300 plain", "lower", None),
    ("plain300", "server_cpu_us_per_delivery", "server CPU us/delivery, 300 plain", "lower", None),
    ("idledeflate", "bytes_per_connection", "server bytes per idle compressing conn", "lower",
     None),
]

# Issue 27's targets of chat-api against itself: (what, numerator, denominator, at most).
OWN = [
    ("wire bytes, 25 compressing / plain", ("deflate25", "wire_bytes_per_delivery"),
     ("plain25", "wire_bytes_per_delivery"), 0.45),
    ("CPU per delivery, 300 compressing / plain", ("deflate300", "server_cpu_us_per_delivery"),
     ("plain300", "server_cpu_us_per_delivery"), 1.15),
    ("bytes per idle connection, compressing / plain", ("idledeflate", "bytes_per_connection"),
     ("idle", "bytes_per_connection"), 1.15),
]


def value(r, field):
    """A run's figure; CPU per delivery is worked out from its parts."""
    if field == "server_cpu_us_per_delivery":
        d = r.get("deliveries", 0)
        return r["server_cpu_s"] * 1e6 / d if d else None
    return r.get(field)


def best_peer(med, peers, better):
    """The peer (not chat-api's writev run) with the best median."""
    got = [(med[p], p) for p in peers if p != "writev" and med.get(p)]
    if not got:
        return None
    return (max if better == "higher" else min)(got)[1]


def median_of(d, server, scenario, field):
    vals = [v for v in (value(r, field) for r in runs(d, server, scenario)) if v is not None]
    return statistics.median(vals) if vals else None


def runs(d, server, scenario):
    path = os.path.join(d, server, scenario + ".jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def main():
    d, ours, peers = sys.argv[1], sys.argv[2], sys.argv[3:]
    print(f"{'scenario':8} {'figure':42} {ours:>12} " +
          " ".join(f"{p:>12} {'ours/' + p:>9} {'target':>8}" for p in peers))
    losses = {s: [0, 0] for s in [ours] + peers}  # runs with loss, with duplicates/reordering
    seen = set()
    for scenario, field, what, better, target in FIGURES:
        med = {}
        for s in [ours] + peers:
            rs = runs(d, s, scenario)
            vals = [v for v in (value(r, field) for r in rs) if v is not None]
            med[s] = statistics.median(vals) if vals else None
            if (s, scenario) not in seen:
                seen.add((s, scenario))
                for r in rs:
                    losses[s][0] += bool(r.get("loss", 0))
                    losses[s][1] += bool(r.get("dup_or_reorder", 0))
        cells = f"{scenario:8} {what:42} " + (f"{med[ours]:12.6g}" if med[ours] else f"{'-':>12}")
        for p in peers:
            if med[ours] and med[p]:
                ratio = med[ours] / med[p]
                # Compression is judged against the best compressing peer
                # of the run (issue 27), the rest against uWebSockets.js (19).
                judged = p == (best_peer(med, peers, better) if scenario.startswith("deflate")
                               else "uws") and target is not None
                met = judged and (ratio >= target if better == "higher" else ratio <= target)
                mark = ("met" if met else "not met") if judged else ""
                sign = ">=" if better == "higher" else "<="
                cells += f" {med[p]:12.6g} {ratio:9.2f} {sign + str(target) if judged else '':>8} {mark}"
            else:
                cells += f" {'-':>12} {'-':>9} {'':>8}"
        print(cells)
    for what, (sa, fa), (sb, fb), most in OWN:
        a, b = median_of(d, ours, sa, fa), median_of(d, ours, sb, fb)
        if a and b:
            print(f"{ours}: {what}: {a / b:.2f} (target <= {most}: "
                  f"{'met' if a / b <= most else 'not met'})")
    for s, (lost, dup) in losses.items():
        print(f"{s}: runs with loss {lost}, with duplicates or reordering {dup}" +
              ("  (a server that falls behind a fixed rate shows it as loss)" if lost else ""))


if __name__ == "__main__":
    main()
