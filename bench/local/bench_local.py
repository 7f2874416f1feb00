#!/usr/bin/env python3
"""Benchmarks of `asya up` (issue 4). Usage: bench_local.py [BUILD_DIR [pipeline|throughput|scaling|idle]]

1. throughput + latency: 3-actor pipeline of trivial Python handlers (2 replicas each, sqlite)
2. wake-up: first replica of a napping actor after its first message (vs pollingInterval + 2 s)
3. nap again: back to zero after the queue drains (vs cooldownPeriod + pollingInterval + 2 s)
4. idle cost: CPU of the supervisor of a fully napping 10-actor mesh over 30 s (target < 2%)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release"))
ASYA = os.path.join(BUILD, "bin", "asya")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from mesh import actor_yaml  # noqa: E402

HANDLERS = """
def a(p):
    return p
def b(p):
    return p
def c(p):
    return p
"""


class Up:
    def __init__(self, files):
        # BENCH_TMPDIR: where the state directory goes (the crew makes two directories per
        # envelope there; see docs/benchmarks.md on ext4 without a journal).
        base = os.environ.get("BENCH_TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="asya-bench-", dir=base)
        self.state = os.path.join(self.dir, "state")
        code = os.path.join(self.dir, "code")
        os.makedirs(code)
        with open(os.path.join(code, "h.py"), "w") as f:
            f.write(HANDLERS)
        for name, text in files.items():
            with open(os.path.join(code, name), "w") as f:
                f.write(text)
        self.log = open(os.path.join(self.dir, "up.log"), "wb")
        extra = ["--no-gateway"] if os.environ.get("BENCH_NO_GATEWAY") else []
        self.proc = subprocess.Popen([ASYA, "up", code, "--state-dir", self.state] + extra,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait(lambda: self.settled(), 60)

    def status(self):
        try:
            with open(os.path.join(self.state, "status.json")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def actor(self, name):
        for a in (self.status() or {}).get("actors", []):
            if a["name"] == name:
                return a
        return None

    def settled(self):
        st = self.status()
        return st is not None and all(a["ready"] == a["desired"] == a["total"] for a in st["actors"])

    def wait(self, pred, timeout, step=0.02):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(step)
        raise RuntimeError("timeout")

    def send(self, route, payloads):
        data = "\n".join(json.dumps(p) for p in payloads) + "\n"
        subprocess.run([ASYA, "send", route, "-", "--jsonl", "--state-dir", self.state],
                       input=data, text=True, check=True, capture_output=True)

    def results(self):
        root = os.path.join(self.state, "results")
        out = []
        for ts in os.listdir(root):
            for actor in os.listdir(os.path.join(root, ts)):
                for f in os.listdir(os.path.join(root, ts, actor)):
                    out.append((ts, os.path.join(root, ts, actor, f)))
        return out

    def count(self):
        n = 0
        for _, _, files in os.walk(os.path.join(self.state, "results")):
            n += len(files)
        return n

    def wait_count(self, n, timeout, step=0.05):
        """Waits until `n` results are stored. Cheap while the mesh works: the crew makes one
        timestamp directory per envelope (microseconds; two envelopes rarely share one), so one
        listdir of results/ tells when it is worth walking the whole tree (count() scans ~2
        directories per result: at 3,000 results, 20 times a second, that walk alone took a good
        part of one of the two CPUs away from the mesh it measures)."""
        root = os.path.join(self.state, "results")
        end = time.time() + timeout
        seen, changed = -1, time.time()
        while time.time() < end:
            try:
                dirs = len(os.listdir(root))
            except FileNotFoundError:
                dirs = 0
            now = time.time()
            if dirs != seen:
                seen, changed = dirs, now
            # Walk when there may be enough, or when the listing stopped growing (shared dirs).
            if (dirs >= n or now - changed > 1.0) and self.count() >= n:
                return True
            time.sleep(step)
        raise RuntimeError("timeout")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def ts_to_epoch(ts):
    import calendar
    base, frac = ts.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1e6


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def pipeline_files():
    """The pipeline's three manifests: (concurrency, replicas, {file: text}).

    BENCH_REPLICAS (default 2) and BENCH_CONCURRENCY (default 4; the runtime must serve as many
    connections as the sidecar keeps in flight, so it gets the same) are the bench's choices;
    BENCH_CONCURRENCY=default sets neither variable, so `asya up` decides."""
    conc = os.environ.get("BENCH_CONCURRENCY", "4")
    replicas = int(os.environ.get("BENCH_REPLICAS", "2"))
    env, sidecar_env = {}, {}
    if conc != "default":
        env, sidecar_env = {"ASYA_RUNTIME_CONCURRENCY": conc}, {"ASYA_SIDECAR_CONCURRENCY": conc}
    files = {n + ".yaml": actor_yaml(n, "h." + n, replicas=replicas, env=env,
                                     sidecar_env=sidecar_env)
             for n in ("a", "b", "c")}
    return conc, replicas, files


def bench_pipeline(only_throughput=False):
    conc, replicas, files = pipeline_files()
    print("asya-up pipeline: 3 actors x %d replicas, sidecar concurrency %s, sqlite" % (replicas, conc))
    up = Up(files)
    try:
        # Warm-up, then a burst of N (throughput), then a paced run (latency).
        up.send("a,b,c", [{"i": -1}])
        up.wait(lambda: up.count() >= 1, 30)
        n = 3000
        start = time.time()
        up.send("a,b,c", [{"i": i} for i in range(n)])
        if os.environ.get("BENCH_SLOW_COUNT"):  # the walk every 50 ms of before 2026-12-06
            up.wait(lambda: up.count() >= n + 1, 300, step=0.05)
        else:
            up.wait_count(n + 1, 300)
        elapsed = time.time() - start
        print("asya-up pipeline throughput: %d envelopes through 3 actors in %.2f s = %.0f envelopes/s "
              "(target >= 2000/s, issue 13) rate=%.0f" % (n, elapsed, n / elapsed, n / elapsed))
        if only_throughput:
            return
        before = up.count()
        m = 400
        rate = 100.0
        t0 = time.time()
        for i in range(m):
            target = t0 + i / rate
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            up.send("a,b,c", [{"lat": True, "sent": time.time()}])
        up.wait_count(before + m, 120)
        lats = []
        for ts, path in up.results():
            with open(path) as f:
                p = json.load(f)["payload"]
            if isinstance(p, dict) and p.get("lat"):
                lats.append(ts_to_epoch(ts) - p["sent"])
        print("asya-up pipeline latency (send -> stored by happy-end, %d envelopes at %d/s): "
              "p50 %.1f ms, p99 %.1f ms" % (len(lats), rate, pct(lats, 0.5) * 1e3, pct(lats, 0.99) * 1e3))
    finally:
        up.stop()


def bench_wake_and_nap():
    polling, cooldown = 2, 5
    files = {"nap.yaml": actor_yaml("nap", "h.a", scaling={
        "minReplicas": 0, "maxReplicas": 2, "pollingInterval": polling, "cooldownPeriod": cooldown})}
    up = Up(files)
    try:
        wakes, naps, firsts = [], [], []
        for _ in range(3):
            up.wait(lambda: up.actor("nap")["total"] == 0, 60)
            time.sleep(0.7)  # land at a random point of the polling cycle
            before = up.count()
            t = time.time()
            up.send("nap", [{"x": 1}])
            up.wait(lambda: up.actor("nap")["total"] >= 1, 30, step=0.01)
            wakes.append(time.time() - t)
            up.wait(lambda: up.count() > before, 30, step=0.01)
            firsts.append(time.time() - t)
            drained = time.time()
            up.wait(lambda: up.actor("nap")["total"] == 0, 60, step=0.05)
            naps.append(time.time() - drained)
        print("asya-up wake-up: first replica started %.2f / %.2f / %.2f s after the first message "
              "(target <= pollingInterval %d s + 2 s); its result stored after %.2f / %.2f / %.2f s"
              % (*wakes, polling, *firsts))
        print("asya-up nap: back to zero %.2f / %.2f / %.2f s after the queue drained "
              "(target <= cooldownPeriod %d s + pollingInterval %d s + 2 s = %d s)"
              % (*naps, cooldown, polling, cooldown + polling + 2))
    finally:
        up.stop()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def bench_idle():
    files = {"n%d.yaml" % i: actor_yaml("n%d" % i, "h.a", scaling={"minReplicas": 0, "maxReplicas": 2})
             for i in range(10)}
    up = Up(files)
    try:
        hz = os.sysconf("SC_CLK_TCK")
        pid = up.status()["pid"]
        time.sleep(2)
        t0, c0 = time.time(), cpu_ticks(pid)
        time.sleep(30)
        t1, c1 = time.time(), cpu_ticks(pid)
        share = (c1 - c0) / hz / (t1 - t0) * 100
        print("asya-up idle: supervisor of a napping 10-actor mesh used %.2f%% of one core over %.0f s "
              "(target < 2%%)" % (share, t1 - t0))
    finally:
        up.stop()


if __name__ == "__main__":
    if not os.path.exists(ASYA):
        sys.exit("build first: %s is missing" % ASYA)
    only = sys.argv[2] if len(sys.argv) > 2 else "all"
    if only in ("all", "pipeline"):
        bench_pipeline()
    if only == "throughput":  # the burst only (pairs of runs: ... | sed 's/.*rate=//')
        bench_pipeline(only_throughput=True)
    if only in ("all", "scaling"):
        bench_wake_and_nap()
    if only in ("all", "idle"):
        bench_idle()
