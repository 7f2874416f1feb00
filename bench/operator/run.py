#!/usr/bin/env python3
"""asya-operator at scale on the fake API server (issue 9: 1,000 actors to steady state in < 60 s
with < 100 MB RSS; a resync of 1,000 unchanged actors makes no writes).

Half the actors run one replica without autoscaling (steady = Running), half autoscale from zero
(steady = Napping). Queue management is off: this measures the operator against the API, not a
broker. The fake API server (Python) runs in its own process; its own slowness is part of the wall
time, so the operator's CPU time is printed too.

Phase 1: one operator with the default periodic resync (ASYA_RESYNC_PERIOD 5m) brings the 1,000
actors to steady state; the bench follows their status through a watch (a list of 1,000 actors
every half second would cost the fake API server more than the operator does).
Phase 2: that operator is stopped and a new one started with a 10 s resync; the writes of its
start-up pass over the unchanged actors (restart idempotence) and of its first periodic resync
are counted through the fake's audit log: the target is none.

Environment: BUILD_DIR (build/release), OPERATOR_N (1000), OPERATOR_WORKERS (10).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build", "release"))
N = int(os.environ.get("OPERATOR_N", "1000"))
WORKERS = os.environ.get("OPERATOR_WORKERS", "10")
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))
from fakeapi_testlib import ACTORS, CRD_PATH, Client  # noqa: E402


def actor(i):
    name = "bench-%04d" % i
    spec = {"transport": "rabbitmq",
            "workload": {"template": {"spec": {"containers": [
                {"name": "asya-runtime", "image": "handler:1",
                 "env": [{"name": "ASYA_HANDLER", "value": "h.process"}]}]}}}}
    spec["scaling"] = {"enabled": False} if i % 2 == 0 else {"minReplicas": 0, "maxReplicas": 2}
    return {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class Steady:
    """Counts actors in their steady status (observedGeneration current), from a watch."""

    def __init__(self, client):
        self.c = client
        self.state = {}
        self.cond = threading.Condition()
        self.error = None

    @staticmethod
    def _is_steady(a):
        st = a.get("status") or {}
        want = "Running" if a["spec"].get("scaling", {}).get("enabled") is False else "Napping"
        return st.get("status") == want and \
            st.get("observedGeneration") == a["metadata"]["generation"]

    def done(self):
        with self.cond:
            return sum(self.state.values())

    def start(self):
        lst = self.c.get(ACTORS.format(ns="default")).body
        with self.cond:
            for a in lst["items"]:
                self.state[a["metadata"]["name"]] = self._is_steady(a)
        threading.Thread(target=self._run, args=(lst["metadata"]["resourceVersion"],),
                         daemon=True).start()

    def _run(self, rv):
        try:
            for ev in self.c.watch(ACTORS.format(ns="default"),
                                   {"resourceVersion": rv, "allowWatchBookmarks": "true"}):
                if ev["type"] in ("ADDED", "MODIFIED"):
                    with self.cond:
                        self.state[ev["object"]["metadata"]["name"]] = self._is_steady(ev["object"])
                        self.cond.notify_all()
                elif ev["type"] not in ("BOOKMARK",):
                    raise RuntimeError("watch: %s" % ev)
            raise RuntimeError("watch ended")
        except Exception as e:  # reported by wait()
            with self.cond:
                self.error = e
                self.cond.notify_all()

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(self.state.values()) < n:
                if self.error is not None:
                    raise SystemExit("operator bench: %s" % self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))
        return True


def proc_stat(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(out["VmHWM"].split()[0]) // 1024, cpu_s, int(fields[12]) / os.sysconf("SC_CLK_TCK")


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
    return 0


def start_operator(tmp, kubeconfig, resync):
    env = dict(os.environ, KUBECONFIG=kubeconfig, ASYA_DISABLE_QUEUE_MANAGEMENT="true",
               ASYA_TRANSPORT_CONFIG=json.dumps({"transports": {"rabbitmq": {
                   "type": "rabbitmq", "config": {"host": "rabbitmq"}}}}),
               ASYA_RUNTIME_SCRIPT_PATH=os.path.join(ROOT, "src/runtime/python/asya_runtime.py"),
               ASYA_HEALTH_ADDR="127.0.0.1:0", ASYA_METRICS_ADDR="0", ASYA_LOG_LEVEL="warn",
               ASYA_MAX_CONCURRENT_RECONCILES=WORKERS, ASYA_RESYNC_PERIOD=resync)
    env["ASYA_LOG_LEVEL"] = "info"
    path = os.path.join(tmp, "operator-%d.log" % len(os.listdir(tmp)))
    log = open(path, "ab")
    p = subprocess.Popen([os.path.join(BUILD, "bin", "asya-operator")], env=env, stdout=log,
                         stderr=log, stdin=subprocess.DEVNULL)
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            for line in f:
                if "health on port" in line:
                    port = int(line.rsplit(" ", 1)[1].strip().strip('"'))
        time.sleep(0.05)
    return p, port


def main():
    tmp = tempfile.mkdtemp(prefix="asya-opbench-")
    ready = os.path.join(tmp, "port")
    kubeconfig = os.path.join(tmp, "kubeconfig")
    fake = subprocess.Popen(
        [sys.executable, "-m", "fakeapi", "--port", "0", "--crd", CRD_PATH, "--ready-file", ready,
         "--kubeconfig", kubeconfig, "--bookmark-interval", "5", "--event-window", "200000"],
        cwd=os.path.join(ROOT, "tests", "k8s"), stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tmp, "fake.log"), "wb"))
    ops = []
    try:
        while not os.path.exists(ready):
            time.sleep(0.05)
        with open(ready) as f:
            c = Client("http://127.0.0.1:%s" % f.read().strip())
        # The simulated controllers react to events; their periodic full pass (a safety net,
        # every 10 s by default) would go over every workload and ScaledObject several times
        # during the run, which no real controller does that often.
        c.post("/fake/controllers", {"resyncSeconds": float(os.environ.get(
            "FAKE_CONTROLLER_RESYNC", "300"))})
        for i in range(N):
            r = c.post(ACTORS.format(ns="default"), actor(i))
            assert r.code == 201, r
        watcher = Steady(c)
        watcher.start()
        t0 = time.monotonic()
        _, fake_cpu0, fake_sys0 = proc_stat(fake.pid)
        op, port = start_operator(tmp, kubeconfig, os.environ.get("OPERATOR_RESYNC", "5m"))
        ops.append(op)
        if not watcher.wait(N, float(os.environ.get("OPERATOR_TIMEOUT", "300"))):
            import collections
            items = c.get(ACTORS.format(ns="default")).body["items"]
            print(collections.Counter(a.get("status", {}).get("status") for a in items))
            print(json.dumps(items[0].get("status"))[:2000])
            raise SystemExit("operator bench: not steady in time (%d/%d)" % (watcher.done(), N))
        wall = time.monotonic() - t0
        rss, cpu, sys_s = proc_stat(op.pid)
        _, fake_cpu, fake_sys = proc_stat(fake.pid)
        print("asya-operator N=%d: steady state in %.1f s wall, %.1f s operator CPU (%.1f s system), "
              "%d MB peak RSS (targets < 60 s, < 100 MB); the fake API server (Python) used %.1f s "
              "CPU (%.1f s system); load %s"
              % (N, wall, cpu, sys_s, rss, fake_cpu - fake_cpu0, fake_sys - fake_sys0,
                 open("/proc/loadavg").read().split()[0]))
        print("  operator counters: reconciles %d, applies %d, status writes %d, events %d"
              % tuple(metric(port, "asya_operator_" + m) for m in (
                  "reconciles_total", "applies_total", "status_writes_total", "events_total")))
        # Restart + resync of the unchanged actors: let everything settle (steady status comes
        # before the last scaled-down pods are gone, and their going is written), stop the
        # operator, forget the writes, start a new operator with a short resync, wait until it
        # has reconciled every actor twice (start-up pass + first periodic resync), count its
        # writes.
        quiet_by = time.monotonic() + 120
        while True:
            c.request("DELETE", "/fake/writes")
            time.sleep(2)
            if c.get("/fake/writes").body["count"] == 0:
                break
            if time.monotonic() > quiet_by:
                raise SystemExit("operator bench: writes still going on 120 s after steady state")
        op.send_signal(signal.SIGTERM)
        op.wait()
        ops.remove(op)
        c.request("DELETE", "/fake/writes")
        op, port = start_operator(tmp, kubeconfig, "10s")
        ops.append(op)
        deadline = time.monotonic() + 180
        while metric(port, "asya_operator_reconciles_total") < 2 * N:
            if time.monotonic() > deadline:
                raise SystemExit("operator bench: no restart + resync within 180 s")
            time.sleep(0.5)
        writes = c.get("/fake/writes").body["writes"]
        mine = [w for w in writes if w.get("manager", "").startswith("asya-operator")]
        print("asya-operator restart + resync of %d unchanged actors: %d reconciles, %d writes "
              "(target 0)" % (N, metric(port, "asya_operator_reconciles_total"), len(mine)))
        if mine:
            print("  first writes:", mine[:5])
            return 1
        return 0
    finally:
        for p in ops:
            p.send_signal(signal.SIGTERM)
            p.wait()
        fake.send_signal(signal.SIGTERM)
        fake.wait()


if __name__ == "__main__":
    sys.exit(main())
