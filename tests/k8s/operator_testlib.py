"""Runs the built asya-operator binary against the fake API server (and real brokers)."""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from fakeapi_testlib import ACTORS, FakeApiTestCase, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))
OPERATOR = os.path.join(BUILD_DIR, "bin", "asya-operator")
RUNTIME_SCRIPT = os.path.join(SOURCE_DIR, "src", "runtime", "python", "asya_runtime.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fault", "rabbitmq"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fault", "sqs"))

DEP = "/apis/apps/v1/namespaces/default/deployments"
SO = "/apis/keda.sh/v1alpha1/namespaces/default/scaledobjects"
TA = "/apis/keda.sh/v1alpha1/namespaces/default/triggerauthentications"
PODS = "/api/v1/namespaces/default/pods"
EVENTS = "/api/v1/namespaces/default/events"


def actor(name, transport="rabbitmq", scaling=None, image="handler:1", **extra):
    spec = {"transport": transport,
            "workload": {"template": {"spec": {"containers": [
                {"name": "asya-runtime", "image": image,
                 "env": [{"name": "ASYA_HANDLER", "value": "handler.process"}]}]}}}}
    if scaling is not None:
        spec["scaling"] = scaling
    spec.update(extra)
    return {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class Operator:
    """One asya-operator process."""

    def __init__(self, kubeconfig, config_path, tmp, extra_env=None, name="op"):
        self.log_path = os.path.join(tmp, name + ".log")
        env = dict(os.environ)
        env.update({"KUBECONFIG": kubeconfig, "ASYA_TRANSPORT_CONFIG_FILE": config_path,
                    "ASYA_RUNTIME_SCRIPT_PATH": RUNTIME_SCRIPT, "ASYA_HEALTH_ADDR": "127.0.0.1:0",
                    "ASYA_METRICS_ADDR": "0", "ASYA_MAX_CONCURRENT_RECONCILES": "4",
                    "ASYA_LOG_LEVEL": "debug", "POD_NAME": name})
        env.update(extra_env or {})
        self.expected_exit = False
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([OPERATOR], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class OperatorTestCase(FakeApiTestCase):
    bookmark_interval = 1.0
    transports = None  # set by setUpClass / subclasses: the registry

    def setUp(self):
        super().setUp()
        self.kubeconfig = self.api.kubeconfig(os.path.join(self.tmp, "kubeconfig"))
        self.config_path = os.path.join(self.tmp, "operator.json")
        with open(self.config_path, "w") as f:
            json.dump({"transports": self.transports}, f)
        self.ops = []

    def start_operator(self, extra_env=None, name="op"):
        op = Operator(self.kubeconfig, self.config_path, self.tmp, extra_env, name)
        self.ops.append(op)
        self.addCleanup(self._stop, op)
        return op

    def _stop(self, op):
        code = op.stop()
        if self._outcome_failed():
            sys.stderr.write("---- %s log ----\n%s\n" % (op.log_path, op.output()[-6000:]))
        return code

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        return bool(result and (result.failures or result.errors))

    def sync(self):
        self.ok(self.c.post("/fake/sync", {}))

    def get_actor(self, name):
        r = self.c.get(ACTORS.format(ns="default") + "/" + name)
        return r.body if r.code == 200 else None

    def update_actor(self, name, change):
        """Read-modify-write of an AsyncActor's spec, as any client does it: the operator's status
        writes move the resourceVersion, so a PUT can meet 409 Conflict; then read and try again."""
        for _ in range(20):
            a = self.get_actor(name)
            change(a)
            r = self.c.put(ACTORS.format(ns="default") + "/" + name, a)
            if r.code != 409:
                break
        self.assertLess(r.code, 300, r)
        return r.body

    def status_of(self, name):
        a = self.get_actor(name) or {}
        return a.get("status", {}).get("status")

    def wait_status(self, name, want, timeout=60):
        def check():
            for op in self.ops:
                if op.proc.poll() is not None and not op.expected_exit:
                    raise AssertionError("asya-operator exited %s:\n%s"
                                         % (op.proc.returncode, op.output()[-3000:]))
            self.sync()
            return self.status_of(name) == want
        wait_for(check, timeout=timeout, interval=0.1,
                 what="%s status %s (now %s)" % (name, want, self.status_of(name)))
        return self.get_actor(name)

    def cond(self, obj, ctype):
        for c in obj.get("status", {}).get("conditions", []):
            if c["type"] == ctype:
                return c
        return None

    def create(self, body):
        return self.ok(self.c.post(ACTORS.format(ns="default"), body), 201)
