#!/usr/bin/env bash
# Per-message profile of the RabbitMQ hop at concurrency C (default 32) against the confirmed
# raw-window loop and raw-window-rt (the same plus a runtime call per message over C connections;
# bench/rabbitmq/rmq_bench.cc), on one throw-away broker. Not part of `make test`
# or `make bench`; needs root for `perf` (and the uprobes on librabbitmq's amqp_basic_ack /
# amqp_basic_publish, added once with `perf probe`).
#
# For each side it counts, over the consume phase only (the raw loop stops itself after its
# preload; the sidecar starts stopped), per message: CPU µs (task-clock), context switches,
# system calls (total and the ones that matter), basic.publish / basic.ack calls — for the
# client process(es) and for the broker (beam.smp).
#   BUILD_DIR=build/release N=20000 C=32 bash bench/rabbitmq/profile.sh
# SIDECAR=path runs another asya-sidecar binary (e.g. a build before a change).
# PERF_RECORD=DIR adds `perf record -g` of the sidecar into DIR/sidecar.data.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=$BUILD_DIR/bin
N=${N:-20000}
C=${C:-32}
BROKER=$ROOT/tools/rabbitmq-test-broker.sh
LIB=$(ldd "$BIN/asya-sidecar" | sed -n 's/.*librabbitmq.so.4 => \([^ ]*\).*/\1/p')
WORK=$(mktemp -d /tmp/asya-rmqp-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BROKER" stop "$WORK/broker" kill >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for f in amqp_basic_ack amqp_basic_publish; do
  perf probe -l 2>/dev/null | grep -q "probe_librabbitmq:$f " || perf probe -q -x "$LIB" "$f" 2>/dev/null || true
done
EVENTS=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_poll,syscalls:sys_enter_futex,syscalls:sys_enter_setsockopt,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_writev
perf probe -l 2>/dev/null | grep -q 'probe_librabbitmq:amqp_basic_ack ' && EVENTS+=,probe_librabbitmq:amqp_basic_ack,probe_librabbitmq:amqp_basic_publish

PORT=$("$BROKER" free-port)
BEAM=$("$BROKER" start "$WORK/broker" "$PORT" 0 | tail -n1)
URL="amqp://guest:guest@127.0.0.1:$PORT/"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); N=$N C=$C"

# count LABEL PID... : perf stat on each PID until the first exits / is killed; prints per-message.
PERFS=()
start_perf() {  # start_perf OUT PID: appends perf's PID to PERFS
  perf stat -x, -e "$EVENTS" -p "$2" -o "$1" </dev/null >/dev/null 2>&1 &
  PERFS+=($!)
}
per_msg() {  # per_msg LABEL FILE
  awk -F, -v n="$N" -v label="$1" '
    /^[0-9.]+,/ { v=$1; e=$3; if (e ~ /task-clock/) { v = v * 1000; e = "cpu_us" }
                  sub(/^(raw_)?syscalls:sys_enter_?/, "", e); sub(/^probe_librabbitmq:amqp_basic_/, "amqp_", e);
                  if (e == "") e = "syscalls"; out = out sprintf(" %s=%.2f", e, v / n) }
    END { printf "%-22s%s\n", label, out }' "$2"
}

# 1. raw-window: it preloads, then stops itself before consuming (ASYA_BENCH_STOP=1).
ASYA_BENCH_STOP=1 "$BIN/asya-bench-rmq" raw-window "$URL" "$N" $((2 * C)) >"$WORK/raw.out" &
RAW=$!
until [ "$(awk '{print $3}' /proc/$RAW/stat 2>/dev/null)" = T ]; do sleep 0.05; done
PERFS=(); start_perf "$WORK/raw.perf" "$RAW"; start_perf "$WORK/rawbeam.perf" "$BEAM"
sleep 0.3; kill -CONT "$RAW"; wait "$RAW"; kill -INT "${PERFS[1]}"; wait "${PERFS[@]}" 2>/dev/null || true
echo "raw-window prefetch $((2 * C)): $(cat "$WORK/raw.out")"
per_msg "  raw loop" "$WORK/raw.perf"; per_msg "  broker (raw)" "$WORK/rawbeam.perf"

