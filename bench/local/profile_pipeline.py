#!/usr/bin/env python3
"""Where an `asya up` pipeline envelope's cost goes: counts per envelope, robust to machine noise.

Usage: profile_pipeline.py [BUILD_DIR] [N]   (root or perf_event_paranoid <= 1; perf on PATH)

Starts the bench/local pipeline mesh (3 Python actors x 2 replicas + happy-end, sqlite;
BENCH_REPLICAS / BENCH_CONCURRENCY change the bench's 2 replicas / concurrency 4;
BENCH_CONCURRENCY=default leaves the concurrency to `asya up`), warms it
up, then sends N envelopes with one `asya send` and, over every process of the mesh plus that
`asya send`, counts per envelope:
  - CPU time (utime+stime from /proc) and context switches (voluntary = blocking waits, i.e.
    wake-ups; involuntary = preemptions), per kind of process;
  - system calls (perf stat, raw_syscalls:sys_enter), per kind of process;
  - SQLite transactions: BEGIN IMMEDIATE (write) / BEGIN (read) / COMMIT / SAVEPOINT, counted
    with uprobes on libsqlite3's sqlite3_exec (the store) and on the sqlite transport's
    Database::Run in bin/asya and bin/asya-sidecar (its cached BEGIN/COMMIT/SAVEPOINT
    statements); autocommit statements are not counted.
Prints one table. Timing-free: the figures are counts, so a loaded machine changes them little
(except batch sizes, which grow when processes fall behind).
"""
import collections
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_local  # noqa: E402
from bench_local import Up  # noqa: E402

SQLITE_LIB = "/lib/x86_64-linux-gnu/libsqlite3.so.0"
PROBE = "probe_libsqlite3:sqlite3_exec"
# The sqlite transport runs BEGIN/COMMIT/SAVEPOINT as cached statements through
# asya::transport::sqlite::Database::Run(const char*), which returns a Status through a hidden
# pointer: the SQL text is its third register argument (%dx).
RUN_SYMBOL = "_ZN4asya9transport6sqlite8Database3RunEPKc"
RUN_GROUP = "asya_sqlite"


def add_probes(build):
    """Adds the uprobes; returns the perf -e arguments that record them."""
    subprocess.run(["perf", "probe", "-q", "-x", SQLITE_LIB, "--add",
                    "sqlite3_exec sql=+0(%si):string"], capture_output=True)
    events = ["-e", PROBE]
    for exe in ("asya", "asya-sidecar"):
        event = "%s:%s" % (RUN_GROUP, exe.replace("-", "_"))
        subprocess.run(["perf", "probe", "-q", "-d", event], capture_output=True)
        added = subprocess.run(["perf", "probe", "-q", "--no-demangle", "-x",
                                os.path.join(build, "bin", exe), "--add",
                                "%s=%s sql=+0(%%dx):string" % (event, RUN_SYMBOL)],
                               capture_output=True)
        if added.returncode == 0:
            events += ["-e", event]
    return events


def session_pids(sid):
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # session id
            out[int(d)] = comm
    return out


def kind(pid, comm):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        argv = []
    if comm == "asya-sidecar":
        env = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
        actor = [e for e in env if e.startswith(b"ASYA_ACTOR_NAME=")]
        name = actor[0].split(b"=", 1)[1].decode() if actor else "?"
        return "sidecar " + ("crew" if name.endswith("-end") else "actor")
    if comm.startswith("python"):
        return "python runtime"
    if comm == "asya-crew":
        return "crew runtime"
    if comm == "asya" and any(a == b"up" for a in argv):
        return "asya up (supervisor)"
    return comm


