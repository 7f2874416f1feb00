#!/usr/bin/env bash
# asya-operator with 1,000 actors on the fake API server (called from bench/run.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
[ -x "$BUILD_DIR/bin/asya-operator" ] || { echo "bench/operator: asya-operator missing (build first)"; exit 1; }
BUILD_DIR=$BUILD_DIR python3 "$ROOT/bench/operator/run.py"
