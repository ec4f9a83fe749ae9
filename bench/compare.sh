#!/usr/bin/env bash
# Side by side on one machine, every pair back to back in each round, the
# order of each round the reverse of the one before (drift cancels):
#   1. wrk vs our generator on the same endpoint (nginx static gzip, and the
#      node): same request bytes (one character), same connections, one
#      client thread each, pinned to the same core -> must agree within 10 %
#   2. our node's seed-v4 vs nginx serving the same gzip bytes as a static file
#   3. nginx answering the like POSTs with a fixed JSON vs our durable likes
#   4. our durable likes vs the same node built the same, `--wal-sync off`
#   5. redis-server (appendonly yes, appendfsync always) INCR via
#      redis-benchmark vs our durable likes; raw fdatasync/s of this disk
#   6. RESP, same tool and flags on both sides (redis-benchmark, 50 clients,
#      -P 1 and -P 16): LIKE.TOGGLE on our node vs INCR on that redis-server
#      (both durable), and EXPECT.GET <warm character> GZIP vs GET of a value
#      of the same bytes on redis-server. Skipped, with a note in the
#      summary, when the node does not answer RESP on --resp-port.
# then once: cold, and overload (3x the capacity measured in the same run).
#
# Called by `maple bench compare` (which sets the variables below) or by hand:
#   MAPLE_BIN=target/release/maple bash bench/compare.sh
# Every measurement goes to $OUT/runs.tsv (round, key, value); the summary
# (medians, per-round ratios, goals met/missed) is computed from it by
# `maple bench summarize $OUT` into $OUT/summary.md and summary.json.
set -euo pipefail

MAPLE_BIN=${MAPLE_BIN:-maple}
# How to call our generator: `maple bench` or the standalone `maple-bench`.
if [ -z "${BENCH_CMD:-}" ]; then
  case "$(basename "$MAPLE_BIN")" in maple-bench*) BENCH_CMD="$MAPLE_BIN" ;; *) BENCH_CMD="$MAPLE_BIN bench" ;; esac
fi
SERVE_BIN=${SERVE_BIN:-}
if [ -z "$SERVE_BIN" ] && [ "$(basename "$MAPLE_BIN")" = maple ]; then SERVE_BIN=$MAPLE_BIN; fi
TARGET=${TARGET:-}
DURATION_S=${DURATION_S:-8}
ROUNDS=${ROUNDS:-7}
OUT=${OUT:-results/compare}
CONNS=${CONNS:-100}          # seed-v4 connections (the original's wrk test)
LIKE_CONNS=${LIKE_CONNS:-64} # likes connections / redis clients
SKIP_INSTALL=${SKIP_INSTALL:-0}
WITHOUT_NODE=${WITHOUT_NODE:-0}
SKIP_ONEOFF=${SKIP_ONEOFF:-0}
PROFILE=${PROFILE:-1}         # perf profiles of the node under seed-v4 and likes (one-off runs)
PIN=${PIN:-1}
# Niceness of every server and client we start (all the same, so no side
# is favoured): negative = ahead of other processes (builds) on a shared
# machine; needs root, else left at 0.
NICE=${NICE:--10}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NGINX_PORT=${NGINX_PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
NODE_PORT=${NODE_PORT:-18181}
NOSYNC_PORT=${NOSYNC_PORT:-18182}
RESP_PORT=${RESP_PORT:-6380}          # the node's RESP listener (maple serve --resp-listen)
RB_CLIENTS=${RB_CLIENTS:-50}          # redis-benchmark clients of the RESP side by side
RB_DEPTHS=${RB_DEPTHS:-"1 16"}        # redis-benchmark -P depths of the RESP side by side
RB_KEYS=${RB_KEYS:-1000}              # -r: characters / counters the RESP writes spread over
# The repository's fixtures (for the no-node fallback below), relative to the cwd.
SHARED=${MAPLE_SHARED_DATA:-fixtures/maple}
NGINX_URL="http://127.0.0.1:${NGINX_PORT}"
ADEL="%EC%95%84%EB%8D%B8"   # 아델
SEED_PATH="/api/v4/characters/$ADEL/expectation"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK="$OUT/work"
rm -rf "$WORK" "$OUT/runs"
mkdir -p "$WORK/www" "$WORK/redis" "$WORK/tmp" "$OUT/runs"
TSV="$OUT/runs.tsv"
: > "$TSV"
CMDS="$WORK/commands.raw"
: > "$CMDS"
log() { echo "compare: $*" >&2; }
[ -d "$SHARED" ] && SHARED=$(cd "$SHARED" && pwd)

# --- tools -----------------------------------------------------------------
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null || need+=(redis-tools)
[ -x /usr/bin/time ] || need+=(time)
if [ "$PIN" = 1 ] && ! command -v taskset >/dev/null; then need+=(util-linux); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$SKIP_INSTALL" = 1 ]; then log "missing: ${need[*]} (and --skip-install given)"; exit 1; fi
  log "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$PIN" = 1 ]; then SRV=(taskset -c "$SERVER_CPU"); CLI=(taskset -c "$CLIENT_CPU"); else SRV=(); CLI=(); fi
