"""A throw-away PostgreSQL server for the Python tests (what tests/support/postgres_fixture.h is for
the C++ ones): initdb into a fresh directory, a free loopback port, trust authentication for user
`postgres`. Run as the `postgres` user when the test runs as root (PostgreSQL refuses root); the
server dies with the test process. Missing binaries are an error naming the Debian package."""

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: [int(x) if x.isdigit() else x for x in p.split("/")])
    if not found:
        raise RuntimeError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/postgres): "
                           "install the Debian package `postgresql` (tools/install-deps.sh)")
    return os.path.dirname(found[-1])


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    def __init__(self):
        self.bin = _bin_dir()
        self.dir = tempfile.mkdtemp(prefix="asya-pg-")
        self.port = _free_port()
        self.proc = None
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)

    def _as_server_user(self):
        libc = ctypes.CDLL(None, use_errno=True)
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, after setuid (which clears it)

    def start(self):
        data = os.path.join(self.dir, "data")
        subprocess.run([os.path.join(self.bin, "initdb"), "-D", data, "-U", "postgres",
                        "-A", "trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, preexec_fn=self._as_server_user)
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", data, "-c", "listen_addresses=127.0.0.1",
             "-p", str(self.port), "-k", self.dir, "-c", "fsync=off"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=self._as_server_user)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited during start-up: " + self.output())
            ready = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                                    "-p", str(self.port)])
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("postgres did not accept connections within 60 s: " + self.output())

    def create_database(self, name):
        subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", "postgres", "-c", "CREATE DATABASE " + name], check=True)
        return self.url(name)

    def url(self, database):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def output(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
