#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time, starting from the checked-in seed corpus.
# Usage: fuzz/run.sh [seconds-per-target]   (default 60; or FUZZ_SECONDS)
# Env: FUZZ_BUILD (default build/fuzz), FUZZ_TARGETS (default: all), FUZZ_JOBS (default 1).
# New inputs go to a scratch corpus under $FUZZ_BUILD/fuzz/corpus-work/<target>; crashes are
# written as $FUZZ_BUILD/fuzz/artifacts/<target>/crash-* (add them to fuzz/corpus/<target>/ once
# fixed). Exit status is non-zero when any target found a crash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-${FUZZ_SECONDS:-60}}"
build="$(realpath -m "${FUZZ_BUILD:-$root/build/fuzz}")"
all_targets="envelope_parse_fuzz frame_decode_fuzz runtime_processor_fuzz json_scan_fuzz duration_fuzz
  runtime_response_fuzz manifest_fuzz tools_config_fuzz k8s_watch_fuzz aws_response_fuzz amqp_fuzz
  gateway_http_fuzz render_fuzz"
targets="${FUZZ_TARGETS:-$all_targets}"
jobs="${FUZZ_JOBS:-1}"
status=0
for t in $targets; do
  bin="$build/fuzz/$t"
  if [[ ! -x "$bin" ]]; then
    echo "missing $bin: build with 'cmake --preset fuzz && cmake --build build/fuzz --target $t'" >&2
    exit 2
  fi
  work="$build/fuzz/corpus-work/$t"
  artifacts="$build/fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  echo "== $t: ${seconds}s"
  parallel=()
  if (( jobs > 1 )); then
    parallel=(-jobs="$jobs" -workers="$jobs")  # libFuzzer writes fuzz-<n>.log into the cwd
  fi
  if ! (cd "$build/fuzz" && "$bin" -max_total_time="$seconds" -print_final_stats=1 "${parallel[@]}" \
      -max_len=65536 -artifact_prefix="$artifacts/" "$work" "$here/corpus/$t") \
      2>&1 | tee "$build/fuzz/$t.log" | grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY)'; then
    :
  fi
  if compgen -G "$artifacts/crash-*" >/dev/null || compgen -G "$artifacts/leak-*" >/dev/null \
      || compgen -G "$artifacts/timeout-*" >/dev/null; then
    echo "!! $t found problems: $(ls "$artifacts")" >&2
    status=1
  fi
done
exit $status
