#!/usr/bin/env bash
# Gateway benchmark (part of `make bench`; issue 10 "Performance"): asya-gateway on a throw-away
# PostgreSQL (fsync=off, synchronous_commit=off, as the test fixture) with the sqlite transport
# publishing to a queue nobody consumes.
#  1. REST POST /tools/call (and MCP tools/call, stateless 2026-07-28) open-loop at RATE (500/s):
#     p50/p99; then rising rates until p99 >= 50 ms (the highest rate below is reported).
#     Baseline, interleaved in the same run: asya-bench-gateway baseline = store Create +
#     MarkRunning + sqlite Publish in a bare loop on the same PostgreSQL server (BASE_THREADS
#     threads); ratio = best gateway rate with p99 < 50 ms / baseline rate.
#  2. SSE: SSE_ENVELOPES running envelopes x SSE_PER streams each (2,000 idle streams), the
#     gateway's extra RSS, then POST /final for every envelope: time until all streams saw it.
# Environment: BUILD_DIR, RATE (500), SECS (5 per load step), REPS (2), BASE_THREADS (4),
#   RATES (steps for the max-rate search), SSE_ENVELOPES (200), SSE_PER (10), IO_THREADS (unset:
#   the gateway's default).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=$BUILD_DIR/bin
RATE=${RATE:-500}
SECS=${SECS:-5}
REPS=${REPS:-2}
BASE_THREADS=${BASE_THREADS:-4}
RATES=${RATES:-"200 300 400 450 500 550 600 650 700 750 850 1000 1250 1500 2000"}
SSE_ENVELOPES=${SSE_ENVELOPES:-200}
SSE_PER=${SSE_PER:-10}
PY=${PY:-python3}
for b in asya-gateway asya-bench-gateway; do
  [ -x "$BIN/$b" ] || { echo "gateway: $BIN/$b is missing (build first)"; exit 1; }
done
source "$ROOT/bench/gateway/pg.sh"
bench_pg_start gwbench

bench_tools_yaml

bench_gateway_start gateway

load() { "$BIN/asya-bench-gateway" load 127.0.0.1 "$GWPORT" bench_echo "$@"; }
counts() {  # "<pending>|<all>" envelopes of the gateway's database
  psql -tA -h 127.0.0.1 -p "$PGPORT" -U postgres -d gw \
    -c "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM envelopes"
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "gateway: machine $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') fsync=off"
load 500 1 64 >/dev/null  # warm-up (connections, prepared statements, table pages)

for rep in $(seq "$REPS"); do
  echo "-- rep $rep (load $(cut -d' ' -f1-3 /proc/loadavg))"
  base=$("$BIN/asya-bench-gateway" baseline "$PG/base" "$WORK/base-queues.db" "$SECS" "$BASE_THREADS")
  base1=$("$BIN/asya-bench-gateway" baseline "$PG/base" "$WORK/base-queues.db" "$SECS" 1)
  echo "baseline store+publish: ${BASE_THREADS} threads $(echo "$base" | field rate)/s, 1 thread $(echo "$base1" | field rate)/s"
  echo "rest tools/call @${RATE}/s: $(load "$RATE" "$SECS" 256)"
  echo "mcp  tools/call @${RATE}/s: $(load "$RATE" "$SECS" 256 mcp)"
  best=0 fails=0
  for r in $RATES; do  # rising rates; stop after two steps in a row miss p99 < 50 ms
    out=$(load "$r" "$SECS" 256)
    p99=$(echo "$out" | field p99_ms); got=$(echo "$out" | field rate); errs=$(echo "$out" | field err)
    echo "  step $r/s: $out"
    if [ "$errs" = 0 ] && awk -v p="$p99" 'BEGIN{exit !(p < 50)}'; then best=$got fails=0
    else fails=$((fails + 1)); [ "$fails" -ge 2 ] && break; fi
  done
  # Far above capacity: HTTP answers come after the store insert, MarkRunning + publish run behind
  # on the gateway's publisher threads, so also time until no envelope is left pending
  # (end to end = envelopes created / (load + drain time)).
  n0=$(counts | cut -d'|' -f2); t0=$(date +%s.%N)
  sat=$(load 3000 "$SECS" 256 | field rate)
  for _ in $(seq 1200); do [ "$(counts | cut -d'|' -f1)" = 0 ] && break; sleep 0.1; done
  t1=$(date +%s.%N); n1=$(counts | cut -d'|' -f2)
  e2e=$(awk -v n="$((n1 - n0))" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n / (b - a)}')
  b=$(echo "$base" | field rate)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0) ? a / b : 0}'; }
  echo "rest tools/call max rate with p99<50ms: ${best}/s; saturated ${sat}/s answered, ${e2e}/s end to end (published); baseline ${b}/s; ratio $(ratio "$best" "$b") (p99<50ms), $(ratio "$e2e" "$b") (saturated end to end) (target >= 0.6)"
done

for rep in $(seq "$REPS"); do
  echo "-- sse rep $rep: $SSE_ENVELOPES envelopes x $SSE_PER streams (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$BIN/asya-bench-gateway" sse 127.0.0.1 "$GWPORT" "$GWPID" bench_echo "$SSE_ENVELOPES" "$SSE_PER" bench-callback || echo "sse: failed"
done
grep -v '^$' "$WORK/gateway.log" | tail -5 || true