if [ "$NICE" != 0 ] && { [ "$NICE" -ge 0 ] || [ "$(id -u)" = 0 ]; }; then
  SRV=(nice -n "$NICE" "${SRV[@]}"); CLI=(nice -n "$NICE" "${CLI[@]}")
else
  NICE=0
fi
CLK_TCK=$(getconf CLK_TCK)

# --- processes we start (and stop on exit) -----------------------------------
PIDS=()
cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_ready() { # URL -> 0 when /health/ready answers 200 within 60 s
  for _ in $(seq 1 600); do curl -sf -o /dev/null "$1/health/ready" && return 0; sleep 0.1; done
  return 1
}
pid_of_port() { ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

NODE_PID="" NOSYNC_PID="" NOSYNC_URL="" NODE_DATA="$WORK" NODE_DESC="$TARGET (started elsewhere: not pinned or reniced here)"
if [ "$WITHOUT_NODE" = 1 ]; then NODE_DESC="none (--without-node)"; fi
if [ "$WITHOUT_NODE" != 1 ]; then
  [ -n "$SERVE_BIN" ] || [ -n "$TARGET" ] || { log "no node: pass --target or a maple binary (--serve-bin)"; exit 1; }
  SYNC_FLAG=()
  HAVE_WAL_SYNC=0
  if [ -n "$SERVE_BIN" ] && "$SERVE_BIN" serve --help 2>/dev/null | grep -q -- '--wal-sync'; then HAVE_WAL_SYNC=1; SYNC_FLAG=(--wal-sync fsync); fi
  # RESP listener: the durable node on RESP_PORT, the fsync-off node none
  # (both would take the default port otherwise).
  RESP_FLAG=() NOSYNC_RESP_FLAG=()
  if [ -n "$SERVE_BIN" ] && "$SERVE_BIN" serve --help 2>/dev/null | grep -q -- '--resp-listen'; then
    RESP_FLAG=(--resp-listen "127.0.0.1:$RESP_PORT"); NOSYNC_RESP_FLAG=(--resp-listen off)
  fi
  start_node() { # NAME PORT extra flags... -> pid
    local name=$1 port=$2; shift 2
    local cmd=("$SERVE_BIN" serve --listen "127.0.0.1:$port" --cores 1 --data-dir "$WORK/$name")
    [ -d "$SHARED" ] && cmd+=(--sim-data-dir "$SHARED")
    cmd+=("$@")
    echo "${SRV[*]} ${cmd[*]}" >> "$CMDS"
    "${SRV[@]}" "${cmd[@]}" > "$WORK/$name.log" 2>&1 &
    echo $!
  }
  if [ -z "$TARGET" ]; then
    NODE_PID=$(start_node node-durable "$NODE_PORT" "${SYNC_FLAG[@]}" "${RESP_FLAG[@]}"); PIDS+=("$NODE_PID")
    TARGET="http://127.0.0.1:$NODE_PORT"
    NODE_DATA="$WORK/node-durable"
    NODE_DESC="\`maple serve --cores 1\` started here ($SERVE_BIN)"
  else
    NODE_PID=$(pid_of_port "${TARGET##*:}" || true)
    [ -n "$NODE_PID" ] || log "could not find the pid behind $TARGET: its CPU counts as 'other' in the agreement table"
  fi
  if [ "$HAVE_WAL_SYNC" = 1 ]; then
    NOSYNC_PID=$(start_node node-nosync "$NOSYNC_PORT" --wal-sync off "${NOSYNC_RESP_FLAG[@]}"); PIDS+=("$NOSYNC_PID")
    NOSYNC_URL="http://127.0.0.1:$NOSYNC_PORT"
  else
    log "the node has no --wal-sync flag: the fsync-off row is not measured"
  fi
  wait_ready "$TARGET" || { log "node at $TARGET not ready"; tail -5 "$WORK"/node-*.log >&2 || true; exit 1; }
  [ -z "$NOSYNC_URL" ] || wait_ready "$NOSYNC_URL" || { log "fsync-off node not ready"; tail -5 "$WORK/node-nosync.log" >&2; exit 1; }
  # Warm both nodes' caches for the seed characters.
  for u in "$TARGET" $NOSYNC_URL; do
    for n in "$ADEL" "%EA%B0%95%EC%9D%80%ED%98%B8" "%EC%A7%84%EA%B2%A9%EC%BA%90%EB%84%8C"; do
      curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$u/api/v4/characters/$n/expectation" || true
    done
  done
fi

# --- the bytes nginx serves: the node's own gzip response if it is up ------
if [ "$WITHOUT_NODE" != 1 ] && curl -sf -H 'Accept-Encoding: gzip' -o "$WORK/www/expectation.gz" "${TARGET}${SEED_PATH}"; then
  log "nginx serves the node's gzip response ($(stat -c %s "$WORK/www/expectation.gz") bytes)"
elif [ -f "$SHARED/derived/v4_reference_evan.json" ]; then
  gzip -9 -c "$SHARED/derived/v4_reference_evan.json" > "$WORK/www/expectation.gz"
  log "node not reachable: nginx serves gzip of v4_reference_evan.json ($(stat -c %s "$WORK/www/expectation.gz") bytes)"
else
  printf '{"note":"no node, no fixture"}' | gzip -c > "$WORK/www/expectation.gz"
fi

# --- the node's RESP side (issue 12): is it there? ---------------------------
# RESP_LIKES / RESP_GET = 1 when the node answers LIKE.TOGGLE / EXPECT.GET
# on RESP_PORT; otherwise their rows are skipped and RESP_NOTE says why.
# The node's host (the RESP port is --resp-port on the same host).
RESP_HOST=127.0.0.1
[ -z "$TARGET" ] || RESP_HOST=$(echo "$TARGET" | sed -E 's#^[a-z]+://##; s#[:/].*$##')
RESP_TOKEN_GIVEN=${RESP_TOKEN:-}
RESP_LIKES=0 RESP_GET=0 RESP_NOTE="" RESP_TOKEN=""
# redis-cli exits 0 on an error reply: tell one by its text.
is_resp_error() { head -1 <<<"$1" | grep -qE '^(\(error\) )?[A-Z][A-Z_-]+ ' || grep -qE 'AUTH failed|Could not connect' <<<"$1"; }
if [ "$WITHOUT_NODE" = 1 ]; then
  RESP_NOTE="not measured (--without-node)"
else
  # The AUTH token (env RESP_TOKEN, else minted with MAPLE_JWT_SECRET or the dev secret).
  RESP_TOKEN=${RESP_TOKEN_GIVEN:-$($BENCH_CMD token --user bench-resp)}
  rcli() { timeout 5 redis-cli -h "$RESP_HOST" -p "$RESP_PORT" "$@" 2>&1 || true; }
  pong=$(rcli PING)
  # A node that wants AUTH first still speaks RESP.
  if [ "$pong" != PONG ] && [ "${pong#NOAUTH}" = "$pong" ]; then
    RESP_NOTE="skipped: nothing answers RESP on $RESP_HOST:$RESP_PORT (PING: ${pong:-no answer}); start the node with --resp-listen, or pass --resp-port"
  else
    like=$(rcli --no-auth-warning -a "$RESP_TOKEN" LIKE.TOGGLE char000000000000)
    if is_resp_error "$like"; then
      RESP_NOTE="LIKE.TOGGLE rows skipped: the node on $RESP_HOST:$RESP_PORT answered \`$(head -1 <<<"$like" | cut -c1-120)\`"
    else
      rcli --no-auth-warning -a "$RESP_TOKEN" LIKE.TOGGLE char000000000000 > /dev/null   # toggle back
      RESP_LIKES=1
    fi
    got=$(rcli --no-auth-warning -a "$RESP_TOKEN" EXPECT.GET 아델 GZIP | head -c 200 | tr -d '\0')
    if is_resp_error "$got" || [ -z "$got" ]; then
      RESP_NOTE="${RESP_NOTE:+$RESP_NOTE; }EXPECT.GET rows skipped: the node answered \`$(head -1 <<<"$got" | cut -c1-120)\`"
    else
      RESP_GET=1
    fi
  fi
fi
[ -z "$RESP_NOTE" ] || log "RESP side by side: $RESP_NOTE"
printf '%s\n' "$RESP_NOTE" > "$OUT/resp_note.txt"

cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path $WORK/tmp;
  proxy_temp_path $WORK/tmp;
  fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp;
  scgi_temp_path $WORK/tmp;
  server {
    listen 127.0.0.1:${NGINX_PORT};
    location ~ ^/api/v4/characters/[^/]+/expectation\$ {
      root $WORK/www;
      default_type application/json;
      add_header Content-Encoding gzip;
      try_files /expectation.gz =404;
    }
    location ~ ^/api/v2/characters/[^/]+/like\$ {
      default_type application/json;
      return 200 '{"liked":true,"likeCount":1}';
    }
  }
}
EOF
"${SRV[@]}" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx-error.log"
"${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync always \
  --save '' --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
