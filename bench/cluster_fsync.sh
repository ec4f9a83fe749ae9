#!/usr/bin/env bash
# fsyncs/s per node at 1 vs 16 partitions per node (issue 11): a 3-node
# RF=3 cluster of `maple serve --cores 1` (every node hosts every
# partition, all on its one core and its one log), created with
# `--partitions 1` and with `--partitions 16`, alternating, on fresh data
# dirs; the likes workload through all three nodes. Prints one line per run:
# partitions, durable likes/s, p99, errors, and per node the fdatasyncs/s
# and the entries per fdatasync over the measured run (the node's own
# counters, /metrics before and after).
# Usage: bench/cluster_fsync.sh MAPLE_BIN [ROUNDS] [DURATION]
set -euo pipefail
BIN=${1:?maple binary}; ROUNDS=${2:-2}; DUR=${3:-10s}
WORK=$(mktemp -d /tmp/cluster-fsync.XXXXXX)
SECRET=bench-secret
HTTP=18600; PEER=18700
# A node's counter (summed over its label sets).
counter() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $NF} END {printf "%.0f", s}'; }
# Entries the node's log made durable so far (its mean per fdatasync x its fdatasyncs).
entries() { echo "$(counter "$1" maple_wal_entries_per_fsync) * $(counter "$1" maple_wal_fsyncs_total)" | bc -l; }
run_one() { # partitions
  local parts=$1 peers="" pids=()
  for i in 1 2 3; do peers+="${peers:+,}$i=127.0.0.1:$((PEER + i))"; done
  for i in 1 2 3; do
    rm -rf "$WORK/n$i"
    "$BIN" serve --data-dir "$WORK/n$i" --node-id $i --peers "$peers" --partitions "$parts" --cores 1 \
      --listen 127.0.0.1:$((HTTP + i)) --resp-listen off --jwt-secret "$SECRET" 2>"$WORK/p$parts-n$i.log" &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$((HTTP + i))/health/ready" >/dev/null && break; sleep 0.1; done
  done
  # Measure once every partition is led by its preferred replica (listed
  # first in its replicas; the leader balancing moves leaderships during
  # the first seconds).
  for _ in $(seq 1 600); do
    curl -s "http://127.0.0.1:$((HTTP + 1))/admin/cluster" | jq -e '[.partitions[] | .leader == .replicas[0]] | all' >/dev/null && break
    sleep 0.1
  done
  local f0=() e0=()
  for i in 1 2 3; do f0[$i]=$(counter $((HTTP + i)) maple_wal_fsyncs_total); e0[$i]=$(entries $((HTTP + i))); done
  local start; start=$(date +%s.%N)
  "$BIN" bench run likes --targets "http://127.0.0.1:$((HTTP + 1)),http://127.0.0.1:$((HTTP + 2)),http://127.0.0.1:$((HTTP + 3))" \
    --threads 1 --duration "$DUR" --warmup 0s --jwt-secret "$SECRET" --no-goals --out "$WORK/out-$parts" >"$WORK/bench-$parts.txt" 2>&1 || true
  local secs; secs=$(echo "$(date +%s.%N) - $start" | bc -l)
  local line=""
  for i in 1 2 3; do
    local f1 e1; f1=$(counter $((HTTP + i)) maple_wal_fsyncs_total); e1=$(entries $((HTTP + i)))
    line+=$(printf " n%d: fsyncs/s=%6.0f entries/fsync=%5.1f" $i "$(echo "(${f1} - ${f0[$i]}) / $secs" | bc -l)" \
      "$(echo "(${e1} - ${e0[$i]}) / (${f1} - ${f0[$i]} + 0.0001)" | bc -l)")
  done
  for p in "${pids[@]}"; do kill -TERM "$p"; done
  for p in "${pids[@]}"; do wait "$p" || true; done
  local rep; rep=$(ls "$WORK/out-$parts"/*/report.json | head -1)
  printf "partitions=%2d ok/s=%8.1f p99_ms=%7.2f errors=%s%s\n" "$parts" "$(jq -r '.ok_per_s' "$rep")" \
    "$(jq -r '.latency_us.p99 / 1000' "$rep")" "$(jq -r '.errors_total' "$rep")" "$line"
  rm -rf "$WORK/out-$parts"
}
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 == 1 )); then run_one 1; run_one 16; else run_one 16; run_one 1; fi
done
echo "work dir: $WORK"
