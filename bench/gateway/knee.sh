#!/usr/bin/env bash
# Where the tools/call p99 knee comes from (issue 10 speed target; docs/benchmarks.md, gateway
# section "p99 knee"): one gateway on the bench's PostgreSQL (pg.sh), REST tools/call open-loop
# at each of RATES for SECS, and per call, from /proc (schedstat: time on a CPU and time runnable
# but waiting for one): the gateway's threads and all PostgreSQL processes, plus how idle the
# machine's CPUs were during the step. A step where the machine has no idle CPU left and the
# PostgreSQL backends wait for a CPU longer than they run is bound by the machine, not by the
# gateway's threads. Environment: BUILD_DIR (or BIN), RATES ("600 750 850 1000"), SECS (6),
# IO_THREADS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=${BIN:-$BUILD_DIR/bin}
SECS=${SECS:-6}
PY=${PY:-python3}
source "$ROOT/bench/gateway/pg.sh"
bench_pg_start gwknee
bench_tools_yaml
bench_gateway_start knee
sched() {  # "<run ns> <wait ns>" summed over every thread of the given processes
  local r=0 w=0 a b c p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*/schedstat; do
      read -r a b c <"$t" 2>/dev/null || continue
      r=$((r + a)) w=$((w + b))
    done
  done
  echo "$r $w"
}
pg_pids() { echo "$POSTMASTER $(pgrep -P "$POSTMASTER" | tr '\n' ' ')"; }
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }  # busy idle (ticks)
"$BIN/asya-bench-gateway" load 127.0.0.1 "$GWPORT" bench_echo 500 1 64 >/dev/null  # warm-up
for r in ${RATES:-600 750 850 1000}; do
  g0=$(sched "$GWPID"); p0=$(sched $(pg_pids)); c0=$(cpu)
  out=$("$BIN/asya-bench-gateway" load 127.0.0.1 "$GWPORT" bench_echo "$r" "$SECS" 256)
  g1=$(sched "$GWPID"); p1=$(sched $(pg_pids)); c1=$(cpu)
  n=$(echo "$out" | sed -n 's/.*ok=\([0-9]*\).*/\1/p')
  echo "rest $r/s (load $(cut -d' ' -f1 /proc/loadavg)): $out"
  awk -v g0="$g0" -v g1="$g1" -v p0="$p0" -v p1="$p1" -v c0="$c0" -v c1="$c1" -v n="$n" 'BEGIN{
    split(g0, a, " "); split(g1, b, " "); split(p0, c, " "); split(p1, d, " ");
    split(c0, e, " "); split(c1, f, " "); busy = f[1] - e[1]; idle = f[2] - e[2];
    printf "   per call: gateway on-CPU %.0f us, waiting for a CPU %.0f us | PostgreSQL on-CPU %.0f us, waiting for a CPU %.0f us | machine idle %.0f%%\n",
      (b[1] - a[1]) / n / 1000, (b[2] - a[2]) / n / 1000, (d[1] - c[1]) / n / 1000,
      (d[2] - c[2]) / n / 1000, 100 * idle / (busy + idle) }'
  sleep 2
done
