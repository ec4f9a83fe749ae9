#!/usr/bin/env bash
# RESP side by side (issue 12), run by hand: the same redis-benchmark flags
# against our node and against redis-server, both durable, rounds alternating.
#   1. LIKE.TOGGLE on our node (AUTH with a token) vs INCR on redis-server
#      (appendonly yes, appendfsync always), -P 1 and -P 16, 50 clients,
#      keys spread over RB_KEYS names;
#   2. EXPECT.GET <warm character> GZIP on our node vs GET on redis-server of
#      a 17 KB value (the issue's goal) and of a value of the reply's size.
# Entries per fsync: ours from INFO persistence (wal_entries_appended /
# wal_fsyncs deltas), redis from `perf stat` of its fdatasync calls during a
# separate run (commands / fdatasyncs), when perf can count syscalls.
#
#   cargo build --release -p ops
#   bench/resp_node_compare.sh            # MAPLE=target/release/maple ROUNDS=3 N=100000 CORES=1
set -euo pipefail
MAPLE=${MAPLE:-target/release/maple}
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
CLIENTS=${CLIENTS:-50}
CORES=${CORES:-1}
RB_KEYS=${RB_KEYS:-1000}
DEPTHS=${DEPTHS:-"1 16"}
CHAR=${CHAR:-evan}
NODE_HTTP=${NODE_HTTP:-127.0.0.1:18080}
NODE_RESP_PORT=${NODE_RESP_PORT:-16380}
REDIS_PORT=${REDIS_PORT:-6390}
WORK=$(mktemp -d /tmp/resp-node-compare.XXXXXX)
mkdir -p "$WORK/r"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' --dir "$WORK/r" >"$WORK/redis.log" 2>&1 &
RPID=$!; PIDS+=("$RPID")
"$MAPLE" serve --cores "$CORES" --listen "$NODE_HTTP" --resp-listen "127.0.0.1:$NODE_RESP_PORT" --data-dir "$WORK/node" >"$WORK/node.log" 2>&1 &
NPID=$!; PIDS+=("$NPID")
for _ in $(seq 1 600); do
  if redis-cli -p "$REDIS_PORT" PING 2>/dev/null | grep -q PONG && curl -fs "http://$NODE_HTTP/health/ready" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
TOKEN=$("$MAPLE" bench token --user bench-resp)
ours() { redis-cli -p "$NODE_RESP_PORT" "$@"; }
info_field() { ours INFO persistence | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }

# rps of one redis-benchmark run (CSV: "test","rps",...).
rb() {
  local port=$1 depth=$2; shift 2
  redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$N" -P "$depth" --csv "$@" 2>/dev/null | awk -F'","' 'NR == 2 { print $2 }'
}

# The document and a redis value of the same size.
ours EXPECT.GET "$CHAR" >/dev/null
ours EXPECT.GET "$CHAR" GZIP >"$WORK/doc.gz"
SIZE=$(stat -c %s "$WORK/doc.gz")
head -c "$SIZE" /dev/urandom | redis-cli -p "$REDIS_PORT" -x SET same >/dev/null
head -c 17408 /dev/urandom | redis-cli -p "$REDIS_PORT" -x SET big17k >/dev/null
log "EXPECT.GET $CHAR GZIP: $SIZE bytes; redis GET same: $(redis-cli -p "$REDIS_PORT" STRLEN same) bytes, GET big17k: $(redis-cli -p "$REDIS_PORT" STRLEN big17k) bytes"

echo "round,depth,like_toggle_rps,incr_rps,ratio,our_entries_per_fsync"
for round in $(seq 1 "$ROUNDS"); do
  for depth in $DEPTHS; do
    f0=$(info_field wal_fsyncs); e0=$(info_field wal_entries_appended)
    if [ $((round % 2)) -eq 1 ]; then
      a=$(rb "$NODE_RESP_PORT" "$depth" -a "$TOKEN" -r "$RB_KEYS" LIKE.TOGGLE "char__rand_int__")
      b=$(rb "$REDIS_PORT" "$depth" -r "$RB_KEYS" INCR "counter:__rand_int__")
    else
      b=$(rb "$REDIS_PORT" "$depth" -r "$RB_KEYS" INCR "counter:__rand_int__")
      a=$(rb "$NODE_RESP_PORT" "$depth" -a "$TOKEN" -r "$RB_KEYS" LIKE.TOGGLE "char__rand_int__")
    fi
    f1=$(info_field wal_fsyncs); e1=$(info_field wal_entries_appended)
    echo "$round,$depth,$a,$b,$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }'),$(awk -v e=$((e1 - e0)) -v f=$((f1 - f0)) 'BEGIN { printf "%.1f", f ? e / f : 0 }')"
  done
done

echo "round,depth,expect_get_gzip_rps,redis_get_17k_rps,ratio_17k,redis_get_same_size_rps,ratio_same_size"
for round in $(seq 1 "$ROUNDS"); do
  for depth in $DEPTHS; do
    if [ $((round % 2)) -eq 1 ]; then
      a=$(rb "$NODE_RESP_PORT" "$depth" EXPECT.GET "$CHAR" GZIP)
      b=$(rb "$REDIS_PORT" "$depth" GET big17k)
      c=$(rb "$REDIS_PORT" "$depth" GET same)
    else
      c=$(rb "$REDIS_PORT" "$depth" GET same)
      b=$(rb "$REDIS_PORT" "$depth" GET big17k)
      a=$(rb "$NODE_RESP_PORT" "$depth" EXPECT.GET "$CHAR" GZIP)
    fi
    echo "$round,$depth,$a,$b,$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }'),$c,$(awk -v a="$a" -v c="$c" 'BEGIN { printf "%.3f", a / c }')"
  done
done

# redis' INCR per fdatasync (a separate run: perf counts its syscalls).
if command -v perf >/dev/null 2>&1; then
  echo "depth,redis_incr_per_fdatasync"
  for depth in $DEPTHS; do
    perf stat -e 'syscalls:sys_enter_fdatasync' -e 'syscalls:sys_enter_fsync' -p "$RPID" -x, -o "$WORK/perf.$depth" &
    PERF=$!
    sleep 0.5
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CLIENTS" -n "$N" -P "$depth" -q -r "$RB_KEYS" INCR "counter:__rand_int__" >/dev/null 2>&1
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
    syncs=$(awk -F, '/sys_enter_f(data)?sync/ { s += $1 } END { print s + 0 }' "$WORK/perf.$depth")
    echo "$depth,$(awk -v n="$N" -v s="$syncs" 'BEGIN { printf "%.1f", s ? n / s : 0 }')"
  done
fi
log "work dir $WORK (node.log, redis.log)"
