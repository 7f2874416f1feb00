#!/usr/bin/env bash
# RabbitMQ hop benchmark (called from bench/run.sh, or on its own). Starts a throw-away broker,
# then compares, with persistent messages on quorum queues and the C++ no-op (echo) runtime:
#   sidecar concurrency 1  vs raw librabbitmq loop, prefetch 1, consume->publish->confirm->ack
#   sidecar concurrency 32 vs raw loop with the same guarantees: prefetch 64 (the sidecar's
#     2 x concurrency), every input published at once, acked only after its output's confirm
#     (target); and vs raw loop, prefetch 32, no confirm wait (the ceiling); and vs the sidecar at 1
#   comparisons (no target): sidecar 32 vs raw-window-rt (raw-window plus a runtime call per
#     message, one event-driven thread), and raw-window-rt vs raw-window
# Environment: BUILD_DIR (default build/release), REPS (3), N1 (2000), N32 (20000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=$BUILD_DIR/bin
REPS=${REPS:-3}
N1=${N1:-2000}
N32=${N32:-20000}
BROKER=$ROOT/tools/rabbitmq-test-broker.sh
for b in asya-bench-rmq asya-sidecar asya-echo-runtime; do
  [ -x "$BIN/$b" ] || { echo "bench/rabbitmq: $BIN/$b is missing (build first)"; exit 1; }
done
WORK=$(mktemp -d /tmp/asya-rmqb-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BROKER" stop "$WORK/broker" kill >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$("$BROKER" free-port)
"$BROKER" start "$WORK/broker" "$PORT" 0 >/dev/null
URL="amqp://guest:guest@127.0.0.1:$PORT/"

rate() { sed -n 's/.*rate=\([0-9]*\).*/\1/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

sidecar_hop() {  # sidecar_hop CONCURRENCY N -> prints the hop rate
  local conc=$1 n=$2
  local id="rb$RANDOM$RANDOM"  # runs in a $(...) subshell: a counter would not survive
  local actor="$id" sink="$id-sink" dir="$WORK/$id"
  mkdir -p "$dir"; chmod 700 "$dir"
  "$BIN/asya-bench-rmq" create "$URL" "asya-$sink" >/dev/null 2>&1
  "$BIN/asya-bench-rmq" preload "$URL" "asya-$actor" "$n" "$actor" >/dev/null 2>&1
  ASYA_SOCKET_DIR=$dir ASYA_LOG_LEVEL=warn setsid "$BIN/asya-echo-runtime" >"$dir/rt.log" 2>&1 </dev/null &
  local rt=$!
  ASYA_TRANSPORT=rabbitmq ASYA_RABBITMQ_URL=$URL ASYA_ACTOR_NAME=$actor ASYA_SOCKET_DIR=$dir \
    ASYA_ACTOR_HAPPY_END=$sink ASYA_SIDECAR_CONCURRENCY=$conc ASYA_METRICS_ENABLED=false \
    ASYA_LOG_LEVEL=warn setsid "$BIN/asya-sidecar" >"$dir/sc.log" 2>&1 </dev/null &
  local sc=$!
  PIDS+=("$rt" "$sc")
  local r
  r=$("$BIN/asya-bench-rmq" wait "$URL" "asya-$sink" "$n" 2>"$dir/wait.err" | rate)
  kill "$sc" "$rt" 2>/dev/null || true
  wait "$sc" "$rt" 2>/dev/null || true
  if [ -z "$r" ]; then
    echo "bench/rabbitmq: sidecar hop failed; logs:" >&2
    tail -n 5 "$dir/wait.err" "$dir/sc.log" "$dir/rt.log" >&2
  fi
  echo "$r"
}

# pairs RAW_CMD CONC N -> REPS lines "SIDECAR_RATE RAW_RATE", each sidecar run beside a raw run.
pairs() {
  local raw_cmd=$1 conc=$2 n=$3
  for _ in $(seq "$REPS"); do
    local raw sc
    raw=$(sh -c "$raw_cmd" | rate)
    sc=$(sidecar_hop "$conc" "$n")
    echo "$sc $raw"
  done
}
median_first() { cut -d' ' -f1 | sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# raw_window_rt N -> the raw-window loop with a runtime call per message (asya-echo-runtime,
# started as sidecar_hop starts it; 32 kept connections, one event-driven thread).
raw_window_rt() {
  local n=$1 dir="$WORK/rt$RANDOM$RANDOM"
  mkdir -p "$dir"; chmod 700 "$dir"
  ASYA_SOCKET_DIR=$dir ASYA_LOG_LEVEL=warn setsid "$BIN/asya-echo-runtime" >"$dir/rt.log" 2>&1 </dev/null &
  local rt=$!
  PIDS+=("$rt")
  for _ in $(seq 500); do [ -S "$dir/asya-runtime.sock" ] && break; sleep 0.01; done
  "$BIN/asya-bench-rmq" raw-window-rt "$URL" "$n" 64 "$dir/asya-runtime.sock" 32 2>"$dir/err" | rate
  kill "$rt" 2>/dev/null || true
  wait "$rt" 2>/dev/null || true
}

# triples -> REPS lines "SIDECAR_RATE CONFIRMED_WINDOW_RATE NO_CONFIRM_RATE RAW_WINDOW_RT_RATE"
# at concurrency 32 (the fourth is a comparison, not a target).
triples() {
  for _ in $(seq "$REPS"); do
    local win ceil sc wrt
    win=$("$BIN/asya-bench-rmq" raw-window "$URL" "$N32" 64 | rate)
    ceil=$("$BIN/asya-bench-rmq" raw-pipeline "$URL" "$N32" 32 | rate)
    wrt=$(raw_window_rt "$N32")
    sc=$(sidecar_hop 32 "$N32")
    echo "$sc $win $ceil $wrt"
  done
}

p1=$(pairs "'$BIN/asya-bench-rmq' raw-confirm '$URL' $N1" 1 "$N1")
p32=$(triples)
echo "$p1" | python3 "$ROOT/bench/pairs.py" \
  "rabbitmq hop concurrency=1 (raw loop: prefetch 1, confirm each)" 0.80
echo "$p32" | cut -d' ' -f1,2 | python3 "$ROOT/bench/pairs.py" \
  "rabbitmq hop concurrency=32 (raw loop: prefetch 64, ack after confirm, pipelined)" 0.80
echo "$p32" | cut -d' ' -f1,3 | python3 "$ROOT/bench/pairs.py" \
  "rabbitmq hop concurrency=32 (ceiling: raw loop, prefetch 32, no confirm wait)" 0.50
# Comparisons (no target): raw+runtime = raw-window plus a runtime call per message, one thread.
echo "$p32" | cut -d' ' -f1,4 | python3 "$ROOT/bench/pairs.py" \
  "rabbitmq hop concurrency=32 sidecar / raw+runtime (raw-window + a runtime call per message)" -
echo "$p32" | awk '{print $4, $2}' | python3 "$ROOT/bench/pairs.py" \
  "rabbitmq hop concurrency=32 raw+runtime / raw-window (the runtime call's own cost)" -
sc1=$(echo "$p1" | median_first)
sc32=$(echo "$p32" | median_first)
echo "rabbitmq hop concurrency=32 vs 1: $(ratio "$sc32" "$sc1")x (medians; target >= 5)"