# 1b. raw-window-rt (raw-window plus a runtime call per message, C connections, one thread), with
# its own asya-echo-runtime started as the sidecar's below.
rdir="$WORK/rawrt"; mkdir -p "$rdir"; chmod 700 "$rdir"
ASYA_SOCKET_DIR=$rdir ASYA_LOG_LEVEL=warn setsid "$BIN/asya-echo-runtime" >"$rdir/rt.log" 2>&1 </dev/null &
RRT=$!; PIDS+=("$RRT")
while [ ! -S "$rdir/asya-runtime.sock" ]; do sleep 0.05; done
ASYA_BENCH_STOP=1 "$BIN/asya-bench-rmq" raw-window-rt "$URL" "$N" $((2 * C)) "$rdir/asya-runtime.sock" "$C" >"$WORK/rawrt.out" &
RAWRT=$!
until [ "$(awk '{print $3}' /proc/$RAWRT/stat 2>/dev/null)" = T ]; do sleep 0.05; done
PERFS=(); start_perf "$WORK/rawrt.perf" "$RAWRT"; start_perf "$WORK/rawrtbeam.perf" "$BEAM"; start_perf "$WORK/rawrtrt.perf" "$RRT"
sleep 0.3; kill -CONT "$RAWRT"; wait "$RAWRT"; kill -INT "${PERFS[1]}" "${PERFS[2]}"; wait "${PERFS[@]}" 2>/dev/null || true
kill "$RRT" 2>/dev/null || true
echo "raw-window-rt prefetch $((2 * C)) conns $C: $(cat "$WORK/rawrt.out")"
per_msg "  raw+runtime loop" "$WORK/rawrt.perf"; per_msg "  runtime (raw+rt)" "$WORK/rawrtrt.perf"
per_msg "  broker (raw+rt)" "$WORK/rawrtbeam.perf"

# 2. sidecar at concurrency C, started stopped, input preloaded.
dir="$WORK/sc"; mkdir -p "$dir"; chmod 700 "$dir"
"$BIN/asya-bench-rmq" create "$URL" "asya-hop-sink" >/dev/null
"$BIN/asya-bench-rmq" preload "$URL" "asya-hop" "$N" hop >/dev/null
ASYA_SOCKET_DIR=$dir ASYA_LOG_LEVEL=warn setsid "$BIN/asya-echo-runtime" >"$dir/rt.log" 2>&1 </dev/null &
RT=$!; PIDS+=("$RT")
ASYA_TRANSPORT=rabbitmq ASYA_RABBITMQ_URL=$URL ASYA_ACTOR_NAME=hop ASYA_SOCKET_DIR=$dir \
  ASYA_ACTOR_HAPPY_END=hop-sink ASYA_SIDECAR_CONCURRENCY=$C ASYA_METRICS_ENABLED=false \
  ASYA_LOG_LEVEL=warn setsid sh -c 'kill -STOP $$; exec "$0"' "${SIDECAR:-$BIN/asya-sidecar}" >"$dir/sc.log" 2>&1 </dev/null &
SC=$!; PIDS+=("$SC")
until [ "$(awk '{print $3}' /proc/$SC/stat 2>/dev/null)" = T ]; do sleep 0.05; done
while [ ! -S "$dir/asya-runtime.sock" ]; do sleep 0.05; done
PERFS=(); start_perf "$WORK/sc.perf" "$SC"; start_perf "$WORK/rt.perf" "$RT"; start_perf "$WORK/scbeam.perf" "$BEAM"
sleep 0.3; kill -CONT "$SC"
if [ -n "${PERF_RECORD:-}" ]; then  # the sidecar's threads exist once it runs
  sleep 0.5; mkdir -p "$PERF_RECORD"
  perf record -g -F 999 -o "$PERF_RECORD/sidecar.data" -p "$SC" </dev/null >/dev/null 2>&1 & rec=$!
fi
echo "sidecar c=$C: $("$BIN/asya-bench-rmq" wait "$URL" asya-hop-sink "$N")"
kill -INT "${PERFS[@]}" ${rec:-} 2>/dev/null || true; wait "${PERFS[@]}" ${rec:-} 2>/dev/null || true
per_msg "  sidecar" "$WORK/sc.perf"; per_msg "  runtime" "$WORK/rt.perf"; per_msg "  broker (sidecar)" "$WORK/scbeam.perf"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