sleep 0.5
NGINX_PIDS="$(cat "$WORK/nginx.pid") $(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')"
REDIS_PID=$(cat "$WORK/redis.pid")
# The value redis GETs in the RESP side by side: the very bytes the node
# serves for EXPECT.GET 아델 GZIP (its gzip response over HTTP, as nginx serves).
redis-cli -p "$REDIS_PORT" -x SET warm < "$WORK/www/expectation.gz" > /dev/null

# The original's wrk script (load-test/wrk-v4-expectation.lua): one
# character per thread, request() and response() in Lua for every request.
cat > "$WORK/seed-v4-original.lua" <<'EOF'
local igns = { "%EC%95%84%EB%8D%B8", "%EA%B0%95%EC%9D%80%ED%98%B8", "%EC%A7%84%EA%B2%A9%EC%BA%90%EB%84%8C" }
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  errors = 0
  current_ign = igns[(wrk.thread:get("id") % #igns) + 1]
end
function request()
  return wrk.format("GET", "/api/v4/characters/" .. current_ign .. "/expectation",
    { ["Accept"] = "application/json", ["Accept-Encoding"] = "gzip" })
end
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
EOF
# The same request as a static script: wrk builds it once and runs no Lua
# per request. With -t1 the original script also sends only its first
# character (아델), so this is the same request stream, minus the Lua.
# Our side sends the same bytes with `--names 아델`.
cat > "$WORK/seed-v4-static.lua" <<EOF
wrk.method = "GET"
wrk.path = "$SEED_PATH"
wrk.headers["Accept"] = "application/json"
wrk.headers["Accept-Encoding"] = "gzip"
EOF

# --- measuring ---------------------------------------------------------------
record() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-n/a}" >> "$TSV"; }
# First number after "KEY": in a pretty JSON file; empty when absent.
json_num() { { grep -m1 "\"$2\":" "$1" 2>/dev/null || true; } | sed -E 's/.*: *([0-9.eE+-]+).*/\1/'; }
# Busy jiffies of the whole machine: user nice system steal. irq and
# softirq are left out: loopback TCP of our own runs is partly accounted
# there, not to the processes, and would show up as "other".
cpu_total() { awk '/^cpu / {print $2+$3+$4+$9}' /proc/stat; }
pid_cpu() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }

