"""Helpers for the runtime tests: start the real asya_runtime.py as a subprocess with a private
socket directory and talk to it with the sidecar framing (4-byte big-endian length + JSON).

Not a test module (unittest discovery only imports test*.py)."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
# ASYA_TEST_RUNTIME points the tests at another runtime file (e.g. to check a modified copy).
RUNTIME = os.environ.get("ASYA_TEST_RUNTIME") or os.path.join(REPO, "src", "runtime", "python",
                                                               "asya_runtime.py")
HANDLERS = os.path.join(HERE, "handlers")
IO_TIMEOUT = 20.0


def frame(body):
    return struct.pack(">I", len(body)) + body


def recv_exact(sock, n):
    """Read exactly n bytes; returns fewer only if the peer closed the connection."""
    chunks = []
    got = 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock):
    """Return the next frame's body, or None if the peer closed the connection before a
    complete frame arrived."""
    header = recv_exact(sock, 4)
    if len(header) < 4:
        return None
    (n,) = struct.unpack(">I", header)
    body = recv_exact(sock, n)
    if len(body) < n:
        return None
    return body


def envelope(payload, actors=("a", "b", "c"), current=0, **extra):
    env = {"id": "msg-1", "route": {"actors": list(actors), "current": current}, "payload": payload}
    env.update(extra)
    return env


def to_bytes(obj):
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    return json.dumps(obj).encode("utf-8")


class RuntimeProcess(object):
    """One runtime subprocess. Use as a context manager or call close()."""

    def __init__(self, handler, wait=True, umask=None, pre_create=None, **env_vars):
        self.dir = tempfile.mkdtemp(prefix="asya-rt-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
        env["ASYA_SOCKET_DIR"] = self.dir
        if handler is not None:
            env["ASYA_HANDLER"] = handler
        env["PYTHONPATH"] = HANDLERS
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for k, v in env_vars.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        self.env = env
        self.socket_path = os.path.join(self.dir, env.get("ASYA_SOCKET_NAME") or "asya-runtime.sock")
        self.ready_path = os.path.join(self.dir, "runtime-ready")
        if pre_create is not None:
            pre_create(self)
        self._err = open(os.path.join(self.dir, "stderr.log"), "w+b")
        preexec = None
        if umask is not None:
            def preexec():
                os.umask(umask)
        self.proc = subprocess.Popen([sys.executable, RUNTIME], env=env, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._err, preexec_fn=preexec)
        if wait:
            self.wait_ready()

    # -- lifecycle -----------------------------------------------------------------------
    def wait_ready(self, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(self.ready_path) and os.path.exists(self.socket_path):
                return
            if self.proc.poll() is not None:
                raise AssertionError("runtime exited with %s before becoming ready:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            time.sleep(0.01)
        raise AssertionError("runtime not ready after %.0fs:\n%s" % (timeout, self.stderr()))

    def wait_exit(self, timeout=15.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("runtime still running after %.0fs:\n%s" % (timeout, self.stderr()))

    def signal(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)

    def stderr(self):
        self._err.flush()
        with open(self._err.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- talking -------------------------------------------------------------------------
    def connect(self, timeout=IO_TIMEOUT):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.socket_path)
        except BaseException:
            s.close()
            raise
        return s

    def call_raw(self, body, sock=None):
        """Send one request frame and return the response body (None if the runtime closed the
        connection without answering). Uses a fresh connection unless ``sock`` is given."""
        own = sock is None
        if own:
            sock = self.connect()
        try:
            sock.sendall(frame(to_bytes(body)))
            return recv_frame(sock)
        finally:
            if own:
                sock.close()

    def call(self, obj, sock=None):
        data = self.call_raw(obj, sock)
        if data is None:
            raise AssertionError("runtime closed the connection without a response:\n%s"
                                 % self.stderr())
        return json.loads(data.decode("utf-8"))
