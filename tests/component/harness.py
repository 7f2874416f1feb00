"""Component-test harness: real asya-sidecar + real asya_runtime.py processes on a real transport.

Transport: ASYA_TEST_TRANSPORT=sqlite (default, a fresh SQLite file per Mesh) | rabbitmq | sqs.
For brokers the usual variables are passed through (ASYA_RABBITMQ_URL, ASYA_SQS_ENDPOINT,
AWS_* ...); queue names get a unique prefix per Mesh so runs do not see each other's messages.

Standard library only. Binaries come from $ASYA_BUILD_DIR (CTest sets it), else build/: the
sidecar from bin/, the queue helper (tests/component/queue_tool.cc) from tests/.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("ASYA_BUILD_DIR") or os.path.join(REPO, "build")
SIDECAR_BIN = os.path.join(BUILD, "bin", "asya-sidecar")
QUEUE_TOOL = os.path.join(BUILD, "tests", "asya-component-queue")
RUNTIME_PY = os.path.join(REPO, "src", "runtime", "python", "asya_runtime.py")
ONESHOT_PY = os.path.join(HERE, "oneshot_runtime.py")
TRANSPORT = os.environ.get("ASYA_TEST_TRANSPORT", "sqlite")

# Variables passed through to every process for broker transports.
_PASS = ("ASYA_RABBITMQ_URL", "ASYA_RABBITMQ_HOST", "ASYA_RABBITMQ_PORT", "ASYA_RABBITMQ_USERNAME",
         "ASYA_RABBITMQ_PASSWORD", "ASYA_RABBITMQ_EXCHANGE", "ASYA_RABBITMQ_MGMT_URL",
         "ASYA_RABBITMQ_TLS_VERIFY", "ASYA_RABBITMQ_TLS_CA_FILE", "ASYA_SQS_ENDPOINT", "ASYA_AWS_REGION",
         "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS",
         "AWS_REGION", "AWS_DEFAULT_REGION",
         # Sanitizer builds: reports of the sidecar and helpers must reach tools/sanitizer_run.py.
         "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS")

# Transports whose Depth().inflight is exact and current. RabbitMQ reports it only through the
# management API, whose statistics lag by ~5 s, so tests detect "in the handler" via the handler.
INFLIGHT_EXACT = TRANSPORT in ("sqlite", "sqs")

WAIT = 30.0  # upper bound of every wait in these tests (never a timing assertion)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runtime:
    """A runtime process kept alive by a tiny supervisor (as `asya up`/Kubernetes would)."""

    def __init__(self, cmd, env, log_path):
        self.cmd, self.env, self.log_path = cmd, env, log_path
        self.exit_codes = []
        self.proc = None
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _supervise(self):
        while True:
            with self._lock:
                if self._stop:
                    return
                log = open(self.log_path, "ab")
                self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=log,
                                             cwd=HERE)
                log.close()
            code = self.proc.wait()
            with self._lock:
                if self._stop:
                    return
                self.exit_codes.append(code)
            time.sleep(0.05)

    @property
    def restarts(self):
        return len(self.exit_codes)

    def signal(self, sig):
        with self._lock:
            self.proc.send_signal(sig)

    def stop(self):
        with self._lock:
            self._stop = True
            p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._thread.join(10)


class Actor:
    """One replica: an asya-sidecar process plus a supervised runtime sharing a socket dir."""

    def __init__(self, mesh, name, handler=None, mode="payload", sidecar_env=None,
                 runtime_env=None, runtime_cmd=None, metrics_port=None, start_sidecar=True):
        self.mesh, self.name = mesh, name
        self.socket_dir = tempfile.mkdtemp(prefix="ac", dir="/tmp")
        os.chmod(self.socket_dir, 0o700)
        self.log_dir = mesh.dir
        self.metrics_port = metrics_port
        renv = mesh.base_env()
        renv.update({"ASYA_SOCKET_DIR": self.socket_dir, "ASYA_HANDLER_MODE": mode,
                     "PYTHONPATH": HERE, "ASYA_LOG_LEVEL": "INFO"})
        if handler:
            renv["ASYA_HANDLER"] = handler
        renv.update(runtime_env or {})
        cmd = runtime_cmd or [sys.executable, RUNTIME_PY]
        self.runtime = Runtime(cmd, renv, os.path.join(self.log_dir, name + ".runtime.log"))
        # Brokers refuse publishes to a queue that does not exist yet (RabbitMQ: mandatory
        # routing), so the queue exists before the test publishes, whatever the sidecar's timing.
        mesh.ensure_queue(mesh.q(name))
        self.sidecar_env = mesh.sidecar_env(name, self.socket_dir, metrics_port)
        self.sidecar_env.update(sidecar_env or {})
        self.sidecar = None
        if start_sidecar:
            self.start_sidecar()

    @property
    def queue(self):
        return self.mesh.q(self.name)

    def start_sidecar(self):
        self.sidecar_log = os.path.join(self.log_dir, self.name + ".sidecar.log")
        log = open(self.sidecar_log, "ab")
        self.sidecar = subprocess.Popen([SIDECAR_BIN], env=self.sidecar_env, stdout=log,
                                        stderr=log)
        log.close()

    def sidecar_output(self):
        with open(self.sidecar_log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop_sidecar(self, timeout=WAIT):
        if self.sidecar is None:
            return None
        if self.sidecar.poll() is None:
            self.sidecar.send_signal(signal.SIGTERM)
        try:
            return self.sidecar.wait(timeout)
        except subprocess.TimeoutExpired:
            self.sidecar.kill()
            self.sidecar.wait()
            raise AssertionError("sidecar %s did not stop within %ss" % (self.name, timeout))

    def stop(self):
        """Stops both processes; returns the sidecar's exit code (None if it never started)."""
        try:
            return self.stop_sidecar()
        finally:
            self.runtime.stop()
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()