# measure ROUND RUN "SERVER PIDS" cmd... : runs cmd on the client core and
# records its wall time, the client's CPU, the server's CPU and everything
# else's CPU (other processes on the shared machine) over the run.
measure() {
  local round=$1 run=$2 spids=$3; shift 3
  local t0 s0 t1 s1 rc=0
  echo "${CLI[*]} $*" >> "$CMDS"
  t0=$(cpu_total); s0=$(pid_cpu $spids)
  "${CLI[@]}" /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" "$@" > "$OUT/runs/$run-$round.txt" 2>&1 || rc=$?
  t1=$(cpu_total); s1=$(pid_cpu $spids)
  local wall ucpu scpu
  read -r wall ucpu scpu < <(tail -1 "$WORK/time.txt")
  local client server other
  client=$(awk -v u="$ucpu" -v s="$scpu" 'BEGIN {print u + s}')
  server=$(awk -v a="$s0" -v b="$s1" -v hz="$CLK_TCK" 'BEGIN {print (b - a) / hz}')
  other=$(awk -v a="$t0" -v b="$t1" -v s="$server" -v c="$client" -v hz="$CLK_TCK" 'BEGIN {o = (b - a) / hz - s - c; print (o < 0 ? 0 : o)}')
  record "$round" "$run.wall_s" "$wall"
  record "$round" "$run.client_cpu_s" "$client"
  [ -z "${spids// /}" ] || record "$round" "$run.server_cpu_s" "$server"
  [ -z "${spids// /}" ] || record "$round" "$run.other_cpu_s" "$other"
  [ "$rc" = 0 ] || { log "$run (round $round) exited $rc: see $OUT/runs/$run-$round.txt"; tail -3 "$OUT/runs/$run-$round.txt" >&2; }
  return 0
}

