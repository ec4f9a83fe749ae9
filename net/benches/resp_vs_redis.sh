#!/usr/bin/env bash
# Side by side, one sitting: redis-benchmark against net's example RESP
# server and against a redis-server on this machine, same tool and flags.
# A tool, not a test. Needs redis-server and redis-benchmark (apt-get
# install -y redis-server redis-tools).
#   bash net/benches/resp_vs_redis.sh            # CORES=1 N=200000 NP=2000000 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/../.."
CORES=${CORES:-1}; N=${N:-200000}; NP=${NP:-2000000}; ROUNDS=${ROUNDS:-2}
OURS_PORT=${OURS_PORT:-16390}; REDIS_PORT=${REDIS_PORT:-16391}
cargo build -q --release -p net --example resp_server
target/release/examples/resp_server "127.0.0.1:$OURS_PORT" "$CORES" 2>/dev/null &
OURS=$!
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
REDIS=$!
trap 'kill $OURS $REDIS 2>/dev/null; wait $OURS $REDIS 2>/dev/null || true' EXIT
sleep 1
run() { # port pipeline n -> "test rps" lines
  redis-benchmark -h 127.0.0.1 -p "$1" -c 50 -P "$2" -n "$3" -t ping,incr -q 2>/dev/null | tr '\r' '\n' |
    awk -F'[: ]+' '/requests per second/ {print $1, $2}'
}
printf "%-12s %-3s %12s %12s %7s\n" test P ours redis ratio
for p in 1 16; do
  n=$N; [ "$p" = 16 ] && n=$NP
  for r in $(seq "$ROUNDS"); do
    paste <(run "$OURS_PORT" "$p" "$n") <(run "$REDIS_PORT" "$p" "$n") |
      awk -v p="$p" '{printf "%-12s %-3s %12.0f %12.0f %7.2f\n", $1, p, $2, $4, $2/$4}'
  done
done
