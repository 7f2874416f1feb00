#!/usr/bin/env python3
"""`make soak`: half of the measured capacity through the checker's 3-actor pipeline for 30 min.

Usage: tools/soak.py [--asya BIN] [--seconds S] [--capacity-envelopes N] [--transport T] [--dry-run]

1. Capacity: `asya check --envelopes N` (no faults, all at once): envelopes per second of the run.
2. Soak: `asya check --envelopes rate*S --rate rate --stats` at rate = capacity / 2; the checker
   prints a progress line every 2 s and RSS / open fds of every process after a warm-up (a tenth
   of the envelopes) and at the end.
3. Writes the `## Soak` section of docs/reliability.md (between the soak markers): throughput over
   time (ten windows), RSS and fds at start and end per process, growth, the checker's result.
Exit 0 when the checker passed and no process grew by 5 % or more (RSS or fds).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "reliability.md")
BEGIN = "<!-- soak:begin -->"
END = "<!-- soak:end -->"
SUMMARY = re.compile(r"summary: (\d+) envelopes, (\d+) expected outputs, (\d+) arrived, "
                     r"(\d+) dead-lettered, (\d+) faults, ([\d.]+) s")
RESULT = re.compile(r"^lost=(\d+) duplicated=(\d+) unexpected=(\d+)$", re.M)
PROGRESS = re.compile(r"^\[\s*([\d.]+)s\] progress: published \d+/\d+, outputs (\d+)/\d+", re.M)
STATS = re.compile(r"stats (start|end): (.+?)\s+pid (\d+)\s+rss\s+(\d+) kB\s+fds\s+(\d+)")


def run(cmd, log_path):
    print("+ " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        out = []
        for line in proc.stdout:
            out.append(line)
            log.write(line)
            if "progress:" in line or "summary:" in line or "stats" in line or "lost=" in line:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
    return proc.returncode, "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asya", default=os.path.join(ROOT, "build", "bin", "asya"))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "1800")))
    ap.add_argument("--capacity-envelopes", type=int,
                    default=int(os.environ.get("SOAK_CAPACITY_ENVELOPES", "3000")))
    ap.add_argument("--transport", default=os.environ.get("SOAK_TRANSPORT", "sqlite"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()

    code, text = run([args.asya, "check", "--envelopes", str(args.capacity_envelopes),
                      "--transport", args.transport], "/tmp/asya-soak-capacity.log")
    s = SUMMARY.search(text)
    if code != 0 or s is None:
        print("capacity run failed (exit %d); see /tmp/asya-soak-capacity.log" % code)
        return 1
    capacity = int(s.group(1)) / max(float(s.group(6)), 0.001)
    rate = capacity / 2
    n = max(1, int(rate * args.seconds))
    print("capacity %.1f envelopes/s; soaking at %.1f/s for %.0f s (%d envelopes)"
          % (capacity, rate, args.seconds, n), flush=True)
    load_before = os.getloadavg()[0]
    code, text = run([args.asya, "check", "--envelopes", str(n), "--rate", "%.3f" % rate,
                      "--transport", args.transport, "--stats"], "/tmp/asya-soak.log")
    load_after = os.getloadavg()[0]
    s = SUMMARY.search(text)
    r = RESULT.search(text)
    if s is None or r is None:
        print("soak run did not finish (exit %d); see /tmp/asya-soak.log" % code)
        return 1

    # Throughput over time: outputs per second in ten windows.
    points = [(float(t), int(o)) for t, o in PROGRESS.findall(text)]
    windows = []
    if len(points) >= 2:
        t_first, t_last = points[0][0], points[-1][0]
        step = (t_last - t_first) / 10 or 1
        for i in range(10):
            lo, hi = t_first + i * step, t_first + (i + 1) * step
            inside = [p for p in points if lo <= p[0] <= hi]
            if len(inside) >= 2:
                dt = inside[-1][0] - inside[0][0]
                windows.append((lo - t_first, hi - t_first,
                                (inside[-1][1] - inside[0][1]) / dt if dt > 0 else 0))
    stats = {}
    for when, label, pid, rss, fds in STATS.findall(text):
        stats.setdefault(label.strip(), {})[when] = (int(pid), int(rss), int(fds))
    rows = []
    worst = 0.0
    for label, d in sorted(stats.items()):
        if "start" not in d or "end" not in d:
            continue
        (p0, r0, f0), (p1, r1, f1) = d["start"], d["end"]
        g_rss = 100.0 * (r1 - r0) / r0 if r0 else 0.0
        g_fds = 100.0 * (f1 - f0) / f0 if f0 else 0.0
        same = "" if p0 == p1 else " (restarted)"
        worst = max(worst, g_rss, g_fds)
        rows.append("| %s%s | %d | %d | %+.1f%% | %d | %d | %+.1f%% |"
                    % (label, same, r0, r1, g_rss, f0, f1, g_fds))
    lost, dup, unexpected = r.groups()
    section = [
        BEGIN,
        "Run %s (commit %s), transport %s: capacity %.1f envelopes/s (%d envelopes at once, no "
        "faults); soak at %.1f envelopes/s (%.1f outputs/s) for %.0f s: %s envelopes. Load average "
        "%.1f before, %.1f after (2 cores shared)."
        % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
           subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip(),
           args.transport, capacity, args.capacity_envelopes, rate, 2 * rate, args.seconds,
           s.group(1), load_before, load_after),
        "",
        "Checker: `lost=%s duplicated=%s unexpected=%s` (%s expected outputs, %s dead-lettered)."
        % (lost, dup, unexpected, s.group(2), s.group(4)),
        "",
        "| window (s) | outputs/s |",
        "|---|---|",
    ] + ["| %.0f–%.0f | %.1f |" % w for w in windows] + [
        "",
        "| process | RSS start (kB) | RSS end (kB) | growth | fds start | fds end | growth |",
        "|---|---|---|---|---|---|---|",
    ] + rows + [
        "",
        "Largest growth: %.1f%% (limit 5%%). Start = after a tenth of the envelopes (warm-up)."
        % worst,
        END,
    ]
    out = "\n".join(section)
    print(out)
    if not args.dry_run:
        with open(DOC) as f:
            doc = f.read()
        if BEGIN in doc and END in doc:
            doc = doc[:doc.index(BEGIN)] + out + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + out + "\n"
        with open(DOC, "w") as f:
            f.write(doc)
    ok = code == 0 and worst < 5.0
    print("soak %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