def proc_counts(pid):
    """utime+stime ticks, voluntary and involuntary context switches of all threads."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])
        vol = inv = 0
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        inv += int(line.split()[1])
        return cpu, vol, inv
    except (OSError, ValueError):
        return 0, 0, 0


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        HERE, "..", "..", "build", "release"))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    bench_local.ASYA = os.path.join(build, "bin", "asya")
    probe_events = add_probes(build)
    conc, replicas, files = bench_local.pipeline_files()  # BENCH_REPLICAS, BENCH_CONCURRENCY
    up = Up(files)
    tmp = up.dir
    try:
        up.send("a,b,c", [{"i": -1}])
        up.wait(lambda: up.count() >= 1, 60)
        time.sleep(1)
        pids = session_pids(up.proc.pid)
        kinds = {p: kind(p, c) for p, c in pids.items()}
        before = {p: proc_counts(p) for p in pids}
        pidlist = ",".join(str(p) for p in pids)
        stat_out = os.path.join(tmp, "perf-stat.txt")
        probe_out = os.path.join(tmp, "perf-probe.data")
        pstat = subprocess.Popen(["perf", "stat", "--per-thread", "-x", ",", "-o", stat_out,
                                  "-e", "raw_syscalls:sys_enter", "-p", pidlist],
                                 start_new_session=True)
        precord = subprocess.Popen(["perf", "record", "-q"] + probe_events +
                                   ["-o", probe_out, "-p", pidlist], start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        extra = []
        if os.environ.get("PERF_RECORD"):  # CPU profile of the mesh: perf report -i FILE
            extra.append(subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-o",
                                           os.environ["PERF_RECORD"], "-p", pidlist],
                                          start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        if os.environ.get("STRACE_OUT"):  # strace -c of one actor sidecar (all its threads)
            sc = [p for p in pids if kinds[p] == "sidecar actor"][0]
            extra.append(subprocess.Popen(["strace", "-c", "-f", "-o", os.environ["STRACE_OUT"],
                                           "-p", str(sc)], start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if os.environ.get("TRACE_KIND"):  # perf trace -s of every process of that kind
            tp = ",".join(str(p) for p in pids if kinds[p] == os.environ["TRACE_KIND"])
            trace_out = os.path.join(tmp, "perf-trace.txt")
            extra.append(subprocess.Popen(["perf", "trace", "-s", "-o", trace_out, "-p", tp],
                                          start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        payloads = "\n".join('{"i": %d}' % i for i in range(n)) + "\n"
        send_stat = os.path.join(tmp, "perf-send.txt")
        send_probe = os.path.join(tmp, "perf-send-probe.data")
        t0 = time.time()
        subprocess.run(["perf", "record", "-q"] + probe_events + ["-o", send_probe, "--",
                        "perf", "stat", "-x", ",", "-o", send_stat, "-e",
                        "raw_syscalls:sys_enter,context-switches,task-clock", "--",
                        bench_local.ASYA, "send", "a,b,c", "-", "--jsonl", "--state-dir",
                        up.state], input=payloads, text=True, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up.wait_count(n + 1, 600, step=0.1)
        elapsed = time.time() - t0
        after = {p: proc_counts(p) for p in pids}
        for p in [pstat, precord] + extra:
            os.kill(p.pid, signal.SIGINT)
            p.wait()
        hz = os.sysconf("SC_CLK_TCK")
        rows = collections.OrderedDict()

        def row(k):
            return rows.setdefault(k, {"procs": 0, "cpu": 0.0, "vol": 0, "inv": 0, "sys": 0,
                                       "wtx": 0, "rtx": 0, "commit": 0, "savepoint": 0})
        for p in pids:
            r = row(kinds[p])
            r["procs"] += 1
            b, a = before[p], after[p]
            r["cpu"] += (a[0] - b[0]) / hz
            r["vol"] += a[1] - b[1]
            r["inv"] += a[2] - b[2]
        tid_kind = {}
        for p in pids:
            try:
                for t in os.listdir("/proc/%d/task" % p):
                    tid_kind[int(t)] = kinds[p]
            except OSError:
                pass
        with open(stat_out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 3 or "raw_syscalls" not in line:
                    continue
                comm_tid, value = parts[0], parts[1]
                tid = int(comm_tid.rsplit("-", 1)[1])
                if value.isdigit():
                    row(tid_kind.get(tid, "?"))["sys"] += int(value)
        send = row("asya send")
        send["procs"] = 1
        with open(send_stat) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 3:
                    continue
                if parts[2] == "raw_syscalls:sys_enter":
                    send["sys"] += int(parts[0])
                elif parts[2] == "context-switches":
                    send["vol"] += int(parts[0])
                elif parts[2] == "task-clock":
                    send["cpu"] += float(parts[0]) / 1000
        for data, default in ((probe_out, None), (send_probe, "asya send")):
            script = subprocess.run(["perf", "script", "-i", data], capture_output=True,
                                    text=True).stdout
            for line in script.splitlines():
                try:
                    tid = int(line.split()[1])
                except (IndexError, ValueError):
                    continue
                r = row(default or tid_kind.get(tid, "?"))
                sql = line.split('sql="', 1)[1].rstrip('"') if 'sql="' in line else ""
                if sql == "BEGIN IMMEDIATE":
                    r["wtx"] += 1
                elif sql == "BEGIN":
                    r["rtx"] += 1
                elif sql == "COMMIT":
                    r["commit"] += 1
                elif sql.startswith("SAVEPOINT"):
                    r["savepoint"] += 1
        print("pipeline profile: %d envelopes, 3 actors x %d replicas, concurrency %s; %.1f s "
              "(load %s)" % (n, replicas, conc, elapsed, open("/proc/loadavg").read().split()[0]))
        print("%-22s %5s %9s %8s %8s %8s %8s %8s %8s %8s" % (
            "per envelope", "procs", "cpu us", "wakeups", "preempt", "syscalls", "write tx",
            "read tx", "commits", "savepts"))
        tot = collections.Counter()
        for k, r in rows.items():
            print("%-22s %5d %9.0f %8.2f %8.2f %8.1f %8.2f %8.2f %8.2f %8.2f" % (
                k, r["procs"], r["cpu"] / n * 1e6, r["vol"] / n, r["inv"] / n, r["sys"] / n,
                r["wtx"] / n, r["rtx"] / n, r["commit"] / n, r["savepoint"] / n))
            for key in ("cpu", "vol", "inv", "sys", "wtx", "rtx", "commit", "savepoint"):
                tot[key] += r[key]
        print("%-22s %5s %9.0f %8.2f %8.2f %8.1f %8.2f %8.2f %8.2f %8.2f" % (
            "total", "", tot["cpu"] / n * 1e6, tot["vol"] / n, tot["inv"] / n, tot["sys"] / n,
            tot["wtx"] / n, tot["rtx"] / n, tot["commit"] / n, tot["savepoint"] / n))
        if os.environ.get("TRACE_KIND"):
            calls = collections.Counter()
            for line in open(trace_out):
                parts = line.split()
                if len(parts) >= 3 and parts[1].isdigit() and parts[0].isidentifier():
                    calls[parts[0]] += int(parts[1])
            print("system calls per envelope of all %s processes: %s" % (
                os.environ["TRACE_KIND"],
                ", ".join("%s %.2f" % (k, v / n) for k, v in calls.most_common())))
    finally:
        up.stop()


if __name__ == "__main__":
    main()