# ours ROUND RUN URL "SERVER PIDS" WORKLOAD [flags]
ours() {
  local round=$1 run=$2 url=$3 spids=$4 workload=$5; shift 5
  measure "$round" "$run" "$spids" $BENCH_CMD run "$workload" --target "$url" --threads 1 --duration "${DURATION_S}s" \
    --warmup 2s --out "$OUT/runs" --name "$run-$round" "$@"
  local j="$OUT/runs/$run-$round/report.json"
  record "$round" "$run.rps" "$(json_num "$j" ok_per_s)"
  record "$round" "$run.p99_us" "$(json_num "$j" p99)"
  record "$round" "$run.errors" "$(json_num "$j" errors_total)"
  record "$round" "$run.shed" "$(json_num "$j" shed)"
  local per; per=$(json_num "$j" toggles_per_fsync)
  [ -z "$per" ] || record "$round" "$run.per_fsync" "$per"
  head -1 "$OUT/runs/$run-$round.txt" | grep -q '^OK' || log "$run round $round: $(head -1 "$OUT/runs/$run-$round.txt")"
}

# wrk_run ROUND RUN URL "SERVER PIDS" SCRIPT
wrk_run() {
  local round=$1 run=$2 url=$3 spids=$4 script=$5
  measure "$round" "$run" "$spids" wrk -t1 -c"$CONNS" -d"${DURATION_S}s" --latency -s "$script" "$url"
  local f="$OUT/runs/$run-$round.txt" non2xx sockerr
  record "$round" "$run.rps" "$(awk '/^Requests\/sec:/ {print $2}' "$f")"
  record "$round" "$run.p99_us" "$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}' "$f")"
  non2xx=$(awk '/Non-2xx/ {print $5}' "$f")
  sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  record "$round" "$run.errors" "$(( ${non2xx:-0} + ${sockerr:-0} ))"
  # A wrk run whose responses failed measured something else: say so loudly.
  [ -z "$non2xx" ] || log "WARNING: wrk $run round $round got $non2xx non-2xx/3xx responses (see $f)"
}

record 0 meta.resp_likes "$RESP_LIKES"
record 0 meta.resp_get "$RESP_GET"
record 0 meta.get_value_bytes "$(stat -c %s "$WORK/www/expectation.gz")"

