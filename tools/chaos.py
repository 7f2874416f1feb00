#!/usr/bin/env python3
"""`make chaos`: long `asya check` runs, one row each in docs/reliability.md.

Usage: tools/chaos.py [--asya BIN] [--only SUBSTR] [--envelopes N] [--moto-envelopes N] [--dry-run]
                      [--faults LIST [--transport T]] [--check-args "ARGS"]

Each run is `asya check --envelopes N --transport T --faults F --seed S` (the checker starts its
own broker or moto_server). The row (fault, transport, envelopes, lost, duplicated, unexpected,
duplicate rate, dead-lettered, faults injected, duration, date, commit) is appended to the
results table of docs/reliability.md. Runs whose check could not run add no
row. Defaults: 100,000 envelopes on sqlite and RabbitMQ, 2,000 on moto (CHAOS_ENVELOPES,
CHAOS_MOTO_ENVELOPES override them). --faults runs that one schedule instead of the list below
(e.g. every process fault at once); --check-args passes more flags to each `asya check` (e.g.
"--keep --timeout 900" to keep a run's state for a post-mortem). The rabbitmq broker-kill
schedule first runs the contract test RabbitMqHolding.* (kill -9 right after new holding queues
were made); its failure fails `make chaos`.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "reliability.md")
HEADER = "| fault | transport | envelopes |"

# (transport, faults, extra flags)
RUNS = [
    ("sqlite", "kill-sidecar,kill-runtime", []),
    ("sqlite", "stop-runtime", []),
    ("sqlite", "kill-all", ["--fault-interval", "15"]),
    ("sqlite", "disk-full", ["--fault-interval", "5"]),
    ("rabbitmq", "kill-sidecar,kill-runtime", []),
    ("rabbitmq", "stop-runtime", []),
    ("rabbitmq", "broker-kill", ["--fault-interval", "90"]),
    ("rabbitmq", "broker-restart", ["--fault-interval", "90"]),
    ("sqs", "kill-sidecar,kill-runtime", ["--fault-interval", "4"]),
    # network faults (root): the broker / moto in its own network namespace
    ("rabbitmq", "partition", ["--fault-interval", "5"]),
    ("rabbitmq", "partition-long", ["--fault-interval", "10"]),
    ("rabbitmq", "delay", ["--fault-interval", "5"]),
    ("rabbitmq", "loss", ["--fault-interval", "5"]),
    ("sqs", "partition,delay,loss", ["--fault-interval", "5"]),
]

SUMMARY = re.compile(r"summary: (\d+) envelopes, (\d+) expected outputs, (\d+) arrived, "
                     r"(\d+) dead-lettered, (\d+) faults, ([\d.]+) s")
RESULT = re.compile(r"^lost=(\d+) duplicated=(\d+) unexpected=(\d+)$", re.M)


def add_row(row):
    """Appends `row` to the results table (the table whose header starts with HEADER)."""
    with open(DOC) as f:
        lines = f.read().split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith(HEADER)), None)
    if start is None:
        raise SystemExit("%s has no results table (a line starting %r)" % (DOC, HEADER))
    i = start + 1
    while i < len(lines) and lines[i].startswith("|"):
        i += 1
    lines.insert(i, row)
    with open(DOC, "w") as f:
        f.write("\n".join(lines))


def commit():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    return r.stdout.strip() or "?"


def holding_kill_test():
    """The RabbitMQ broker-kill schedule also runs the contract test that kills the broker right
    after new quorum holding queues were created (too slow for `make test`). Returns its exit."""
    binary = os.path.join(ROOT, "build", "release", "tests", "rabbitmq_contract_test")
    cmd = [binary, "--gtest_also_run_disabled_tests",
           "--gtest_filter=RabbitMqHolding.*:RabbitMqRecovery.*"]
    print("+ " + " ".join(cmd), flush=True)
    log_path = "/tmp/asya-chaos-rabbitmq-holding-kill.log"
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    print("RabbitMqHolding broker-kill test: %s (see %s)" % ("passed" if rc == 0 else "FAILED",
                                                           log_path), flush=True)
    return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asya", default=os.path.join(ROOT, "build", "bin", "asya"))
    ap.add_argument("--only", default="", help="run only rows whose 'transport faults' contain this")
    ap.add_argument("--envelopes", type=int,
                    default=int(os.environ.get("CHAOS_ENVELOPES", "100000")))
    ap.add_argument("--moto-envelopes", type=int,
                    default=int(os.environ.get("CHAOS_MOTO_ENVELOPES", "2000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "1")))
    ap.add_argument("--dry-run", action="store_true", help="print the rows, do not write them")
    ap.add_argument("--faults", default="", help="run this one schedule instead of the list")
    ap.add_argument("--transport", default="sqlite", help="the transport of --faults")
    ap.add_argument("--check-args", default="", help="more flags for every asya check")
    args = ap.parse_args()
    failed = 0
    runs = [(args.transport, args.faults, [])] if args.faults else RUNS
    for transport, faults, extra in runs:
        extra = extra + args.check_args.split()
        if args.only and args.only not in "%s %s" % (transport, faults):
            continue
        if transport == "rabbitmq" and faults == "broker-kill" and holding_kill_test() != 0:
            failed += 1
        n = args.moto_envelopes if transport == "sqs" else args.envelopes
        cmd = [args.asya, "check", "--envelopes", str(n), "--transport", transport, "--faults",
               faults, "--seed", str(args.seed)] + extra
        print("+ " + " ".join(cmd), flush=True)
        log_path = "/tmp/asya-chaos-%s-%s.log" % (transport, faults.replace(",", "+"))
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
            out = []
            for line in proc.stdout:
                out.append(line)
                log.write(line)
                if "fault #" in line or "progress:" in line or "summary:" in line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            proc.wait()
        text = "".join(out)
        s = SUMMARY.search(text)
        r = RESULT.search(text)
        if "interrupted: accounting" in text:
            print("interrupted: no row (see %s)" % log_path)
            failed += 1
            continue
        if s is None or r is None:
            print("check did not run to the end (exit %d); see %s" % (proc.returncode, log_path))
            failed += 1
            continue
        envelopes, expected, _arrived, dlq, nfaults, secs = s.groups()
        lost, dup, unexpected = r.groups()
        rate = 100.0 * int(dup) / int(expected)
        row = "| %s | %s | %s | %s | %s | %s | %.3f%% | %s | %s | %.0f s | %s | %s |" % (
            faults, transport, envelopes, lost, dup, unexpected, rate, dlq, nfaults, float(secs),
            datetime.date.today().isoformat(), commit())
        print(row, flush=True)
        if not args.dry_run:
            add_row(row)
        if proc.returncode != 0:
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
