"""RabbitMQ fault tests: real asya-sidecar processes + C++ echo runtimes on a real rabbitmq-server.

- the broker is killed (-9) and restarted while 5,000 envelopes flow through a 2-hop route:
  every envelope arrives at happy-end, none is lost; duplicates are counted and reported;
- a sidecar is killed (-9) mid-batch and started again: redelivery completes the run.
Uses the component-test harness (tests/component/harness.py) with ASYA_TEST_TRANSPORT=rabbitmq and
rmq_fault_tool (this directory) as a fast bulk publisher / happy-end sink.
"""
import json
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "component"))

from rabbitmq_fixture import Broker  # noqa: E402

BROKER = None
harness = None
BUILD = os.environ.get("ASYA_BUILD_DIR") or os.path.join(HERE, "..", "..", "..", "build")
TOOL = os.path.join(BUILD, "tests", "rmq_fault_tool")
ECHO = os.path.join(BUILD, "bin", "asya-echo-runtime")


def setUpModule():
    global BROKER, harness
    for path in (TOOL, ECHO, os.path.join(BUILD, "bin", "asya-sidecar")):
        if not os.path.exists(path):
            raise RuntimeError("%s is not built (run make build first)" % path)
    BROKER = Broker()
    os.environ.update(BROKER.env())
    import harness as h  # reads ASYA_TEST_TRANSPORT at import
    harness = h


def tearDownModule():
    if BROKER is not None:
        BROKER.stop()


class Collector:
    """rmq_fault_tool collect in the background; `distinct` follows its progress lines."""

    def __init__(self, queue, n, timeout_s):
        self.distinct = 0
        self.result = None
        self.proc = subprocess.Popen([TOOL, "collect", queue, str(n), str(timeout_s)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode().strip()
            if line.startswith("progress "):
                self.distinct = int(line.split()[1])
            elif line.startswith("{"):
                self.result = json.loads(line)

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        while self.distinct < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("collector reached %d of %d" % (self.distinct, count))
            time.sleep(0.05)

    def finish(self, timeout):
        self.proc.wait(timeout)
        self.thread.join(10)
        err = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, self.result, err


def publish(queue, n, prefix, route):
    out = subprocess.run([TOOL, "publish", queue, str(n), prefix, ",".join(route), "16"],
                         capture_output=True, timeout=300, env=dict(os.environ))
    if out.returncode != 0:
        raise AssertionError("publish failed: %s" % out.stderr.decode())
    return json.loads(out.stdout)


class FaultBase(unittest.TestCase):
    def setUp(self):
        self.mesh = harness.Mesh()
        env = {"ASYA_SIDECAR_CONCURRENCY": "8", "ASYA_LOG_LEVEL": "INFO"}
        self.a = self.mesh.actor("a", runtime_cmd=[ECHO], sidecar_env=env)
        self.b = self.mesh.actor("b", runtime_cmd=[ECHO], sidecar_env=env)
        self.route = [self.a.name, self.b.name]

    def tearDown(self):
        self.mesh.close()

    def report(self, name, n, result, extra=""):
        line = ("%s: %d envelopes, %d distinct at happy-end, %d deliveries there, %d duplicates%s"
                % (name, n, result["distinct"], result["received"], result["duplicates"], extra))
        print(line, file=sys.stderr)

    def assert_error_end_empty(self):
        ready, _ = self.mesh.depth(self.mesh.q(self.mesh.error_end))
        self.assertEqual(ready, 0, "envelopes went to error-end")


class BrokerRestart(FaultBase):
    def test_broker_restart_during_5000_envelopes_loses_nothing(self):
        n = 5000
        publish(self.a.queue, n, "restart", self.route)
        collector = Collector(self.mesh.q(self.mesh.happy_end), n, 600)
        collector.wait_for(500, 300)
        BROKER.restart()  # kill -9 + start on the same data directory
        code, result, err = collector.finish(660)
        self.assertIsNotNone(result, err)
        self.report("broker restart", n, result)
        self.assertEqual(code, 0, "lost envelopes: %r\n%s" % (result, err[-2000:]))
        self.assertEqual(result["distinct"], n)
        self.assertEqual(result["not_envelopes"], 0)
        self.assert_error_end_empty()
        for actor in (self.a, self.b):
            self.assertIsNone(actor.sidecar.poll(), "sidecar %s exited:\n%s"
                              % (actor.name, actor.sidecar_output()[-3000:]))


class SidecarKill(FaultBase):
    def test_sidecar_killed_mid_batch_redelivery_completes_the_run(self):
        n = 1000
        publish(self.a.queue, n, "kill", self.route)
        collector = Collector(self.mesh.q(self.mesh.happy_end), n, 300)
        collector.wait_for(200, 120)
        self.a.sidecar.kill()  # SIGKILL: its unacked deliveries go back to the queue
        self.a.sidecar.wait()
        self.a.start_sidecar()
        code, result, err = collector.finish(360)
        self.assertIsNotNone(result, err)
        self.report("sidecar kill -9", n, result)
        self.assertEqual(code, 0, "lost envelopes: %r\n%s" % (result, err[-2000:]))
        self.assertEqual(result["distinct"], n)
        self.assert_error_end_empty()


if __name__ == "__main__":
    unittest.main()
