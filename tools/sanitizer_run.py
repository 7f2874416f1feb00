#!/usr/bin/env python3
"""Run one test under the sanitizers and fail it when any process wrote a sanitizer report.

    sanitizer_run.py <report-dir> -- <command...>

Used by CTest in sanitizer builds (cmake/AsyaLibrary.cmake, ASYA_SANITIZE). Many tests spawn the
built binaries (asya-sidecar, asya, asya-crew, runtimes) and do not look at how they exit, so a
report on a child's stderr would be lost. Here every ASan/LSan/UBSan/TSan report of every process
goes to <report-dir>/<tool>.<pid> (log_path); afterwards the reports are printed and the test
fails if there is any. Options already in the environment are kept (ours are appended), and the
repository's suppression files (asan.supp, lsan.supp, ubsan.supp, tsan.supp) are applied when
present. The environment variables reach children as long as a harness passes them on: the
Python harnesses keep ASAN_OPTIONS, LSAN_OPTIONS, UBSAN_OPTIONS and TSAN_OPTIONS.

One gap: in a GCC ASan+UBSan build, UBSan's reports ignore log_path and go to stderr. The build
uses -fno-sanitize-recover=undefined and abort_on_error=1, so such a process dies of SIGABRT: a
test binary fails by itself, and tests/component/harness.py fails a test whose sidecar aborted.
"""

import os
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _options(name, extra):
    current = os.environ.get(name, "")
    return ":".join(x for x in [current] + extra if x)


def _supp(tool):
    path = os.path.join(REPO, tool + ".supp")
    return ["suppressions=" + path] if os.path.exists(path) else []


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        print("usage: sanitizer_run.py <report-dir> -- <command...>", file=sys.stderr)
        return 2
    report_dir, cmd = os.path.abspath(argv[0]), argv[2:]
    shutil.rmtree(report_dir, ignore_errors=True)
    os.makedirs(report_dir)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = _options("ASAN_OPTIONS", [
        "log_path=" + os.path.join(report_dir, "asan"), "abort_on_error=1", "detect_leaks=1",
        "check_initialization_order=1"] + _supp("asan"))
    env["LSAN_OPTIONS"] = _options("LSAN_OPTIONS", _supp("lsan"))
    env["UBSAN_OPTIONS"] = _options("UBSAN_OPTIONS", [
        "log_path=" + os.path.join(report_dir, "ubsan"), "print_stacktrace=1", "halt_on_error=1",
        "abort_on_error=1"] + _supp("ubsan"))
    env["TSAN_OPTIONS"] = _options("TSAN_OPTIONS", [
        "log_path=" + os.path.join(report_dir, "tsan"), "halt_on_error=0", "second_deadlock_stack=1"]
        + _supp("tsan"))
    sys.stdout.flush()
    rc = subprocess.call(cmd, env=env)
    reports = sorted(os.listdir(report_dir))
    for name in reports:
        with open(os.path.join(report_dir, name), "rb") as f:
            text = f.read().decode("utf-8", "replace")
        print("\n==== sanitizer report %s ====\n%s" % (name, text), flush=True)
    if reports:
        print("sanitizer_run: %d sanitizer report(s) in %s (test exit code %d)"
              % (len(reports), report_dir, rc), flush=True)
        return rc if rc != 0 else 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