class Mesh:
    """Queues + actors of one test class; every name gets a unique prefix."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="asya-ct-")
        self.prefix = "c" + uuid.uuid4().hex[:6]
        self.actors = []
        self.happy_end = self.prefix + "-happy-end"
        self.error_end = self.prefix + "-error-end"
        self.sqlite_path = os.path.join(self.dir, "queues.db")
        for q in (self.happy_end, self.error_end):
            self.ensure_queue(self.q(q))

    # ---- names and environment ----
    def name(self, short):
        return "%s-%s" % (self.prefix, short)

    @staticmethod
    def q(actor):
        return "asya-" + actor

    def base_env(self):
        env = {k: v for k, v in os.environ.items() if k in _PASS or k in ("PATH", "HOME", "LANG")}
        env["ASYA_TRANSPORT"] = TRANSPORT
        if TRANSPORT == "sqlite":
            env["ASYA_SQLITE_PATH"] = self.sqlite_path
        return env

    def sidecar_env(self, actor, socket_dir, metrics_port=None):
        env = self.base_env()
        env.update({
            "ASYA_ACTOR_NAME": actor,
            "ASYA_SOCKET_DIR": socket_dir,
            "ASYA_ACTOR_HAPPY_END": self.happy_end,
            "ASYA_ACTOR_ERROR_END": self.error_end,
            "ASYA_QUEUE_AUTO_CREATE": "true",
            "ASYA_RUNTIME_READY_TIMEOUT": "30s",
            "ASYA_SHUTDOWN_TIMEOUT": "10s",
            "ASYA_LOG_LEVEL": "DEBUG",
            "ASYA_SQS_WAIT_TIME_SECONDS": "2",
        })
        if metrics_port:
            env["ASYA_METRICS_ADDR"] = "127.0.0.1:%d" % metrics_port
        else:
            env["ASYA_METRICS_ENABLED"] = "false"
        return env

    # ---- actors ----
    def actor(self, short, handler=None, **kw):
        a = Actor(self, self.name(short), handler, **kw)
        self.actors.append(a)
        return a

    def close(self):
        aborted = []
        for a in self.actors:
            try:
                code = a.stop()
            except Exception as exc:  # keep stopping the others
                print("stopping %s: %s" % (a.name, exc), file=sys.stderr)
                continue
            # Sanitizer builds abort a process on a report (abort_on_error, tools/sanitizer_run.py);
            # no test sends SIGABRT, so a sidecar that died of it fails the test.
            if code == -signal.SIGABRT:
                aborted.append("sidecar %s aborted:\n%s" % (a.name, a.sidecar_output()[-6000:]))
        if os.environ.get("ASYA_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        if aborted:
            raise AssertionError("\n".join(aborted))

    # ---- queue access through the real transport (queue_tool.cc) ----
    def _queue(self, *args, stdin=None, check=True):
        env = self.base_env()
        r = subprocess.run([QUEUE_TOOL] + list(args), input=stdin, env=env,
                           capture_output=True, timeout=WAIT + 10)
        if check and r.returncode not in (0, 3):
            raise AssertionError("queue %s failed (%d): %s"
                                 % (" ".join(args[:2]), r.returncode, r.stderr.decode()))
        return r

    def ensure_queue(self, queue):
        self._queue("create", queue)

    def publish(self, queue, body):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self._queue("publish", queue, "-", stdin=body)

    def get(self, queue, wait=0.0, ack=True):
        """One message body (str; acked, or put back when ack=False) or None."""
        args = ["get", queue, str(int(wait * 1000))] + ([] if ack else ["no-ack"])
        r = self._queue(*args)
        if r.returncode == 3:
            return None
        return r.stdout.decode()

    def depth(self, queue):
        r = self._queue("depth", queue)
        d = json.loads(r.stdout)
        return d["ready"], d["inflight"]

    def collect(self, queue, n, timeout=WAIT):
        """Exactly n messages (parsed JSON, or raw text if not JSON) within timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("expected %d messages on %s, got %d: %r"
                                     % (n, queue, len(out), out))
            body = self.get(queue, wait=min(left, 5.0))
            if body is not None:
                try:
                    out.append(json.loads(body))
                except ValueError:
                    out.append(body)
        return out

    def wait_drained(self, queue, timeout=WAIT):
        """Waits until the queue has nothing ready and nothing in flight (a negative in-flight
        count means the transport cannot tell, e.g. RabbitMQ without the management API)."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.depth(queue)
            if d[0] == 0 and d[1] <= 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("%s not drained: ready=%d inflight=%d" % ((queue,) + d))
            time.sleep(0.05)


    def wait_in_handler(self, queue, mark, timeout=WAIT):
        """Waits until the handler has started on the one message of `queue`: a `sleep` payload
        with "mark": <path> makes the handler create that file first (component_handlers.py).
        Works on every transport; where the transport counts in-flight messages exactly
        (INFLIGHT_EXACT) the queue must then show it as received and not yet settled."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(mark):
            if time.monotonic() > deadline:
                raise AssertionError("%s: the handler never started (no %s)" % (queue, mark))
            time.sleep(0.02)
        if INFLIGHT_EXACT:
            ready, inflight = self.depth(queue)
            if (ready, inflight) != (0, 1):
                raise AssertionError("%s: handler running but depth is ready=%d inflight=%d"
                                     % (queue, ready, inflight))

    def mark_path(self, name):
        """A fresh marker path in this mesh's temp dir (for wait_in_handler)."""
        path = os.path.join(self.dir, "mark-%s-%s" % (name, uuid.uuid4().hex[:8]))
        return path


def envelope(id_, actors, current=0, payload=None, headers=None, **extra):
    e = {"id": id_, "route": {"actors": list(actors), "current": current}, "payload": payload}
    if headers is not None:
        e["headers"] = headers
    e.update(extra)
    return e
