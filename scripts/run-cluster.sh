#!/bin/sh
# The docker-compose topology without Docker: redis-server and two pods on
# 8080 and 8081, from Debian packages. Ctrl-C stops them all (gracefully).
set -eu
cd "$(dirname "$0")/.."
REDIS_PORT=${REDIS_PORT:-6379}
pids=""
cleanup() {
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "run-cluster: using the Redis already on port $REDIS_PORT"
else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning &
    pids="$pids $!"
    i=0
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "run-cluster: redis-server did not start" >&2; exit 1; }
        sleep 0.1
    done
fi
for n in 1 2; do
    POD_ID=chat-$n PORT=$((8079 + n)) REDIS_URL="redis://127.0.0.1:$REDIS_PORT" build/chat-api &
    pids="$pids $!"
done
echo "run-cluster: pods chat-1 on :8080 and chat-2 on :8081 share Redis on :$REDIS_PORT"
echo "run-cluster: open http://localhost:8080/ and http://localhost:8081/ side by side"
wait
