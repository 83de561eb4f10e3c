#!/usr/bin/env bash
# make bench: runs every scenario RUNS times (default 3) against a fresh
# server pinned to CPU 0 with WORKERS=1, the generator pinned to CPU 1, and
# prints a table of medians (bench/report.py). Raw results go to
# bench/results/*.jsonl, the summary to bench/results/summary.json, and the
# latency-against-load plot to bench/results/fanout-latency.png.
# ONLY="storm stats" runs just those scenarios (names as in bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
# ONLY runs write to a folder of their own, so summary.json never mixes runs.
if [ -n "${ONLY:-}" ]; then OUT=${OUT:-bench/results/only}; else OUT=${OUT:-bench/results}; fi
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl

pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_server() { # port [VAR=value ...]; sets SRV_PID
    local port=$1; shift
    env "$@" PORT="$port" BIND_ADDR=127.0.0.1 WORKERS=1 LOG_LEVEL=warn \
        taskset -c "$SERVER_CPU" "$BIN" &
    SRV_PID=$!
    pids+=("$SRV_PID")
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

gen() { taskset -c "$GEN_CPU" "$GEN" "$@"; }

one_server() { # scenario generator-args...
    local name=$1; shift
    want "$name" || return 0
    local port; port=$(free_port)
    start_server "$port"
    wait_http "$port" /healthz
    gen --scenario "$name" --port "$port" --server-pid "$SRV_PID" --duration "$DUR" "$@" >> "$OUT/$name.jsonl"
    stop_pid "$SRV_PID"
}

pods() { # scenario generator-args...
    local name=$1; shift
    want "$name" || return 0
    local rport p1 p2; rport=$(free_port); p1=$(free_port); p2=$(free_port)
    taskset -c "$SERVER_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save '' \
        --appendonly no --loglevel warning &
    local rpid=$!
    pids+=("$rpid")
    until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
    start_server "$p1" REDIS_URL="redis://127.0.0.1:$rport" POD_ID=bench-1; local s1=$SRV_PID
    start_server "$p2" REDIS_URL="redis://127.0.0.1:$rport" POD_ID=bench-2; local s2=$SRV_PID
    wait_http "$p1" /readyz
    wait_http "$p2" /readyz
    gen --scenario "$name" --port "$p1,$p2" --server-pid "$s1,$s2,$rpid" --duration "$DUR" "$@" \
        >> "$OUT/$name.jsonl"
    stop_pid "$s1"; stop_pid "$s2"; stop_pid "$rpid"
}

echo "bench: $(nproc) CPUs, server on CPU $SERVER_CPU, generator on CPU $GEN_CPU, $RUNS runs of ${DUR}s"
echo "bench: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
    echo "bench: run $run of $RUNS"
    one_server fanout  --rooms 1 --members 1000 --publishers 1 --window 256
    one_server rooms   --rooms 100 --members 10 --publishers 2 --window 32
    one_server fixed   --rooms 1 --members 1000 --publishers 1 --rate 500
    one_server slow    --rooms 1 --members 1000 --publishers 1 --window 256 --slow
    one_server connect --connect --concurrency 256
    one_server idle    --idle --rooms 150 --members 100 --sources 16
    # A reconnect storm: 10,000 clients at once, each sending its head as it
    # connects (stdin closed: the generator lets go as soon as all settled).
    one_server storm   --storm 10000 --rooms 100 --sources 8 --duration 60 </dev/null
    # 9,000 rooms and 200 stats requests/s: /healthz and upgrade latency.
    if want stats; then
        SERVER_CPU=$SERVER_CPU /usr/bin/python3 tests/e2e/statsload.py "$BIN" "$GEN" >> "$OUT/stats.jsonl"
    fi
    pods       pods    --rooms 1 --members 1000 --publishers 1 --rate 500
done
# Latency against offered load, for the plot: fanout, open loop.
for rate in 100 250 500 1000 2000 3000 4000; do
    one_server "sweep" --rooms 1 --members 1000 --publishers 1 --rate "$rate"
done
echo "bench: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 bench/report.py "$OUT"
