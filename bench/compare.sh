#!/usr/bin/env bash
# make compare: chat-api against uWebSockets (bench/peers/uws.js, the C++
# core through uWebSockets.js, with its own pub/sub), Bun (bench/peers/bun.js:
# Bun.serve, uWebSockets inside, run by the bun binary of the npm package
# @oven/bun-linux-x64) and Node's ws (bench/peers/ws.js), on the same scenarios with the same generator, server
# by server within each run, so the machine's mood touches all alike. Each
# server gets CPU 0 (chat-api with WORKERS=1), the generator CPU 1.
# RUNS (default 3), DUR (seconds per scenario, default 5), ONLY="fanout idle"
# and PEERS="uws" narrow it. Results: bench/results/compare/<server>/*.jsonl,
# the table from bench/compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
OUT=${OUT:-bench/results/compare}
PEERS=${PEERS:-writev uws bun ws}
BUN=bench/peers/node_modules/@oven/bun-linux-x64/bin/bun

for s in ours $PEERS; do mkdir -p "$OUT/$s"; rm -f "$OUT/$s"/*.jsonl; done

pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

start() { # server port [deflate]; sets pid. deflate 1: the peers answer permessage-deflate
    # offers (chat-api always does, with COMPRESSION=auto; without --deflate no client offers)
    local z=${3:-}
    case $1 in
    ours|writev)
          env PORT="$2" BIND_ADDR=127.0.0.1 WORKERS=1 LOG_LEVEL=warn \
              IO_URING="$([ "$1" = writev ] && echo off || echo auto)" \
              taskset -c "$SERVER_CPU" "$BIN" & ;;
    uws|ws) env PORT="$2" POD_ID="$1-1" DEFLATE="$z" taskset -c "$SERVER_CPU" node "bench/peers/$1.js" & ;;
    bun) env PORT="$2" POD_ID="$1-1" DEFLATE="$z" taskset -c "$SERVER_CPU" "$BUN" bench/peers/bun.js & ;;
    esac
    pid=$!
    wait_http "$2" /healthz
}

scenario() { # name generator-args... (--deflate among them: the peers compress too)
    local name=$1; shift
    want "$name" || return 0
    local z=""
    case " $* " in *" --deflate "*) z=1 ;; esac
    for s in ours $PEERS; do
        local port; port=$(free_port)
        start "$s" "$port" "$z"
        taskset -c "$GEN_CPU" "$GEN" --scenario "$name" --port "$port" --server-pid "$pid" \
            --duration "$DUR" "$@" >> "$OUT/$s/$name.jsonl" </dev/null
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    done
}

echo "compare: ours ($BIN) against $PEERS; $RUNS runs of ${DUR}s; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
    echo "compare: run $run of $RUNS"
    scenario fanout --rooms 1 --members 1000 --publishers 1 --window 256
    scenario rooms  --rooms 100 --members 10 --publishers 2 --window 32
    scenario fixed  --rooms 1 --members 1000 --publishers 1 --rate 250
    # Below where any server saturates (no target: what sparse traffic costs).
    scenario fixed100 --rooms 1 --members 1000 --publishers 1 --rate 100
    scenario idle   --idle --rooms 150 --members 100 --sources 16
    scenario storm  --storm 10000 --rooms 100 --sources 8 --duration 60
    # Compression (issue 27): chat-like text, every member compressing; the
    # same traffic plain beside it for chat-api's own ratios. The 300-member
    # pair runs at one fixed rate (150,000 deliveries/s), below what the
    # generator can inflate: closed loop, the inflating generator would set a
    # far lower pace for the compressed run than for the plain one, and a
    # server's CPU per delivery depends on its pace (batching).
    scenario deflate25  --rooms 8 --members 25 --publishers 1 --window 16 --text --deflate
    scenario plain25    --rooms 8 --members 25 --publishers 1 --window 16 --text
    scenario deflate300 --rooms 1 --members 300 --publishers 1 --rate 500 --text --deflate
    scenario plain300   --rooms 1 --members 300 --publishers 1 --rate 500 --text
    scenario idledeflate --idle --rooms 150 --members 100 --sources 16 --deflate
done
echo "compare: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 bench/compare.py "$OUT" ours $PEERS
