#!/usr/bin/env bash
# The ceiling beside our figure: redis-benchmark's GET latency on one connection with no
# pipelining, then the `redis` criterion bench (stratacache vs the raw client), all
# against the same redis-server. Uses REDIS_URL's host and port when set; otherwise
# starts a throwaway server on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
if [ -z "${REDIS_URL:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
  started=$port
  trap 'redis-cli -p "$started" shutdown nosave >/dev/null 2>&1 || true' EXIT
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port/"
fi
hostport=${REDIS_URL#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
host=${hostport%%:*}; port=${hostport##*:}

echo "==> redis-benchmark: GET, 1 client, no pipelining, 120-byte values (the ceiling)"
redis-benchmark -h "$host" -p "$port" -t get -n 100000 -c 1 -P 1 -d 120 --csv \
  | awk -F, 'NR>1 {gsub(/"/,""); printf "redis-benchmark GET: %s req/s, avg %.1f us/request\n", $2, 1e6/$2}'

echo "==> cargo bench --bench redis (same server)"
cargo bench -p stratacache-benches --bench redis 2>&1 | grep -E "^redis_get|time:"
