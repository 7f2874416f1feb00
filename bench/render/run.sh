#!/usr/bin/env bash
# `asya render` of 1,000 actors (called from bench/run.sh, or on its own; issue 9: < 1 s).
#   1. in process: load+validate, render, emit vs yaml-cpp parse+emit of the same output
#   2. the real CLI end to end on one 1,000-actor file (median of REPS runs)
# Environment: BUILD_DIR (default build/release), REPS (5), RENDER_N (1000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/release}
BIN=$BUILD_DIR/bin
REPS=${REPS:-5}
N=${RENDER_N:-1000}
for b in asya-bench-render asya; do
  [ -x "$BIN/$b" ] || { echo "bench/render: $BIN/$b is missing (build first)"; exit 1; }
done
WORK=$(mktemp -d /tmp/asya-renderb-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SCRIPT=$ROOT/src/runtime/python/asya_runtime.py
"$BIN/asya-bench-render" "$N" "$SCRIPT"
"$BIN/asya-bench-render" "$N" "$SCRIPT" --write "$WORK/actors.yaml"
vals=""
cpus=""
for _ in $(seq "$REPS"); do
  s=$(date +%s%N)
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$BIN/asya" render "$WORK/actors.yaml" \
    --operator-config "$WORK/actors.yaml.config.yaml" >"$WORK/out.yaml"
  e=$(date +%s%N)
  vals+="$(( (e - s) / 1000000 ))"$'\n'
  cpus+="$(awk '{printf "%d", ($1 + $2) * 1000}' "$WORK/time")"$'\n'
done
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms=$(printf "%s" "$vals" | median)
cpu=$(printf "%s" "$cpus" | median)
objs=$(grep -c '^---$' "$WORK/out.yaml")
# Wall time depends on what else runs; CPU time (user+sys) is what the render itself costs.
echo "asya render CLI N=$N: ${ms}ms wall, ${cpu}ms CPU, $objs objects (target < 1000ms;" \
  "load $(cut -d' ' -f1 /proc/loadavg))"
