#!/usr/bin/env bash
# SQS benchmark (sidecar vs raw batched HTTP loop on one moto_server); see sqs_bench.py.
# Environment: BUILD_DIR (default build/release), N (500), REPS (3), CONCURRENCIES (1,10,20).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
for b in asya-sidecar asya-echo-runtime; do
  [ -x "$BUILD_DIR/bin/$b" ] || { echo "bench/sqs: $BUILD_DIR/bin/$b is missing (make build)"; exit 1; }
done
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
exec python3 "$ROOT/bench/sqs/sqs_bench.py" "$BUILD_DIR/bin" "${N:-500}" "${REPS:-3}" "${CONCURRENCIES:-1,10,20}"
