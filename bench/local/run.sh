#!/usr/bin/env bash
# `asya up` benchmarks (issue 4); called from bench/run.sh or on its own: bench/local/run.sh [BUILD_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
python3 "$HERE/bench_local.py" "${1:-$HERE/../../build/release}"
