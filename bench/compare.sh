#!/usr/bin/env bash
# Side-by-side runs on one machine, alternating A/B each round:
#   1. nginx serving the same gzip expectation bytes as a static file vs our node (seed-v4)
#   2. wrk (the original's Lua script shape) vs our generator, same endpoint (must agree within 10 %)
#   3. nginx answering the like POSTs with a fixed JSON vs our node (likes)
#   4. redis-server (appendonly yes, appendfsync always) INCR via redis-benchmark vs our node (likes)
# Called by `maple bench compare` (which sets the variables below) or by hand:
#   MAPLE_BIN=target/release/maple TARGET=http://127.0.0.1:8080 bash bench/compare.sh
#   MAPLE_BIN=target/release/maple-bench WITHOUT_NODE=1 bash bench/compare.sh   (generator only)
# WITHOUT_NODE=1 runs only what needs no node (2. against nginx, nginx/redis figures).
set -euo pipefail

MAPLE_BIN=${MAPLE_BIN:-maple}
# How to call our generator: `maple bench` or the standalone `maple-bench`.
if [ -z "${BENCH_CMD:-}" ]; then
  case "$(basename "$MAPLE_BIN")" in maple-bench*) BENCH_CMD="$MAPLE_BIN" ;; *) BENCH_CMD="$MAPLE_BIN bench" ;; esac
