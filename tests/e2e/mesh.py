"""Harness for the `asya up` end-to-end tests: a mesh in a temp state dir, driven by the CLI."""

import json
import os
import signal
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get(
    "ASYA_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))
ASYA = os.path.join(BUILD_DIR, "bin", "asya")

ACTOR_TEMPLATE = """apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: {name}
spec:
  transport: rabbitmq
{scaling}
  timeout:
    processing: {timeout}
{sidecar}
  workload:
    replicas: {replicas}
    template:
      spec:
        containers:
          - name: asya-runtime
            image: python:3.11-slim
            env:
              - name: ASYA_HANDLER
                value: "{handler}"
{env}
"""


def actor_yaml(name, handler, replicas=1, scaling=None, timeout=10, env=None, sidecar_env=None):
    """An AsyncActor manifest. `scaling` is a dict of spec.scaling fields (enabled is implied)."""
    scaling_text = ""
    if scaling is not None:
        scaling_text = "  scaling:\n    enabled: true\n" + "".join(
            "    %s: %s\n" % (k, v) for k, v in scaling.items()
        )
    env_text = "".join(
        '              - name: %s\n                value: "%s"\n' % (k, v)
        for k, v in (env or {}).items()
    )
    sidecar_text = ""
    if sidecar_env:
        sidecar_text = "  sidecar:\n    env:\n" + "".join(
            '      - name: %s\n        value: "%s"\n' % (k, v) for k, v in sidecar_env.items()
        )
    return ACTOR_TEMPLATE.format(
        name=name,
        handler=handler,
        replicas=replicas,
        scaling=scaling_text.rstrip("\n"),
        timeout=timeout,
        env=env_text.rstrip("\n"),
        sidecar=sidecar_text.rstrip("\n"),
    )


def environ_of(pid, timeout=10):
    """The environment `asya up` gave process PID, once it has exec'd its own program.

    `asya up` counts a replica as started once it has forked; until the child calls exec,
    /proc shows the parent's environment, and just after exec the kernel has switched
    /proc/PID/exe but not yet laid out the new environment (it reads as empty)."""
    asya = os.path.realpath(ASYA)
    deadline = time.time() + timeout
    while True:
        with open("/proc/%d/environ" % pid, "rb") as f:
            items = f.read().split(b"\0")
        if os.path.realpath("/proc/%d/exe" % pid) != asya and any(b"=" in i for i in items):
            return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)
        if time.time() > deadline:
            raise AssertionError("pid %d did not exec its program within %ss" % (pid, timeout))
        time.sleep(0.05)


def pid_alive(pid):
    """True for a live, non-zombie process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Mesh:
    """A temp dir with manifests + handler code, and an `asya up` running on it."""

    def __init__(self, handlers=None, state_name="state"):
        self.dir = tempfile.mkdtemp(prefix="asya-e2e-", dir="/tmp")
        self.code = os.path.join(self.dir, "code")
        self.state = os.path.join(self.dir, state_name)
        os.makedirs(self.code)
        for name, text in (handlers or {}).items():
            self.write(name, text)
        self.proc = None
        self.out_path = os.path.join(self.dir, "up.out")
        self.seen_pids = set()

    def write(self, relpath, text):
        path = os.path.join(self.code, relpath)
        with open(path, "w") as f:
            f.write(text)
        return path

    def asya(self, *args, check=False, timeout=60, input=None):
        cmd = [ASYA] + list(args)
        if args and args[0] not in ("queue",):
            cmd += ["--state-dir", self.state]
        env = dict(os.environ, ASYA_STATE_DIR=self.state)
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=check, input=input, env=env
        )

    def up(self, *paths, backoff="1s", wait_ready=True, extra=(), env=None):
        paths = paths or (self.code,)
        if self.proc is None:
            self.out = open(self.out_path, "ab")
            self.proc = subprocess.Popen(
                [ASYA, "up", *paths, "--state-dir", self.state, "--restart-backoff", backoff, *extra],
                stdout=self.out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ, **(env or {})),
            )
            self.wait_for(lambda: self.status() is not None, 20, "status.json")
        else:
            r = self.asya("up", *paths, "--restart-backoff", backoff)
            if r.returncode != 0:
                raise AssertionError("second asya up failed: %s%s" % (r.stdout, r.stderr))
        if wait_ready:
            self.wait_for(self.all_settled, 60, "every actor at its desired replicas")

    def status(self):
        try:
            with open(os.path.join(self.state, "status.json")) as f:
                st = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        for a in st["actors"]:
            for r in a["replicas"]:
                for k in ("runtimePid", "sidecarPid"):
                    if r[k]:
                        self.seen_pids.add(r[k])
        return st

    def actor(self, name):
        st = self.status()
        for a in (st or {}).get("actors", []):
            if a["name"] == name:
                return a
        return None

    def all_settled(self):
        st = self.status()
        return st is not None and all(
            a["ready"] == a["desired"] == a["total"] for a in st["actors"]
        )

    def wait_for(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("asya up exited (%s) while waiting for %s:\n%s"
                                     % (self.proc.returncode, what, self.output()))
            time.sleep(0.1)
        raise AssertionError("timed out after %ss waiting for %s\n--- status ---\n%s\n--- output ---\n%s"
                             % (timeout, what, json.dumps(self.status(), indent=1)[-3000:],
                                self.output()[-4000:]))

    def output(self):
        try:
            with open(self.out_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stored(self, kind="results"):
        """{id: envelope} of every file the crew wrote under results/ or errors/."""
        out = {}
        root = os.path.join(self.state, kind)
        if not os.path.isdir(root):
            return out
        for ts in os.listdir(root):
            for actor in os.listdir(os.path.join(root, ts)):
                d = os.path.join(root, ts, actor)
                for name in os.listdir(d):
                    if name.endswith(".json"):
                        with open(os.path.join(d, name)) as f:
                            env = json.load(f)
                        out.setdefault(env["id"], []).append(env)
        return out

    def count_stored(self, kind="results"):
        root = os.path.join(self.state, kind)
        n = 0
        if os.path.isdir(root):
            for dirpath, _, files in os.walk(root):
                n += sum(1 for f in files if f.endswith(".json"))
        return n

    def send_many(self, route, payloads):
        data = "\n".join(json.dumps(p) for p in payloads) + "\n"
        r = self.asya("send", route, "-", "--jsonl", input=data, timeout=120)
        if r.returncode != 0:
            raise AssertionError("asya send failed: %s" % r.stderr)
        return r.stdout.split()

    def depth(self, queue):
        r = subprocess.run(
            [ASYA, "queue", "depth", queue, "-o", "json", "--transport", "sqlite",
             "--sqlite-path", os.path.join(self.state, "queues.db")],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("asya queue depth failed: %s" % r.stderr)
        return json.loads(r.stdout)

    def stop(self):
        """SIGTERM the supervisor; returns its exit code. Asserts nothing is left behind."""
        if self.proc is None:
            return None
        self.status()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("asya up did not stop within 90 s:\n" + self.output()[-3000:])
        self.proc = None
        self.out.close()
        deadline = time.time() + 5
        while time.time() < deadline and any(pid_alive(p) for p in self.seen_pids):
            time.sleep(0.1)
        left = [p for p in self.seen_pids if pid_alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            raise AssertionError("processes left behind after asya up stopped: %s" % left)
        return rc
