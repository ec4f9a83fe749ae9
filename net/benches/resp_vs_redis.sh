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
RESULTS=$(mktemp)
for p in 1 16; do
  n=$N; [ "$p" = 16 ] && n=$NP
  for r in $(seq "$ROUNDS"); do
    # One after the other (never both at once), alternating which goes first.
    if [ $((r % 2)) = 1 ]; then ours=$(run "$OURS_PORT" "$p" "$n"); theirs=$(run "$REDIS_PORT" "$p" "$n")
    else theirs=$(run "$REDIS_PORT" "$p" "$n"); ours=$(run "$OURS_PORT" "$p" "$n"); fi
    paste <(echo "$ours") <(echo "$theirs") |
      awk -v p="$p" '{printf "%-12s %-3s %12.0f %12.0f %7.2f\n", $1, p, $2, $4, $2/$4}' | tee -a "$RESULTS"
  done
done
echo "median over $ROUNDS rounds (ours, redis, ratio of the medians):"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, p, ours, redis, _ = line.split()
    rows.setdefault((t, int(p)), []).append((float(ours), float(redis)))
for (t, p), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    o = statistics.median(x for x, _ in v); r = statistics.median(y for _, y in v)
    print(f"{t:<12} {p:<3} {o:12.0f} {r:12.0f} {o / r:7.2f}")
PY
rm -f "$RESULTS"
