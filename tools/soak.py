#!/usr/bin/env python3
"""`make soak`: half of the measured capacity through the checker's 3-actor pipeline for 30 min.

Usage: tools/soak.py [--asya BIN] [--seconds S] [--capacity-envelopes N] [--transport T]
                     [--warmup S] [--sample-interval S] [--samples FILE] [--dry-run]

1. Capacity: `asya check --envelopes N` (no faults, all at once): envelopes per second of the run.
2. Soak: `asya check --envelopes rate*S --rate rate --stats` at rate = capacity / 2; the checker
   prints a progress line every 2 s.
3. While it runs, every process of the mesh (the `asya up` supervisor and each sidecar and
   runtime, found under the checker's process) is sampled every --sample-interval seconds (30):
   RSS and its open file descriptors, each classified by what it points at (socket, pipe, eventfd,
   the queue database and its -wal/-shm, a wake-up FIFO, a log file, ...). The samples go to
   --samples (JSON lines) as evidence.
4. Growth is measured between two samples taken under the same load: *start* = the first sample
   after --warmup seconds (60: each sidecar opens its runtime connections on first use, one per
   call in flight, so the pools fill in the first ~30 s), *end* = a sample taken ~10 s before the
   last envelope is published (the mesh still at the soak rate). Counted: every descriptor but a
   sqlite wake-up FIFO, which a sidecar holds only while a receive waits (whether a sample sees
   it is chance). Growth made only of runtime connections within the sidecar's
   ASYA_SIDECAR_CONCURRENCY is reported as a pool filling, not counted. The checker's own
   `stats end` line (after the pipeline drained, idle) is reported beside them.
5. Writes the `## Soak` section of docs/reliability.md (between the soak markers): throughput over
   time (ten windows), RSS and fds per process (start, end, growth, and the min/max over all
   samples after the warm-up), the descriptor kinds that differ between start and end, and the
   checker's result.
Exit 0 when the checker passed and no process grew by 5 % or more (RSS or fds) from start to end.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "reliability.md")
BEGIN = "<!-- soak:begin -->"
END = "<!-- soak:end -->"
SUMMARY = re.compile(r"summary: (\d+) envelopes, (\d+) expected outputs, (\d+) arrived, "
                     r"(\d+) dead-lettered, (\d+) faults, ([\d.]+) s")
RESULT = re.compile(r"^lost=(\d+) duplicated=(\d+) unexpected=(\d+)$", re.M)
PROGRESS = re.compile(r"^\[\s*([\d.]+)s\] progress: published (\d+)/(\d+), outputs (\d+)/\d+",
                      re.M)
STATS = re.compile(r"stats (start|end): (.+?)\s+pid (\d+)\s+rss\s+(\d+) kB\s+fds\s+(\d+)")


# ---- /proc sampling ---------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def children_map():
    """ppid -> [pid] for every live process."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read("/proc/%s/stat" % name)
        if not stat:
            continue
        text = stat.decode(errors="replace")
        rest = text[text.rfind(")") + 2:].split()
        if rest[0] == "Z":
            continue
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def descendants(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def label_of(pid):
    """'<actor>/<replica> sidecar|runtime', 'asya up (supervisor)', or None (not a mesh process)."""
    cmd = _read("/proc/%d/cmdline" % pid)
    env = _read("/proc/%d/environ" % pid)
    if cmd is None or env is None:
        return None
    argv = [a.decode(errors="replace") for a in cmd.split(b"\0") if a]
    if not argv:
        return None
    envs = dict(e.decode(errors="replace").split("=", 1) for e in env.split(b"\0") if b"=" in e)
    exe = os.path.basename(argv[0])
    if exe == "asya" and len(argv) > 1 and argv[1] == "up":
        return "asya up (supervisor)"
    sock = envs.get("ASYA_SOCKET_DIR")
    if not sock:
        return None
    replica = os.path.basename(sock.rstrip("/"))
    m = re.match(r"^(.*)-(\d+)$", replica)
    name = "%s/%s" % (m.group(1), m.group(2)) if m else replica
    if exe == "asya-sidecar":
        try:
            CONCURRENCY[name] = int(envs.get("ASYA_SIDECAR_CONCURRENCY", "1"))
        except ValueError:
            pass
    return "%s %s" % (name, "sidecar" if exe == "asya-sidecar" else "runtime")


# '<actor>/<replica>' -> the sidecar's ASYA_SIDECAR_CONCURRENCY: it bounds the runtime connections
# the sidecar keeps (one per call in flight, pooled) and so the sockets of both processes.
CONCURRENCY = {}


def socket_bound(label):
    """Most sockets `label` can hold by design: the sidecar's pooled runtime connections (one per
    concurrent call); the runtime, those plus its listening socket. None when unknown."""
    name, _, kind = label.rpartition(" ")
    c = CONCURRENCY.get(name)
    if c is None:
        return None
    return c if kind == "sidecar" else c + 1 if kind == "runtime" else None


def counted(sample):
    """Descriptors that count for growth: all but a wake-up FIFO (held only while a receive
    waits, so whether a sample sees it is chance)."""
    return sample["fds"] - sample["kinds"].get("wake FIFO", 0)


def fd_kind(target):
    for prefix, kind in (("socket:", "socket"), ("pipe:", "pipe"),
                         ("anon_inode:[eventfd]", "eventfd"),
                         ("anon_inode:[eventpoll]", "epoll"), ("anon_inode:[timerfd]", "timerfd"),
                         ("anon_inode:[signalfd]", "signalfd"), ("anon_inode:inotify", "inotify"),
                         ("anon_inode:", "anon")):
        if target.startswith(prefix):
            return kind
    base = os.path.basename(target)
    if target.startswith("/dev/") and not target.startswith("/dev/shm/"):
        return target
    if ".wake/" in target:
        return "wake FIFO"
    if base.endswith("-wal"):
        return "sqlite -wal"
    if base.endswith("-shm"):
        return "sqlite -shm"
    if base.endswith(".db") or base.endswith(".sqlite"):
        return "sqlite db"
    if base.endswith(".log"):
        return "log file"
    if base.endswith(".py") or base.endswith(".pyc"):
        return "python file"
    return "file " + base


def sample_process(pid):
    status = _read("/proc/%d/status" % pid)
    if status is None:
        return None
    m = re.search(rb"VmRSS:\s+(\d+)", status)
    rss = int(m.group(1)) if m else 0
    kinds = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    for n in names:
        try:
            k = fd_kind(os.readlink("/proc/%d/fd/%s" % (pid, n)))
        except OSError:
            continue  # closed between listdir and readlink
        kinds[k] = kinds.get(k, 0) + 1
    return {"pid": pid, "rss": rss, "fds": sum(kinds.values()), "kinds": kinds}


class Sampler(threading.Thread):
    """Samples every mesh process under `root` every `interval` seconds (and on request)."""

    def __init__(self, root, interval, path):
        super().__init__(daemon=True)
        self.root, self.interval, self.path = root, interval, path
        self.t0 = time.monotonic()
        self.samples = []  # {"t": seconds, "why": str, "procs": {label: sample}}
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.pending = []
        self.lock = threading.Lock()
        self.out = open(path, "w")

    def request(self, why):
        with self.lock:
            self.pending.append(why)
        self.wake.set()

    def take(self, why):
        procs = {}
        for pid in descendants(self.root):
            label = label_of(pid)
            if label is None:
                continue
            s = sample_process(pid)
            if s is not None:
                procs[label] = s
        if not procs:
            return
        rec = {"t": round(time.monotonic() - self.t0, 1), "why": why, "load": os.getloadavg()[0],
               "procs": procs}
        with self.lock:
            self.samples.append(rec)
        self.out.write(json.dumps(rec, sort_keys=True) + "\n")
        self.out.flush()

    def run(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            timeout = max(0.0, next_at - time.monotonic())
            self.wake.wait(timeout)
            self.wake.clear()
            with self.lock:
                pending, self.pending = self.pending, []
            for why in pending:
                self.take(why)
            if time.monotonic() >= next_at:
                self.take("periodic")
                next_at += self.interval
        self.out.close()


# ---- runs -------------------------------------------------------------------------------------

def run(cmd, log_path, on_line=None, on_start=None):
    print("+ " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        if on_start:
            on_start(proc)
        out = []
        for line in proc.stdout:
            out.append(line)
            log.write(line)
            if on_line:
                on_line(line)
            if "progress:" in line or "summary:" in line or "stats" in line or "lost=" in line:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
    return proc.returncode, "".join(out)


def growth(a, b):
    return 100.0 * (b - a) / a if a else 0.0


def kinds_diff(k0, k1):
    """'+1 wake FIFO, -1 socket' for the kinds whose counts differ."""
    parts = []
    for k in sorted(set(k0) | set(k1)):
        d = k1.get(k, 0) - k0.get(k, 0)
        if d:
            parts.append("%+d %s" % (d, k))
    return ", ".join(parts) or "same"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asya", default=os.path.join(ROOT, "build", "bin", "asya"))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "1800")))
    ap.add_argument("--capacity-envelopes", type=int,
                    default=int(os.environ.get("SOAK_CAPACITY_ENVELOPES", "3000")))
    ap.add_argument("--transport", default=os.environ.get("SOAK_TRANSPORT", "sqlite"))
    ap.add_argument("--warmup", type=float, default=float(os.environ.get("SOAK_WARMUP", "60")))
    ap.add_argument("--sample-interval", type=float,
                    default=float(os.environ.get("SOAK_SAMPLE_INTERVAL", "30")))
    ap.add_argument("--samples", default="/tmp/asya-soak-samples.jsonl")
    ap.add_argument("--capacity", type=float, default=0,
                    help="skip the capacity run and use this many envelopes/s")
    ap.add_argument("--dry-run", action="store_true", help="print the section, do not write it")
    args = ap.parse_args()

    if args.capacity > 0:
        capacity = args.capacity
        capacity_note = "given (--capacity)"
    else:
        code, text = run([args.asya, "check", "--envelopes", str(args.capacity_envelopes),
                          "--transport", args.transport], "/tmp/asya-soak-capacity.log")
        s = SUMMARY.search(text)
        if code != 0 or s is None:
            print("capacity run failed (exit %d); see /tmp/asya-soak-capacity.log" % code)
            return 1
        capacity = int(s.group(1)) / max(float(s.group(6)), 0.001)
        capacity_note = "%d envelopes at once, no faults" % args.capacity_envelopes
    rate = capacity / 2
    n = max(1, int(rate * args.seconds))
    print("capacity %.1f envelopes/s; soaking at %.1f/s for %.0f s (%d envelopes)"
          % (capacity, rate, args.seconds, n), flush=True)
    load_before = os.getloadavg()
    holder = {}

    def on_start(proc):
        holder["sampler"] = Sampler(proc.pid, args.sample_interval, args.samples)
        holder["sampler"].start()

    def on_line(line):
        # End of the load: about 10 s of envelopes left to publish (the progress line that says
        # all are published is the end-of-run line, printed once the mesh is already stopping).
        m = PROGRESS.search(line)
        if (m and int(m.group(3)) - int(m.group(2)) <= rate * 10 and "end_requested" not in holder
                and "end of run" not in line):
            holder["end_requested"] = True
            holder["sampler"].request("end of load")

    code, text = run([args.asya, "check", "--envelopes", str(n), "--rate", "%.3f" % rate,
                      "--transport", args.transport, "--stats"], "/tmp/asya-soak.log",
                     on_line=on_line, on_start=on_start)
    sampler = holder["sampler"]
    sampler.stop.set()
    sampler.wake.set()
    sampler.join()
    load_after = os.getloadavg()
    s = SUMMARY.search(text)
    r = RESULT.search(text)
    if s is None or r is None:
        print("soak run did not finish (exit %d); see /tmp/asya-soak.log" % code)
        return 1

    # Throughput over time: outputs per second in ten windows.
    points = [(float(t), int(o)) for t, _p, _n, o in PROGRESS.findall(text)]
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

    # Start (after the warm-up) and end (last envelope published) samples.
    samples = sampler.samples
    start = next((x for x in samples if x["t"] >= args.warmup), None)
    end = next((x for x in samples if x["why"] == "end of load"), None)
    if end is None:  # the end-of-load request was missed: the last sample of the load
        loaded = [x for x in samples if x["why"] == "periodic"]
        end = loaded[-2] if len(loaded) >= 2 else None
    idle = {}
    for when, label, pid, rss, fds in STATS.findall(text):
        if when == "end":
            idle[label.strip()] = (int(pid), int(rss), int(fds))
    rows, kind_rows, pooled = [], [], []
    worst = 0.0
    if start is None or end is None or start is end:
        print("too few samples (run shorter than the warm-up?)")
        return 1
    after = [x for x in samples if start["t"] <= x["t"] <= end["t"]]
    for label in sorted(set(start["procs"]) | set(end["procs"])):
        a, b = start["procs"].get(label), end["procs"].get(label)
        if a is None or b is None:
            rows.append("| %s | %s |" % (label, "not in both samples"))
            continue
        g_rss, g_fds = growth(a["rss"], b["rss"]), growth(counted(a), counted(b))
        same = "" if a["pid"] == b["pid"] else " (restarted)"
        # Growth made only of runtime connections up to the design bound is a pool filling (an
        # end actor that sees one output in twenty reaches a new number of calls at once now and
        # then): reported, not counted. Anything else, or more sockets than the bound, counts.
        d_sock = b["kinds"].get("socket", 0) - a["kinds"].get("socket", 0)
        bound = socket_bound(label)
        pool_only = (g_fds >= 5.0 and bound is not None and d_sock == counted(b) - counted(a)
                     and b["kinds"].get("socket", 0) <= bound)
        if pool_only:
            pooled.append("%s (%d → %d sockets, at most %d)" % (
                label, a["kinds"].get("socket", 0), b["kinds"].get("socket", 0), bound))
        worst = max(worst, g_rss, 0.0 if pool_only else g_fds)
        fds_all = [counted(x["procs"][label]) for x in after if label in x["procs"]]
        rss_all = [x["procs"][label]["rss"] for x in after if label in x["procs"]]
        i = idle.get(label)
        rows.append("| %s%s | %d | %d | %+.1f%% | %d–%d | %d | %d | %+.1f%% | %d–%d | %s |"
                    % (label, same, a["rss"], b["rss"], g_rss, min(rss_all), max(rss_all),
                       counted(a), counted(b), g_fds, min(fds_all), max(fds_all),
                       "%d kB, %d fds" % (i[1], i[2]) if i else "–"))
        kind_rows.append("| %s | %s | %s |" % (
            label, ", ".join("%d %s" % (c, k) for k, c in sorted(b["kinds"].items())),
            kinds_diff(a["kinds"], b["kinds"])))
    lost, dup, unexpected = r.groups()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    section = [
        BEGIN,
        "Run %s (commit %s), transport %s: capacity %.1f envelopes/s (%s); soak at %.1f "
        "envelopes/s (%.1f outputs/s) for %.0f s: %s envelopes in %.0f s. Load average "
        "(1/5/15 min) %.1f/%.1f/%.1f before, %.1f/%.1f/%.1f after (2 cores shared)."
        % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), commit, args.transport,
           capacity, capacity_note, rate, 2 * rate, args.seconds, s.group(1), float(s.group(6)),
           *load_before, *load_after),
        "",
        "Checker: `lost=%s duplicated=%s unexpected=%s` (%s expected outputs, %s dead-lettered)."
        % (lost, dup, unexpected, s.group(2), s.group(4)),
        "",
        "| window (s) | outputs/s |",
        "|---|---|",
    ] + ["| %.0f–%.0f | %.1f |" % w for w in windows] + [
        "",
        "Start = sample at %.0f s (after a %.0f s warm-up), end = sample at %.0f s (~10 s of "
        "envelopes left to publish, the mesh still at the soak rate); min–max over the %d "
        "samples between them (every %.0f s); idle = the checker's `stats end` after the pipeline "
        "drained." % (start["t"], args.warmup, end["t"], len(after), args.sample_interval),
        "",
        "| process | RSS start (kB) | RSS end (kB) | growth | RSS min–max | fds start | fds end "
        "| growth | fds min–max | idle after drain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ] + rows + [
        "",
        "| process | descriptors at the end | end − start |",
        "|---|---|---|",
    ] + kind_rows + [
        "",
        "fds = open descriptors except a wake-up FIFO (the sqlite transport holds one only while "
        "a receive waits; the last table shows them). Pooled runtime connections within the "
        "bound (one per concurrent call, `ASYA_SIDECAR_CONCURRENCY`): %s."
        % ("; ".join(pooled) if pooled else "no growth of that kind"),
        "",
        "Largest counted growth start → end: %.1f%% (limit 5%%). Samples: `%s`."
        % (worst, args.samples),
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