# rb_run ROUND RUN HOST PORT "SERVER PIDS" DEPTH [redis-benchmark args and command...]:
# redis-benchmark, RB_CLIENTS clients, -P DEPTH. It has no duration flag, so
# each run asks for as many requests as the previous one of RUN did in
# DURATION_S. redis-benchmark 7 stops at the first error reply ("Error from
# server"): such a run gets no rate and counts one error.
declare -A RB_N
rb_run() {
  local round=$1 run=$2 host=$3 port=$4 spids=$5 depth=$6; shift 6
  local f="$OUT/runs/$run-$round.txt" rps
  if [ -z "${RB_N[$run]:-}" ]; then
    # First run of this series: an untimed probe sizes -n to about DURATION_S.
    rps=$("${CLI[@]}" redis-benchmark -h "$host" -p "$port" -c "$RB_CLIENTS" -n $(( 20000 * depth )) -P "$depth" -q "$@" 2>&1 \
      | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1 || true)
    RB_N[$run]=$(awk -v r="${rps:-0}" -v d="$DURATION_S" 'BEGIN {n = int(r * d); print (n < 5000 ? 5000 : n)}')
  fi
  local n=${RB_N[$run]}
  measure "$round" "$run" "$spids" redis-benchmark -h "$host" -p "$port" -c "$RB_CLIENTS" -n "$n" -P "$depth" -q "$@"
  rps=$(tr '\r' '\n' < "$f" | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  if grep -q 'Error from server' "$f"; then
    record "$round" "$run.errors" 1
    log "$run round $round: $(grep -m1 'Error from server' "$f" | cut -c1-160)"
    rps=""
  else
    record "$round" "$run.errors" 0
  fi
  record "$round" "$run.rps" "$rps"
  [ -z "$rps" ] || RB_N[$run]=$(awk -v r="$rps" -v d="$DURATION_S" 'BEGIN {n = int(r * d); print (n < 5000 ? 5000 : n)}')
}

# node_rb_like ROUND DEPTH: LIKE.TOGGLE on the node, with its toggles per
# fdatasync from /metrics around the run.
node_rb_like() {
  local round=$1 depth=$2 run="node_resp_like_p$2" before after
  before=$($BENCH_CMD write-counters --target "$TARGET" 2>/dev/null || true)
  rb_run "$round" "$run" "$RESP_HOST" "$RESP_PORT" "$NODE_PID" "$depth" -a "$RESP_TOKEN" -r "$RB_KEYS" LIKE.TOGGLE char__rand_int__
  after=$($BENCH_CMD write-counters --target "$TARGET" 2>/dev/null || true)
  if [ -n "$before" ] && [ -n "$after" ]; then
    record "$round" "$run.per_fsync" "$(awk -v b="$before" -v a="$after" 'BEGIN {split(b, x, " "); split(a, y, " "); f = y[1] - x[1]; t = y[2] - x[2]; if (f > 0) print t / f; else print "n/a"}')"
  fi
}

# redis_run ROUND: redis-benchmark has no duration flag, so each run asks
# for as many INCRs as the previous one did in DURATION_S.
REDIS_N=$(( DURATION_S * 10000 ))
redis_run() {
  local round=$1 rps
  measure "$round" redis_incr "$REDIS_PID" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t incr -c "$LIKE_CONNS" -n "$REDIS_N" -q
  rps=$(tr '\r' '\n' < "$OUT/runs/redis_incr-$round.txt" | awk '/^INCR:/ {print $2}' | tail -1)
  record "$round" redis_incr.rps "$rps"
  [ -z "$rps" ] || REDIS_N=$(awk -v r="$rps" -v d="$DURATION_S" 'BEGIN {n = int(r * d); print (n < 5000 ? 5000 : n)}')
}

fsync_run() {
  local round=$1
  measure "$round" fsync "" $BENCH_CMD fsync-rate --dir "$NODE_DATA" --duration 2s --json
  record "$round" fsync.rps "$(json_num "$OUT/runs/fsync-$round.txt" syncs_per_s)"
}

# The steps of one round, in order; even rounds run them in reverse, so
# every pair (adjacent steps) alternates which side goes first.
steps=(nginx_wrk_orig nginx_wrk nginx_ours)
[ "$WITHOUT_NODE" = 1 ] || steps+=(node_seed node_ours node_wrk)
steps+=(nginx_likes)
[ "$WITHOUT_NODE" = 1 ] || steps+=(node_likes)
[ -z "$NOSYNC_URL" ] || steps+=(node_likes_nosync)
steps+=(redis fsync)
# RESP pairs, each pair adjacent so the reversed rounds alternate who goes first.
for d in $RB_DEPTHS; do
  if [ "$RESP_LIKES" = 1 ]; then steps+=("node_resp_like:$d" "redis_resp_incr:$d"); fi
  if [ "$RESP_GET" = 1 ]; then steps+=("node_resp_get:$d" "redis_resp_get:$d"); fi
done

step() { # STEP ROUND
  local r=$2
  case $1 in
    nginx_wrk_orig) wrk_run "$r" nginx_seed_wrk_orig "$NGINX_URL" "$NGINX_PIDS" "$WORK/seed-v4-original.lua" ;;
    nginx_wrk)  wrk_run "$r" nginx_seed_wrk "$NGINX_URL" "$NGINX_PIDS" "$WORK/seed-v4-static.lua" ;;
    nginx_ours) ours "$r" nginx_seed_ours "$NGINX_URL" "$NGINX_PIDS" seed-v4 --connections "$CONNS" --names 아델 --no-goals ;;
    node_seed)  ours "$r" node_seed "$TARGET" "$NODE_PID" seed-v4 --connections "$CONNS" ;;
    node_ours)  ours "$r" node_seed_ours "$TARGET" "$NODE_PID" seed-v4 --connections "$CONNS" --names 아델 --no-goals ;;
    node_wrk)   wrk_run "$r" node_seed_wrk "$TARGET" "$NODE_PID" "$WORK/seed-v4-static.lua" ;;
    nginx_likes) ours "$r" nginx_likes "$NGINX_URL" "$NGINX_PIDS" likes --connections "$LIKE_CONNS" --no-goals ;;
    node_likes) ours "$r" node_likes "$TARGET" "$NODE_PID" likes --connections "$LIKE_CONNS" ;;
    node_likes_nosync) ours "$r" node_likes_nosync "$NOSYNC_URL" "$NOSYNC_PID" likes --connections "$LIKE_CONNS" --no-goals ;;
    redis) redis_run "$r" ;;
    fsync) fsync_run "$r" ;;
    node_resp_like:*) node_rb_like "$r" "${1#*:}" ;;
    redis_resp_incr:*) rb_run "$r" "redis_incr_p${1#*:}" 127.0.0.1 "$REDIS_PORT" "$REDIS_PID" "${1#*:}" -r "$RB_KEYS" INCR char__rand_int__ ;;
    node_resp_get:*) rb_run "$r" "node_resp_get_p${1#*:}" "$RESP_HOST" "$RESP_PORT" "$NODE_PID" "${1#*:}" -a "$RESP_TOKEN" EXPECT.GET 아델 GZIP ;;
    redis_resp_get:*) rb_run "$r" "redis_get_p${1#*:}" 127.0.0.1 "$REDIS_PORT" "$REDIS_PID" "${1#*:}" GET warm ;;
  esac
}