fi
TARGET=${TARGET:-http://127.0.0.1:8080}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-results/compare}
CONNS=${CONNS:-100}
SKIP_INSTALL=${SKIP_INSTALL:-0}
WITHOUT_NODE=${WITHOUT_NODE:-0}
NGINX_PORT=${NGINX_PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
SHARED=${MAPLE_SHARED_DATA:-../shared/data/maple}
NGINX_URL="http://127.0.0.1:${NGINX_PORT}"
SEED_PATH="/api/v4/characters/%EC%95%84%EB%8D%B8/expectation"   # 아델

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK="$OUT/work"
mkdir -p "$WORK/www" "$WORK/redis"
SUMMARY="$OUT/summary.md"
log() { echo "compare: $*" >&2; }

# --- tools -----------------------------------------------------------------
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$SKIP_INSTALL" = 1 ]; then log "missing: ${need[*]} (and --skip-install given)"; exit 1; fi
  log "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q nginx redis-server wrk >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- the bytes nginx serves: the node's own gzip response if it is up ------
if [ "$WITHOUT_NODE" != 1 ] && curl -sf -H 'Accept-Encoding: gzip' -o "$WORK/www/expectation.gz" "${TARGET}${SEED_PATH}"; then
  log "nginx serves the node's gzip response ($(stat -c %s "$WORK/www/expectation.gz") bytes)"
elif [ -f "$SHARED/derived/v4_reference_evan.json" ]; then
  gzip -9 -c "$SHARED/derived/v4_reference_evan.json" > "$WORK/www/expectation.gz"
  log "node not reachable: nginx serves gzip of v4_reference_evan.json ($(stat -c %s "$WORK/www/expectation.gz") bytes)"
else
  printf '{"note":"no node, no fixture"}' | gzip -c > "$WORK/www/expectation.gz"
fi

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
mkdir -p "$WORK/tmp"

cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
}
trap cleanup EXIT
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx-error.log"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync always \
  --save '' --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
sleep 0.5

# The original's wrk script shape (load-test/wrk-v4-expectation.lua): one
# character per thread, Accept + Accept-Encoding: gzip, count non-200.
cat > "$WORK/seed-v4.lua" <<'EOF'
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
# The same requests without the per-response Lua callback: wrk's own
# capacity. The agreement check uses this one (the callback alone costs wrk
# ~10 % on this machine, measured in the same session).
cat > "$WORK/seed-v4-lean.lua" <<'EOF'
local igns = { "%EC%95%84%EB%8D%B8", "%EA%B0%95%EC%9D%80%ED%98%B8", "%EC%A7%84%EA%B2%A9%EC%BA%90%EB%84%8C" }
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) current_ign = igns[(wrk.thread:get("id") % #igns) + 1] end
function request()
  return wrk.format("GET", "/api/v4/characters/" .. current_ign .. "/expectation",
    { ["Accept"] = "application/json", ["Accept-Encoding"] = "gzip" })
end
EOF

# --- helpers ---------------------------------------------------------------
json_num() { grep -m1 "\"$2\":" "$1" | sed -E 's/.*: *([0-9.eE+-]+).*/\1/'; }
CMDLOG="$OUT/commands.txt"
: > "$CMDLOG"

# ours NAME URL WORKLOAD -> "ok_per_s p99_us first_line"
ours() {
  local name=$1 url=$2 workload=$3
  local cmd=($BENCH_CMD run "$workload" --target "$url" --threads 1 --connections "$CONNS"
             --duration "$DURATION" --warmup 2s --out "$OUT" --name "$name")
  echo "${cmd[*]}" >> "$CMDLOG"
  "${cmd[@]}" > "$OUT/$name.txt" 2>&1 || { log "our run $name failed"; tail -5 "$OUT/$name.txt" >&2; return 1; }
  local j="$OUT/$name/report.json"
  echo "$(json_num "$j" ok_per_s) $(json_num "$j" p99) $(head -1 "$OUT/$name.txt" | cut -c1-60 | tr ' ' '_')"
}

# wrk_run NAME URL [SCRIPT] -> "req_per_s p99_us non2xx"
wrk_run() {
  local name=$1 url=$2 script=${3:-$WORK/seed-v4.lua}
  local cmd=(wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$script" "$url")
  echo "${cmd[*]}" >> "$CMDLOG"
  "${cmd[@]}" > "$OUT/$name.txt" 2>&1
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/$name.txt")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000}}' "$OUT/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$OUT/$name.txt")
  # A wrk run whose responses failed measured something else: say so loudly.
  [ -z "$non2xx" ] || log "WARNING: wrk $name got $non2xx non-2xx/3xx responses (see $OUT/$name.txt)"
  echo "$rps ${p99:-0} ${non2xx:-0}"
}

# redis_run NAME -> "incr_per_s"
redis_run() {
  local name=$1 secs=${DURATION%s}
  [[ $secs =~ ^[0-9]+$ ]] || secs=10
  local n=$(( secs * 20000 ))
  local cmd=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t incr -c "$CONNS" -n "$n" -q)
  echo "${cmd[*]}" >> "$CMDLOG"
  "${cmd[@]}" > "$OUT/$name.txt" 2>&1
  tr '\r' '\n' < "$OUT/$name.txt" | awk '/^INCR:/ {print $2}' | tail -1
}

# Median: one disturbed round (the machine is shared) does not move it.
median() { sort -g | awk '{v[n++]=$1} END {if (!n) print "n/a"; else if (n%2) printf "%.3f", v[(n-1)/2]; else printf "%.3f", (v[n/2-1]+v[n/2])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a/b; else print "n/a" }'; }

declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
avg() { tr ' ' '\n' <<<"${R[$1]:-}" | grep -v '^$' | median; }

# --- rounds (alternating A/B) ------------------------------------------------
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  # 2. wrk vs our generator on the same endpoint (nginx: a server that is not us)
  read -r a b _ < <(wrk_run "wrk-nginx-$round" "$NGINX_URL");   add wrk_orig_nginx "$a"
  read -r a b _ < <(wrk_run "wrk-lean-nginx-$round" "$NGINX_URL" "$WORK/seed-v4-lean.lua"); add wrk_nginx "$a"; add wrk_nginx_p99 "$b"
  read -r a b _ < <(ours "ours-nginx-seed-$round" "$NGINX_URL" seed-v4); add ours_nginx "$a"; add ours_nginx_p99 "$b"
  # Ratio within the round (runs back to back), so load drift between rounds cancels.
  add agree_round "$(ratio "$a" "$(tr ' ' '\n' <<<"${R[wrk_nginx]}" | tail -1)")"
  # 3. nginx fixed-JSON likes
  read -r a b _ < <(ours "ours-nginx-likes-$round" "$NGINX_URL" likes); add nginx_likes "$a"
  # 4. redis INCR with fsync always
  add redis_incr "$(redis_run "redis-incr-$round")"
  if [ "$WITHOUT_NODE" != 1 ]; then
    read -r a b _ < <(ours "ours-node-seed-$round" "$TARGET" seed-v4); add node_seed "$a"; add node_seed_p99 "$b"
    read -r a b _ < <(wrk_run "wrk-lean-node-$round" "$TARGET" "$WORK/seed-v4-lean.lua"); add wrk_node "$a"
    read -r a b _ < <(ours "ours-node-likes-$round" "$TARGET" likes); add node_likes "$a"
  fi
done

# --- summary -----------------------------------------------------------------
agree=$(avg agree_round)
{
  echo "# bench compare — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, ${ROUNDS} rounds x ${DURATION}, ${CONNS} connections, 1 client thread"
  echo
  echo "Medians over the rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)."
  echo
  echo "| pair | A | B | A/B |"
  echo "|---|---|---|---|"
  echo "| our generator vs wrk (request() only), nginx static gzip (req/s) | $(avg ours_nginx) | $(avg wrk_nginx) | $agree |"
  echo "| our generator vs wrk with the original's response() callback (req/s) | $(avg ours_nginx) | $(avg wrk_orig_nginx) | $(ratio "$(avg ours_nginx)" "$(avg wrk_orig_nginx)") |"
  echo "| p99 latency (us): our generator vs wrk (request() only) | $(avg ours_nginx_p99) | $(avg wrk_nginx_p99) | $(ratio "$(avg ours_nginx_p99)" "$(avg wrk_nginx_p99)") |"
  if [ "$WITHOUT_NODE" != 1 ]; then
    echo "| our generator vs wrk, node seed-v4 (req/s) | $(avg node_seed) | $(avg wrk_node) | $(ratio "$(avg node_seed)" "$(avg wrk_node)") |"
    echo "| node seed-v4 vs nginx static gzip (req/s) | $(avg node_seed) | $(avg ours_nginx) | $(ratio "$(avg node_seed)" "$(avg ours_nginx)") |"
    echo "| node likes vs nginx fixed JSON (acknowledged/s) | $(avg node_likes) | $(avg nginx_likes) | $(ratio "$(avg node_likes)" "$(avg nginx_likes)") |"
    echo "| node likes vs redis INCR, appendfsync always (/s) | $(avg node_likes) | $(avg redis_incr) | $(ratio "$(avg node_likes)" "$(avg redis_incr)") |"
  else
    echo "| nginx fixed-JSON like POSTs, our generator (/s) | $(avg nginx_likes) | | |"
    echo "| redis INCR, appendonly + appendfsync always (/s) | $(avg redis_incr) | | |"
  fi
  echo
  echo "Generator agreement (ours / wrk request()-only on nginx, median of per-round ratios: ${R[agree_round]}): $agree — must be within 0.90..1.10."
  echo
  echo "Commands (in run order of round 1; every round repeats them):"
  echo
  echo '```'
  echo "$NGINX -c $WORK/nginx.conf -p $WORK   # config: $WORK/nginx.conf"
  echo "redis-server --port $REDIS_PORT --appendonly yes --appendfsync always --save ''"
  sed -E 's/-[0-9]+( |$)/-N\1/g' "$CMDLOG" | awk '!seen[$0]++'
  echo '```'
} > "$SUMMARY"
cat "$SUMMARY"
awk -v a="$agree" 'BEGIN { exit !(a != "n/a" && a >= 0.9 && a <= 1.1) }' || { log "generator and wrk disagree by more than 10 %"; exit 2; }
