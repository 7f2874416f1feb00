#!/usr/bin/env python3
"""Per-message cost of asya_runtime.py against bench/py_echo_server.py (issue 13 row 1), for a
noisy machine: the servers run side by side and are measured in interleaved rounds (echo, then
each runtime file), reporting per message the server's CPU time (all threads, from
/proc/PID/task/*/schedstat), its context switches and the client's round-trip rate.

usage: python3 bench/python_runtime_cost.py REPS N NAME=RUNTIME_FILE...
  e.g. python3 bench/python_runtime_cost.py 11 3000 before=/tmp/asya_runtime_old.py \
           after=src/runtime/python/asya_runtime.py
Environment: MODE (conn, the default: a new connection per message; or persist),
UDS_CLIENT (default build/release/bin/asya-bench-uds-baseline).
System calls per message are not counted here: use `strace -c -f -p PID` or
`perf stat -e raw_syscalls:sys_enter -p PID` beside a client run.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UDS = os.environ.get("UDS_CLIENT") or os.path.join(ROOT, "build", "release", "bin",
                                                   "asya-bench-uds-baseline")


def cpu_ns(pid):
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def ctx_switches(pid):
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_socket(path):
    for _ in range(1000):
        if os.path.exists(path):
            return
        time.sleep(0.01)
    raise SystemExit("no socket " + path)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    reps, n = int(sys.argv[1]), int(sys.argv[2])
    mode = os.environ.get("MODE", "conn")
    variants = [("echo", None)] + [tuple(a.split("=", 1)) for a in sys.argv[3:]]
    work = tempfile.mkdtemp(prefix="asya-pycost-")
    servers = []
    for name, path in variants:
        d = os.path.join(work, name)
        os.makedirs(d)
        if path is None:
            sock = os.path.join(d, "py.sock")
            cmd, env = [sys.executable, os.path.join(ROOT, "bench", "py_echo_server.py"), sock], None
        else:
            sock = os.path.join(d, "asya-runtime.sock")
            cmd = [sys.executable, os.path.abspath(path)]
            env = dict(os.environ, ASYA_SOCKET_DIR=d, ASYA_HANDLER="noop_handler.noop",
                       ASYA_LOG_LEVEL="WARNING", PYTHONPATH=os.path.join(ROOT, "bench"))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append((name, proc, sock))
    try:
        for _, _, sock in servers:
            wait_socket(sock)
            subprocess.run([UDS, "client", sock, "500", mode, "1024"], stdout=subprocess.DEVNULL,
                           check=True)  # warm-up
        res = {name: [] for name, _, _ in servers}
        for r in range(reps):
            order = servers if r % 2 == 0 else [servers[0]] + servers[:0:-1]
            for name, proc, sock in order:
                c0, s0 = cpu_ns(proc.pid), ctx_switches(proc.pid)
                out = subprocess.run([UDS, "client", sock, str(n), mode, "1024"], check=True,
                                     capture_output=True, text=True).stdout
                c1, s1 = cpu_ns(proc.pid), ctx_switches(proc.pid)
                rate = int(out.split("rate=")[1].split()[0])
                res[name].append(((c1 - c0) / 1e3 / n, (s1 - s0) / n, rate))
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            print("round %d (load %s): " % (r, load)
                  + "  ".join("%s %.1f us %.2f cs %d/s" % (k, *v[-1]) for k, v in res.items()),
                  flush=True)
        for k, v in res.items():
            print("%s: median CPU %.1f us/message, %.2f context switches/message, %d/s" % (
                k, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                statistics.median(x[2] for x in v)))
        for k in list(res)[1:]:
            cpu = [e[0] / a[0] for e, a in zip(res["echo"], res[k])]
            rate = [a[2] / e[2] for e, a in zip(res["echo"], res[k])]
            print("%s: echo CPU / runtime CPU, median of rounds %.2f; runtime rate / echo rate, "
                  "median of rounds %.2f (%s)" % (k, statistics.median(cpu), statistics.median(rate),
                                                  " ".join("%.2f" % x for x in rate)))
    finally:
        for _, proc, _ in servers:
            proc.terminate()
        for _, proc, _ in servers:
            proc.wait()


if __name__ == "__main__":
    main()
