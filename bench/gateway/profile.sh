#!/usr/bin/env bash
# Gateway cost per tools/call, figures a loaded machine does not move much (issue 10 speed
# target; docs/benchmarks.md, gateway section). Starts its own PostgreSQL (as run.sh, plus
# pg_stat_statements) and one asya-gateway, then measures two windows:
#   gateway : REST POST /tools/call open-loop at RATE for SECS, then until nothing is pending;
#   baseline: asya-bench-gateway baseline (store Create + MarkRunning + sqlite Publish, THREADS
#             threads) for SECS.
# Per envelope: PostgreSQL commits (pg_stat_database.xact_commit), statements = round trips
# (pg_stat_statements, top level, utility statements included), CPU-µs of the gateway (or the
# baseline program), of all PostgreSQL processes (exited backends included, through the
# postmaster's children times), of the load client, and the gateway's system calls
# (perf stat raw_syscalls:sys_enter). Needs perf; run as root or with perf_event_paranoid <= 1.
# Environment: BUILD_DIR (or BIN), RATE (500), SECS (10), THREADS (4).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=${BIN:-$BUILD_DIR/bin}
RATE=${RATE:-500}
SECS=${SECS:-10}
THREADS=${THREADS:-4}
PY=${PY:-python3}
for b in asya-gateway asya-bench-gateway; do
  [ -x "$BIN/$b" ] || { echo "profile: $BIN/$b is missing (build first)"; exit 1; }
done
command -v perf >/dev/null || { echo "profile: perf is missing"; exit 1; }
source "$ROOT/bench/gateway/pg.sh"
bench_pg_start gwprof -c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_utility=on
sql() { psql -qtA -h 127.0.0.1 -p "$PGPORT" -U postgres -d "${2:-postgres}" -c "$1"; }
sql "CREATE EXTENSION pg_stat_statements" >/dev/null

bench_tools_yaml

bench_gateway_start profile

TCK=$(getconf CLK_TCK)
# CPU ticks of every PostgreSQL process: live children + the postmaster with its reaped children.
pg_ticks() {
  local total=0 f ppid
  for f in /proc/[0-9]*/stat; do
    read -r -a s <"$f" 2>/dev/null || continue
    # fields after "(comm)": s[3]=ppid, s[13]=utime, s[14]=stime, s[15]=cutime, s[16]=cstime
    if [ "${s[0]}" = "$POSTMASTER" ]; then
      total=$((total + s[13] + s[14] + s[15] + s[16]))
    elif [ "${s[3]}" = "$POSTMASTER" ]; then
      total=$((total + s[13] + s[14]))
    fi
  done 2>/dev/null
  echo "$total"
}
commits() { sql "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"; }
statements() {
  sql "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'"
}
pending() { sql "SELECT count(*) FILTER (WHERE status = 'pending') || ' ' || count(*) FROM envelopes" gw; }
# perf stat -x, lines: value,unit,event,...
perf_field() { awk -F, -v e="$2" '$3 ~ e {print $1}' "$1" | head -1; }
per() { awk -v a="$1" -v n="$2" 'BEGIN{printf "%.2f", (n > 0) ? a / n : 0}'; }
us_per() { awk -v t="$1" -v hz="$TCK" -v n="$2" 'BEGIN{printf "%.0f", (n > 0) ? t * 1e6 / hz / n : 0}'; }

echo "profile: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); RATE=$RATE SECS=$SECS THREADS=$THREADS"
"$BIN/asya-bench-gateway" load 127.0.0.1 "$GWPORT" bench_echo 500 2 64 >/dev/null  # warm-up
for _ in $(seq 600); do [ "$(pending | cut -d' ' -f1)" = 0 ] && break; sleep 0.1; done

# ---- gateway window
sql "SELECT pg_stat_statements_reset()" >/dev/null
sleep 0.7  # pg_stat_database counters are flushed at most every 500 ms
c0=$(commits gw); n0=$(pending | cut -d' ' -f2); p0=$(pg_ticks); l0=$(cut -d' ' -f1 /proc/loadavg)
perf stat -x, -e task-clock,raw_syscalls:sys_enter -p "$GWPID" -o "$WORK/gw.perf" &
PERFPID=$!
perf stat -x, -e task-clock -o "$WORK/client.perf" \
  "$BIN/asya-bench-gateway" load 127.0.0.1 "$GWPORT" bench_echo "$RATE" "$SECS" 256 >"$WORK/load.out"
for _ in $(seq 1200); do [ "$(pending | cut -d' ' -f1)" = 0 ] && break; sleep 0.1; done
kill -INT "$PERFPID"; wait "$PERFPID" 2>/dev/null || true
sleep 0.7
c1=$(commits gw); n1=$(pending | cut -d' ' -f2); p1=$(pg_ticks); l1=$(cut -d' ' -f1 /proc/loadavg)
st=$(statements gw)
n=$((n1 - n0))
gw_ms=$(perf_field "$WORK/gw.perf" task-clock); gw_sys=$(perf_field "$WORK/gw.perf" sys_enter)
cl_ms=$(perf_field "$WORK/client.perf" task-clock)
echo "gateway  (load $l0 -> $l1): $(cat "$WORK/load.out")"
echo "gateway  per call ($n calls): commits $(per $((c1 - c0)) "$n"), statements $(per "$st" "$n"), gateway CPU $(awk -v m="$gw_ms" -v n="$n" 'BEGIN{printf "%.0f", m * 1000 / n}') us, gateway syscalls $(per "$gw_sys" "$n"), postgres CPU $(us_per $((p1 - p0)) "$n") us, load client CPU $(awk -v m="$cl_ms" -v n="$n" 'BEGIN{printf "%.0f", m * 1000 / n}') us"
sql "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'gw' ORDER BY calls DESC LIMIT 8" |
  sed 's/^/    /'

# ---- baseline window
sql "SELECT pg_stat_statements_reset()" >/dev/null
sleep 0.7
c0=$(commits base); p0=$(pg_ticks); l0=$(cut -d' ' -f1 /proc/loadavg)
perf stat -x, -e task-clock,raw_syscalls:sys_enter -o "$WORK/base.perf" \
  "$BIN/asya-bench-gateway" baseline "$PG/base" "$WORK/base-queues.db" "$SECS" "$THREADS" >"$WORK/base.out"
sleep 0.7
c1=$(commits base); p1=$(pg_ticks); l1=$(cut -d' ' -f1 /proc/loadavg)
st=$(statements base)
n=$(sed -n 's/.*done=\([0-9]*\).*/\1/p' "$WORK/base.out")
b_ms=$(perf_field "$WORK/base.perf" task-clock); b_sys=$(perf_field "$WORK/base.perf" sys_enter)
echo "baseline (load $l0 -> $l1): $(cat "$WORK/base.out")"
echo "baseline per envelope ($n): commits $(per $((c1 - c0)) "$n"), statements $(per "$st" "$n"), program CPU $(awk -v m="$b_ms" -v n="$n" 'BEGIN{printf "%.0f", m * 1000 / n}') us (store open included), program syscalls $(per "$b_sys" "$n"), postgres CPU $(us_per $((p1 - p0)) "$n") us"
