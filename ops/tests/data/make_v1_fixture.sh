#!/usr/bin/env bash
# Makes ops/tests/data/v1-<mode>/: a format-1 data dir (core-<n>/{wal,state})
# written by the build BEFORE storage v2 (main at cf0cede, saved as
# /work/design/maple-main), with likes, keyed likes and written-behind
# expectations, stopped by SIGTERM (final checkpoint: the log is purged) or
# SIGKILL (the log tail holds records the store may not have), and
# expected.json: every like status and expectation ETag as that build
# answered them. ops/tests/migration.rs checks the new build answers the same.
# Usage: make_v1_fixture.sh <maple binary> <sigterm|sigkill>
set -euo pipefail
BIN=${1:?maple binary}; MODE=${2:?sigterm|sigkill}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/v1-$MODE"; rm -rf "$OUT"; mkdir -p "$OUT"
DATA="$OUT/data"; LOG=$(mktemp)
SECRET=fixture-secret
"$BIN" serve --data-dir "$DATA" --cores 2 --wal-segment-mb 4 --listen 127.0.0.1:0 --jwt-secret "$SECRET" 2>"$LOG" &
PID=$!
for _ in $(seq 1 200); do grep -q "listening on" "$LOG" && break; sleep 0.05; done
ADDR=$(grep -o "listening on [0-9.:]*" "$LOG" | head -1 | awk '{print $3}')
for _ in $(seq 1 200); do curl -sf "http://$ADDR/health/ready" >/dev/null && break; sleep 0.05; done
tok() { MAPLE_JWT_SECRET=$SECRET "$BIN" token --user "$1"; }
enc() { python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$1"; }
CHARS=(아델 강은호 진격캐넌 Hero Zed evan mechanic 오지환 Char7 Char8)
USERS=(alice bob carol dave erin)
like() { curl -s -X POST -H "Authorization: Bearer $(tok "$1")" ${3:+-H "Idempotency-Key: $3"} "http://$ADDR/api/v2/characters/$(enc "$2")/like" >/dev/null; }
# Likes: user i likes characters j with (i + j) % 3 != 0; bob un-likes Hero again.
for i in "${!USERS[@]}"; do for j in "${!CHARS[@]}"; do
  if (( (i + j) % 3 != 0 )); then like "${USERS[$i]}" "${CHARS[$j]}"; fi
done; done
like bob Hero
# Keyed likes (one key reused on another character: the v1 bug of issue 9).
like frank 아델 k-1; like frank 아델 k-1; like frank Zed k-1; like gina evan k-2
# Expectations written behind (served from the store after a restart).
for c in evan 아델 mechanic someone-else; do curl -s "http://$ADDR/api/v4/characters/$(enc "$c")/expectation" >/dev/null; done
sleep 1
# What this build answers now.
{
  echo '{"likes":['
  first=1
  for u in "${USERS[@]}" frank gina; do for c in "${CHARS[@]}"; do
    r=$(curl -s -H "Authorization: Bearer $(tok "$u")" "http://$ADDR/api/v2/characters/$(enc "$c")/like/status")
    [[ $first == 1 ]] || echo ','; first=0
    printf '{"user":"%s","character":"%s","answer":%s}' "$u" "$c" "$r"
  done; done
  echo '],"expectations":['
  first=1
  for c in evan 아델 mechanic someone-else; do
    etag=$(curl -s -D - -o /dev/null "http://$ADDR/api/v4/characters/$(enc "$c")/expectation" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
    [[ $first == 1 ]] || echo ','; first=0
    printf '{"character":"%s","etag":%s}' "$c" "$(jq -Rn --arg e "$etag" '$e')"
  done
  echo ']}'
} > "$OUT/expected.json"
if [[ $MODE == sigkill ]]; then kill -KILL $PID; else kill -TERM $PID; fi
wait $PID || true
rm -f "$DATA/lock" "$DATA"/core-*/wal/spare-*.tmp  # the data dir lock; pre-allocated spares (no data)
# Pre-allocated segments: cut the zeros after the last record (found by
# walking the frames: `len: u32 | crc: u32 | index: u64 | term: u64 |
# payload`, from the 32-byte header; an all-zero header ends them). The v1
# reader treats the end of a file like zeros after the records.
for f in "$DATA"/core-*/wal/*.wal; do
  [[ -f $f ]] || continue
  python3 - "$f" <<'PY'
import struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
at = 32
while at + 24 <= len(b) and b[at:at + 24] != bytes(24):
    (n,) = struct.unpack_from('<I', b, at)
    at += 24 + n
open(p, 'wb').write(b[:at])
PY
done
du -sh "$OUT"; cat "$LOG" | tail -5; rm -f "$LOG"
