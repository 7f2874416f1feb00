#!/usr/bin/env bash
# The gateway's cost per HTTP request, for comparing gateway builds or I/O-thread settings (issue
# 13 row 2): CPU µs and context switches (wake-ups) of the whole gateway process per answered
# request, through `perf stat -e task-clock,context-switches -p`, under two steady open-loop
# keep-alive loads:
#   progress: sidecar-like POST /envelopes/{id}/progress at PRATE/s over PCONNS connections;
#   call    : REST POST /tools/call at CRATE/s over CCONNS connections (until nothing is pending).
# Every binary in GATEWAYS (space-separated paths, default the build's asya-gateway) runs both
# loads, REPS rounds, one binary right after the other. One throw-away PostgreSQL (pg.sh).
# Environment: BUILD_DIR (or BIN), GATEWAYS, REPS (3), SECS (8), PRATE (250), PCONNS (4),
# CRATE (300), CCONNS (16), IO_THREADS (the gateway's default when unset).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=${BIN:-$BUILD_DIR/bin}
GATEWAYS=${GATEWAYS:-$BIN/asya-gateway}
REPS=${REPS:-3}
SECS=${SECS:-8}
PRATE=${PRATE:-250}
PCONNS=${PCONNS:-4}
CRATE=${CRATE:-300}
CCONNS=${CCONNS:-16}
PY=${PY:-python3}
LOAD=$BIN/asya-bench-gateway
[ -x "$LOAD" ] || { echo "threads: $LOAD is missing (build first)"; exit 1; }
command -v perf >/dev/null || { echo "threads: perf is missing"; exit 1; }
source "$ROOT/bench/gateway/pg.sh"
bench_pg_start gwthreads
bench_tools_yaml
pending() { psql -qtA -h 127.0.0.1 -p "$PGPORT" -U postgres -d gw -c "SELECT count(*) FROM envelopes WHERE status = 'pending'"; }
perf_field() { awk -F, -v e="$2" '$3 ~ e {print $1}' "$1" | head -1; }

# measure LABEL LOAD-ARGS...: one window on the running gateway, one result line.
measure() {
  local label=$1 l0 out n ms cs
  shift
  l0=$(cut -d' ' -f1 /proc/loadavg)
  perf stat -x, -e task-clock,context-switches -p "$GWPID" -o "$WORK/gw.perf" &
  local perfpid=$!
  sleep 0.2
  out=$("$LOAD" load 127.0.0.1 "$GWPORT" bench_echo "$@")
  for _ in $(seq 600); do [ "$(pending)" = 0 ] && break; sleep 0.1; done
  kill -INT "$perfpid"
  wait "$perfpid" 2>/dev/null || true
  n=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$out")
  ms=$(perf_field "$WORK/gw.perf" task-clock)
  cs=$(perf_field "$WORK/gw.perf" context-switches)
  awk -v l="$label" -v m="$ms" -v c="$cs" -v n="$n" -v la="$l0" -v o="$out" 'BEGIN{
    printf "%-40s load %5s  requests %6d  CPU %4.0f us/req  wake-ups %5.2f /req  | %s\n",
      l, la, n, (n > 0) ? m * 1000 / n : 0, (n > 0) ? c / n : 0, o}'
}

echo "threads: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); SECS=$SECS PRATE=$PRATE PCONNS=$PCONNS CRATE=$CRATE CCONNS=$CCONNS IO_THREADS=${IO_THREADS:-default}"
k=0
for rep in $(seq "$REPS"); do
  for gw in $GATEWAYS; do
    k=$((k + 1))
    mkdir -p "$WORK/bin$k"
    ln -sf "$(readlink -f "$gw")" "$WORK/bin$k/asya-gateway"
    BIN=$WORK/bin$k bench_gateway_start threads
    "$LOAD" load 127.0.0.1 "$GWPORT" bench_echo 300 1 8 >/dev/null  # warm-up
    for _ in $(seq 600); do [ "$(pending)" = 0 ] && break; sleep 0.1; done
    measure "rep $rep progress $(basename "$gw")" "$PRATE" "$SECS" "$PCONNS" progress bench-callback
    measure "rep $rep call     $(basename "$gw")" "$CRATE" "$SECS" "$CCONNS"
    kill "$GWPID"
    wait "$GWPID" 2>/dev/null || true
  done
done
