#!/usr/bin/env bash
# Benchmarks, side by side with their baselines in one run (`make bench`): data plane, `asya up`, then
# `asya render` of 1,000 actors (bench/render), the operator on 1,000 actors (bench/operator),
# the gateway on PostgreSQL (bench/gateway).
# Not part of `make test`. Prints one line per benchmark:
#   runtime-roundtrip kept-conn: asya 19876/s, baseline 21345/s, ratio 0.93
# Environment: BUILD_DIR (default build/release), REPS (default 5), N (round trips per run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=$BUILD_DIR/bin
REPS=${REPS:-5}
N=${N:-20000}
PY=${PY:-python3}
WORK=$(mktemp -d /tmp/asya-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for b in asya-bench-uds-baseline asya-bench-roundtrip asya-echo-runtime; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b is missing (build first: make build)"; exit 1; }
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

start() {  # start NAME CMD... ; waits for the socket named in $SOCK
  setsid "$@" >"$WORK/$(basename "$1").log" 2>&1 </dev/null &
  PIDS+=($!)
}
wait_socket() { for _ in $(seq 500); do [ -S "$1" ] && return 0; sleep 0.01; done; echo "no socket $1"; exit 1; }
rate() { sed -n 's/.*rate=\([0-9]*\).*/\1/p'; }

# compare LABEL TARGET "asya client cmd" "baseline client cmd": REPS interleaved pairs, summarised
# by bench/pairs.py (median of per-pair ratios, best-of-N and spread of each side).
compare() {
  local label=$1 target=$2 a_cmd=$3 b_cmd=$4 pairs=""
  for _ in $(seq "$REPS"); do
    local b a
    b=$($b_cmd | rate)
    a=$($a_cmd | rate)
    pairs+="$a $b"$'\n'
  done
  printf "%s" "$pairs" | "$PY" "$ROOT/bench/pairs.py" "$label" "$target"
}

# a. RuntimeClient -> C++ echo runtime vs C client -> C echo server (1 KB envelope).
mkdir -p "$WORK/cpp" "$WORK/c"
start "$BIN/asya-bench-uds-baseline" server "$WORK/c/c.sock"
ASYA_SOCKET_DIR=$WORK/cpp ASYA_LOG_LEVEL=warn start "$BIN/asya-echo-runtime"
wait_socket "$WORK/c/c.sock"; wait_socket "$WORK/cpp/asya-runtime.sock"
for mode in conn persist; do
  name=$([ $mode = conn ] && echo new-conn || echo kept-conn)
  compare "runtime-roundtrip $name" 0.80 \
    "$BIN/asya-bench-roundtrip $WORK/cpp/asya-runtime.sock $N $mode 1024" \
    "$BIN/asya-bench-uds-baseline client $WORK/c/c.sock $N $mode 1024"
done

# b. asya_runtime.py (no-op handler) vs a minimal Python server, same C client, same message.
RUNTIME_PY=$ROOT/src/runtime/python/asya_runtime.py
if [ -f "$RUNTIME_PY" ]; then
  mkdir -p "$WORK/py" "$WORK/pyb"
  start "$PY" "$ROOT/bench/py_echo_server.py" "$WORK/pyb/py.sock"
  ASYA_SOCKET_DIR=$WORK/py ASYA_HANDLER=noop_handler.noop ASYA_LOG_LEVEL=WARNING \
    PYTHONPATH=$ROOT/bench start "$PY" "$RUNTIME_PY"
  wait_socket "$WORK/pyb/py.sock"; wait_socket "$WORK/py/asya-runtime.sock"
  PN=$((N / 2))
  for mode in conn persist; do
    name=$([ $mode = conn ] && echo new-conn || echo kept-conn)
    compare "python-runtime $name" 0.95 \
      "$BIN/asya-bench-uds-baseline client $WORK/py/asya-runtime.sock $PN $mode 1024" \
      "$BIN/asya-bench-uds-baseline client $WORK/pyb/py.sock $PN $mode 1024"
  done
else
  echo "python-runtime: skipped ($RUNTIME_PY not found)"
fi

# c + d. One SQLite hop through the sidecar; sidecar memory.
if [ -x "$BIN/asya-bench-sqlite-hop" ] && [ -x "$BIN/asya-sidecar" ]; then
  mkdir -p "$WORK/hop/rt"
  ASYA_SOCKET_DIR=$WORK/hop/rt ASYA_LOG_LEVEL=warn ASYA_RUNTIME_CONCURRENCY=8 start "$BIN/asya-echo-runtime"
  wait_socket "$WORK/hop/rt/asya-runtime.sock"
  "$BIN/asya-bench-sqlite-hop" --dir "$WORK/hop" --socket-dir "$WORK/hop/rt" \
    --sidecar "$BIN/asya-sidecar" --n "${HOP_N:-3000}" --concurrency 8 --reps "${HOP_REPS:-5}" \
    2>/dev/null >"$WORK/hop.out"
  sed -n 's/^pair //p' "$WORK/hop.out" | "$PY" "$ROOT/bench/pairs.py" "sqlite-hop c=8" 0.90
  # Comparisons (no target): raw+runtime = the raw loop with a runtime call per message (the
  # better of a blocking call per message and each batch's calls sent at once).
  sed -n 's/^pair-rt //p' "$WORK/hop.out" | cut -d' ' -f1,2 | "$PY" "$ROOT/bench/pairs.py" \
    "sqlite-hop c=8 sidecar / raw+runtime (raw loop + a runtime call per message)" -
  sed -n 's/^pair-rt //p' "$WORK/hop.out" | cut -d' ' -f2,3 | "$PY" "$ROOT/bench/pairs.py" \
    "sqlite-hop c=8 raw+runtime / raw (the runtime call's own cost)" -
  grep -v '^pair \|^pair-rt ' "$WORK/hop.out"
else
  echo "sqlite-hop / sidecar-memory: skipped (asya-sidecar or asya-bench-sqlite-hop not built)"
fi

# RabbitMQ hop (bench/rabbitmq/run.sh starts its own broker).
BUILD_DIR=$BUILD_DIR bash "$ROOT/bench/rabbitmq/run.sh" || echo "rabbitmq-hop: failed (see above)"

# asya up: the 3-actor Python pipeline, wake-up, nap, idle supervisor (bench/local).
bash "$ROOT/bench/local/run.sh" "$BUILD_DIR" || echo "asya-up: failed (see above)"

# e. asya render of 1,000 actors (in process vs a yaml-cpp round trip; the CLI end to end).
BUILD_DIR=$BUILD_DIR bash "$ROOT/bench/render/run.sh" || echo "render: failed (see above)"

# f. asya-operator: 1,000 actors to steady state on the fake API server; resync makes no writes.
BUILD_DIR=$BUILD_DIR bash "$ROOT/bench/operator/run.sh" || echo "operator: failed (see above)"

# g. asya-gateway on PostgreSQL: tools/call rate and latency vs a bare store+publish loop; 2,000
# idle SSE streams (bench/gateway/run.sh starts its own PostgreSQL).
BUILD_DIR=$BUILD_DIR bash "$ROOT/bench/gateway/run.sh" || echo "gateway: failed (see above)"
