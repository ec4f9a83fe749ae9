#!/usr/bin/env bash
# Old (main before node2) vs new (node2) binaries, alternating, in one
# sitting: seed-v4, cold and likes against `maple serve --cores 2` on a fresh
# data dir each run, the load generator with 1 thread. Prints one line per
# run: binary, workload, req/s, p99, errors, and the node's CPU seconds per
# request (utime + stime of the node process over the measured run).
# Usage: bench/node2_compare.sh OLD_BIN NEW_BIN [ROUNDS] [DURATION]
set -euo pipefail
OLD=${1:?old maple binary}; NEW=${2:?new maple binary}; ROUNDS=${3:-3}; DUR=${4:-10s}
WORK=$(mktemp -d /tmp/node2-bench.XXXXXX)
SECRET=bench-secret
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
# Requests the node answered so far (its own counter).
served() { curl -s "http://$1/metrics" | awk '/^maple_http_requests_total/ {s += $NF} END {printf "%d", s}'; }
run_one() { # bin label workload
  local bin=$1 label=$2 wl=$3
  local dir="$WORK/data-$label-$wl" log="$WORK/$label-$wl.log" out="$WORK/out-$label-$wl"
  rm -rf "$dir" "$out"
  "$bin" serve --data-dir "$dir" --cores 2 --listen 127.0.0.1:0 --resp-listen off --jwt-secret "$SECRET" 2>"$log" &
  local pid=$!
  local addr=""
  for _ in $(seq 1 400); do addr=$(grep -o "listening on [0-9.:]*" "$log" | head -1 | awk '{print $3}' || true); [[ -n $addr ]] && break; sleep 0.05; done
  for _ in $(seq 1 400); do curl -sf "http://$addr/health/ready" >/dev/null && break; sleep 0.05; done
  local c0 n0; c0=$(cpu_of $pid); n0=$(served "$addr")
  "$bin" bench run "$wl" --target "http://$addr" --threads 1 --duration "$DUR" --jwt-secret "$SECRET" --no-goals --out "$out" >"$WORK/bench-$label-$wl.txt" 2>&1 || true
  local c1 n1; c1=$(cpu_of $pid); n1=$(served "$addr")
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
  local rep; rep=$(ls "$out"/*/report.json | head -1)
  local rps p99 errs
  rps=$(jq -r '.ok_per_s' "$rep"); p99=$(jq -r '.latency_us.p99 / 1000' "$rep"); errs=$(jq -r '.errors_total' "$rep")
  # CPU of the node per request it answered (warm-up included on both sides).
  local cpu_us; cpu_us=$(echo "($c1 - $c0) * 1000000 / ($n1 - $n0)" | bc -l)
  printf "%s %-8s ok/s=%9.1f p99_ms=%7.2f errors=%s cpu_us_per_request=%6.1f\n" "$label" "$wl" "$rps" "$p99" "$errs" "$cpu_us"
}
for r in $(seq 1 "$ROUNDS"); do
  for wl in seed-v4 cold likes; do
    if (( r % 2 == 1 )); then run_one "$OLD" old $wl; run_one "$NEW" new $wl; else run_one "$NEW" new $wl; run_one "$OLD" old $wl; fi
  done
done
echo "work dir: $WORK"