# Our runs take 2.5 s more than DURATION_S (warm-up, connect), the fsync probe 2 s.
per_round=$(( ${#steps[@]} * DURATION_S + 6 * 3 + 2 ))
log "${ROUNDS} rounds x ${#steps[@]} runs of ${DURATION_S}s: about $(( (ROUNDS * per_round + 40 + 4 * DURATION_S + 59) / 60 )) min; pinning: $([ "$PIN" = 1 ] && echo "servers on cpu $SERVER_CPU, clients on cpu $CLIENT_CPU" || echo off); nice $NICE"

# Once before the rounds: redis' requests per fsync (strace slows redis, so
# it is not one of the timed runs).
if command -v strace >/dev/null; then
  n=50000
  strace -f -c -e trace=fdatasync,fsync -o "$WORK/redis-strace.txt" -p "$REDIS_PID" 2>/dev/null &
  spid=$!
  sleep 0.5
  redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t incr -c "$LIKE_CONNS" -n "$n" -q > /dev/null 2>&1 || true
  sleep 0.2
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  syncs=$(awk '$NF=="fdatasync" || $NF=="fsync" {s += $4} END {print s + 0}' "$WORK/redis-strace.txt" 2>/dev/null || echo 0)
  if [ "${syncs:-0}" -gt 0 ]; then record 0 redis_incr.per_fsync "$(awk -v n="$n" -v s="$syncs" 'BEGIN {print n / s}')"; fi
  echo "strace -f -c -e trace=fdatasync,fsync -p <redis-server pid> during: redis-benchmark -t incr -c $LIKE_CONNS -n $n -q" >> "$CMDS"
  if [ "$RESP_LIKES" = 1 ]; then
    for d in $RB_DEPTHS; do
      strace -f -c -e trace=fdatasync,fsync -o "$WORK/redis-strace-p$d.txt" -p "$REDIS_PID" 2>/dev/null &
      spid=$!
      sleep 0.5
      redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$RB_CLIENTS" -n "$n" -P "$d" -r "$RB_KEYS" -q INCR char__rand_int__ > /dev/null 2>&1 || true
      sleep 0.2
      kill -INT "$spid" 2>/dev/null || true
      wait "$spid" 2>/dev/null || true
      syncs=$(awk '$NF=="fdatasync" || $NF=="fsync" {s += $4} END {print s + 0}' "$WORK/redis-strace-p$d.txt" 2>/dev/null || echo 0)
      if [ "${syncs:-0}" -gt 0 ]; then record 0 "redis_incr_p$d.per_fsync" "$(awk -v n="$n" -v s="$syncs" 'BEGIN {print n / s}')"; fi
      echo "strace -f -c -e trace=fdatasync,fsync -p <redis-server pid> during: redis-benchmark -c $RB_CLIENTS -n $n -P $d -r $RB_KEYS -q INCR char__rand_int__" >> "$CMDS"
    done
  fi
fi

for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS ($(cut -d' ' -f1 /proc/loadavg) load)"
  if (( round % 2 == 1 )); then order=("${steps[@]}"); else order=(); for ((i=${#steps[@]}-1; i>=0; i--)); do order+=("${steps[i]}"); done; fi
  for s in "${order[@]}"; do step "$s" "$round"; done
done

if [ "$WITHOUT_NODE" != 1 ] && [ "$SKIP_ONEOFF" != 1 ]; then
  log "one-off runs: cold, overload (3x capacity measured now)"
  ours 0 cold "$TARGET" "$NODE_PID" cold
  measure 0 overload "$NODE_PID" $BENCH_CMD run overload --target "$TARGET" --threads 1 --duration "${DURATION_S}s" \
    --probe 5s --out "$OUT/runs" --name overload-0
  j="$OUT/runs/overload-0/report.json"
  record 0 overload.errors "$(json_num "$j" errors_total)"
  record 0 overload.shed "$(json_num "$j" shed)"
  record 0 overload.shed_share "$(json_num "$j" shed_share)"
  record 0 overload.capacity "$(json_num "$j" capacity_req_per_s)"
  record 0 overload.offered "$(json_num "$j" offered_req_per_s)"
  p99=$(json_num "$j" accepted_p99_ms); mx=$(json_num "$j" accepted_max_ms); cp99=$(json_num "$j" capacity_p99_ms)
  sp99=$(json_num "$j" shed_p99_ms)
  [ -z "$sp99" ] || record 0 overload.shed_p99_us "$(awk -v v="$sp99" 'BEGIN {print v * 1000}')"
  [ -z "$cp99" ] || record 0 overload.capacity_p99_us "$(awk -v v="$cp99" 'BEGIN {print v * 1000}')"
  [ -z "$p99" ] || record 0 overload.accepted_p99_us "$(awk -v v="$p99" 'BEGIN {print v * 1000}')"
  [ -z "$mx" ] || record 0 overload.accepted_max_us "$(awk -v v="$mx" 'BEGIN {print v * 1000}')"
fi

# Where the node's time goes, for the rows that miss their goal: perf on the
# durable node during one extra seed-v4 run and one extra likes run (not
# timed runs: perf costs a little CPU). Flat profile by symbol; release
# builds keep symbols (debug = 1 in the workspace's release profile).
: > "$OUT/profiles.md"
if [ "$PROFILE" = 1 ] && [ -n "$NODE_PID" ] && command -v perf >/dev/null; then
  for w in seed-v4 likes; do
    data="$WORK/perf-$w.data"
    perf record -F 999 -g -p "$NODE_PID" -o "$data" -- sleep $(( DURATION_S + 2 )) > /dev/null 2>&1 &
    ppid=$!
    "${CLI[@]}" $BENCH_CMD run "$w" --target "$TARGET" --threads 1 --duration "${DURATION_S}s" --warmup 1s \
      --out "$OUT/runs" --name "profile-$w" --no-goals > "$OUT/runs/profile-$w.txt" 2>&1 || true
    wait "$ppid" 2>/dev/null || true
    perf report -i "$data" --stdio --no-children --sort symbol --percent-limit 0.7 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | sed -E 's/[ -]+$//' | head -30 > "$OUT/profile-$w.txt" || true
    {
      echo "### node under $w ($(head -1 "$OUT/runs/profile-$w.txt" | cut -c1-80))"
      echo
      echo "\`perf record -F 999 -g -p <node pid> -- sleep $(( DURATION_S + 2 ))\` during \`maple bench run $w --duration ${DURATION_S}s\`; \`perf report --stdio --no-children --sort symbol\`, symbols over 0.7 % of samples:"
      echo
      echo '```'
      cat "$OUT/profile-$w.txt"
      echo '```'
      echo
    } >> "$OUT/profiles.md"
  done
fi

# --- summary -----------------------------------------------------------------
{
  echo "# bench compare — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), ${ROUNDS} rounds x ${DURATION_S} s per run;"
  echo "pinning: $([ "$PIN" = 1 ] && echo "servers (nginx, redis, our nodes) on cpu $SERVER_CPU, clients (wrk, redis-benchmark, ours) on cpu $CLIENT_CPU" || echo off); niceness of all of them: $NICE;"
  echo "seed-v4 ${CONNS} connections, likes ${LIKE_CONNS}, one client thread; node: $NODE_DESC;"
  echo "fsync-off node: $([ -n "$NOSYNC_URL" ] && echo "\`--wal-sync off\`" || echo "not measured (no --wal-sync flag)");"
  echo "RESP side by side: redis-benchmark -c $RB_CLIENTS -P {$(echo $RB_DEPTHS | tr ' ' ',')}, node on $RESP_HOST:$RESP_PORT$([ -n "$RESP_NOTE" ] && echo " — $RESP_NOTE");"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)."
} > "$OUT/header.md"
{
  echo "## Commands (every round repeats them; round numbers shown as N)"
  echo
  echo '```'
  echo "${SRV[*]} $NGINX -c $WORK/nginx.conf -p $WORK   # config: $WORK/nginx.conf"
  echo "${SRV[*]} redis-server --port $REDIS_PORT --appendonly yes --appendfsync always --save ''"
  sed -E 's/([A-Za-z_])-[0-9]+( |$)/\1-N\2/g; s/ -n [0-9]+ (-P [0-9]+ )?-q/ -n <DURATION x last rate> \1-q/; s/ -a [^ ]+/ -a $(maple bench token)/' "$CMDS" | awk '!seen[$0]++'
  echo '```'
} > "$OUT/commands.md"
$BENCH_CMD summarize "$OUT"
