# bench/lib.sh: what bench/run.sh and bench/compare.sh share. Sourced, from
# the repository's root.

RUNS=${RUNS:-3}
DUR=${DUR:-5}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
BIN=${BIN:-build/chat-api}  # BIN=... measures another build
GEN=build/chat-bench

# 15000 idle connections (and the 10,000 of the storm) need more descriptors
# than the default; 20000 is this machine's hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # port path
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$1$2" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: server on :$1 did not answer $2" >&2
    exit 1
}

# Runs only the scenarios named in ONLY (all when it is empty).
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
