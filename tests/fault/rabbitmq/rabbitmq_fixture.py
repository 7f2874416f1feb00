"""A throw-away rabbitmq-server for Python tests (tools/rabbitmq-test-broker.sh does the set-up).

`python3 rabbitmq_fixture.py CMD...` runs CMD against one broker with ASYA_TEST_TRANSPORT=rabbitmq,
ASYA_RABBITMQ_URL and ASYA_RABBITMQ_MGMT_URL exported, then stops it and exits with CMD's status.
The broker is a direct child (beam.smp) and can be killed and restarted on the same directory,
so durable queues survive a restart.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(os.path.join(HERE, "..", "..", "..", "tools", "rabbitmq-test-broker.sh"))


def _die_with_parent():
    """Runs in the broker's child process: SIGKILL it when this Python process dies."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Broker:
    def __init__(self, management=True):
        self.dir = tempfile.mkdtemp(prefix="asya-rmq-py-", dir="/tmp")
        self.proc = None
        last = None
        for _ in range(3):  # a port taken meanwhile makes the boot fail: pick another
            self.port = int(subprocess.check_output(["bash", SCRIPT, "free-port"]).decode())
            self.mgmt_port = self.port + 1 if management else 0
            subprocess.check_call(["bash", SCRIPT, "init", self.dir, str(self.port),
                                   str(self.mgmt_port)])
            try:
                self.start()
                return
            except RuntimeError as exc:
                last = exc
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        raise last

    def start(self):
        log = open(os.path.join(self.dir, "log", "console.log"), "ab")
        self.proc = subprocess.Popen(["bash", SCRIPT, "run", self.dir], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + 90
        while not (_accepts(self.port) and (not self.mgmt_port or _accepts(self.mgmt_port))):
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited during start; see %s/log" % self.dir)
            if time.monotonic() > deadline:
                raise RuntimeError("rabbitmq-server did not open port %d" % self.port)
            time.sleep(0.1)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        self.kill()
        self.start()

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/" % self.port

    @property
    def management_url(self):
        return "http://guest:guest@127.0.0.1:%d" % self.mgmt_port if self.mgmt_port else ""

    def env(self):
        env = {"ASYA_TEST_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_URL": self.url}
        if self.mgmt_port:
            env["ASYA_RABBITMQ_MGMT_URL"] = self.management_url
        return env

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` below
    broker = Broker()
    try:
        env = dict(os.environ)
        env.update(broker.env())
        sys.exit(subprocess.call(sys.argv[1:], env=env))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
