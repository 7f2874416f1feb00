"""SQS fault tests: real asya-sidecar + asya_runtime.py on a real moto_server.

- a handler running 3x the visibility timeout is delivered once (the sidecar's heartbeat);
- a result larger than the SQS limit becomes an error envelope at error-end (nothing lost);
- an unreachable endpoint gives a clear log line, and once it is back the message is processed;
- a sidecar restarted (SIGTERM) while its long poll is in flight strands nothing: messages
  published during the stop are processed by the restarted sidecar, long before the visibility
  timeout (issue 12 item 6).
Uses the component-test harness (tests/component/harness.py) with ASYA_TEST_TRANSPORT=sqs.
"""
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "component"))

from moto_fixture import Moto  # noqa: E402

MOTO = None
harness = None


def setUpModule():
    global MOTO, harness
    MOTO = Moto()
    try:
        os.environ.update(MOTO.env())
        import harness as h  # reads ASYA_TEST_TRANSPORT at import
        harness = h
        queue_tool = getattr(h, "QUEUE_TOOL", None) or getattr(h, "ASYA_BIN", "")
        for path in (h.SIDECAR_BIN, queue_tool):
            if not os.path.exists(path):
                raise RuntimeError("%s is not built (run make build first)" % path)
    except BaseException:
        MOTO.stop()  # tearDownModule does not run when setUpModule fails
        MOTO = None
        raise


def tearDownModule():
    if MOTO is not None:
        MOTO.stop()


class Proxy:
    """A TCP proxy to moto that can refuse connections (endpoint unreachable) and come back."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = harness.free_port()
        self.listener = None
        self.thread = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def up(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.thread = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        self.thread.start()

    def down(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class SqsFaultTests(unittest.TestCase):
    def setUp(self):
        self.mesh = harness.Mesh()
        self.tmp = tempfile.mkdtemp(prefix="asya-sqsf-")

    def tearDown(self):
        self.mesh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_settled(self, actor):
        m = self.mesh
        m.wait_drained(actor.queue)
        for q in (m.q(m.happy_end), m.q(m.error_end)):
            self.assertIsNone(m.get(q, wait=0.5), "unexpected extra message on " + q)

    def test_handler_three_times_the_visibility_timeout_is_delivered_once(self):
        m = self.mesh
        slow = m.actor("slow", "sqs_fault_handlers.slow_counted",
                       sidecar_env={"ASYA_VISIBILITY_TIMEOUT": "2s", "ASYA_RUNTIME_TIMEOUT": "60s"},
                       runtime_env={"PYTHONPATH": HERE, "ASYA_RUNTIME_TIMEOUT": "60s"})
        log = os.path.join(self.tmp, "calls")
        m.publish(slow.queue, harness.envelope("long-1", [slow.name], 0, {"log": log, "s": 6}))
        results = m.collect(m.q(m.happy_end), 1, timeout=60)
        self.assertEqual(results[0]["id"], "long-1")
        # Past another two visibility timeouts: no second delivery, no second result.
        time.sleep(4.5)
        with open(log) as f:
            calls = f.read().splitlines()
        self.assertEqual(len(calls), 1, "handler ran %d times" % len(calls))
        self.assert_settled(slow)

    # The transport rejects the oversized result before sending (kInvalidArgument): the sidecar
    # does not retry it until dead-lettered but sends an error envelope to error-end and acks.
    def test_result_over_the_sqs_limit_goes_to_error_end(self):
        m = self.mesh
        big = m.actor("big", "sqs_fault_handlers.big", runtime_env={"PYTHONPATH": HERE})
        nxt = m.name("next")
        m.ensure_queue(m.q(nxt))
        m.publish(big.queue, harness.envelope("big-1", [big.name, nxt], 0, {"n": 300000}))
        errors = m.collect(m.q(m.error_end), 1, timeout=60)
        text = json.dumps(errors[0])
        self.assertIn("big-1", text)
        self.assertIn("exceeds the SQS limit of 262144 bytes", text)
        self.assertIsNone(m.get(m.q(nxt), wait=0.5), "the oversized result was published")
        self.assert_settled(big)

    def test_unreachable_endpoint_is_logged_and_nothing_is_lost(self):
        m = self.mesh
        proxy = Proxy(MOTO.port)  # down: connections refused
        name = m.name("flaky-net")
        m.ensure_queue(m.q(name))
        actor = m.actor("flaky-net", "component_handlers.dispatch",
                        sidecar_env={"ASYA_SQS_ENDPOINT": proxy.endpoint,
                                     "ASYA_QUEUE_AUTO_CREATE": "false"})
        m.publish(actor.queue, harness.envelope("net-1", [actor.name], 0, {"x": 1}))
        deadline = time.monotonic() + harness.WAIT
        while "cannot reach " + proxy.endpoint not in actor.sidecar_output():
            self.assertIsNone(actor.sidecar.poll(), "sidecar exited:\n" + actor.sidecar_output())
            self.assertLess(time.monotonic(), deadline,
                            "no log line about the unreachable endpoint:\n" +
                            actor.sidecar_output())
            time.sleep(0.2)
        self.assertIsNone(actor.sidecar.poll(), "sidecar exited:\n" + actor.sidecar_output())
        proxy.up()
        try:
            results = m.collect(m.q(m.happy_end), 1, timeout=90)
            self.assertEqual(results[0]["id"], "net-1")
            self.assert_settled(actor)
        finally:
            proxy.down()

    # Issue 12 item 6. SIGTERM reaches the sidecar while its long poll waits at moto; moto keeps
    # running that poll even when the client is gone and hands it the next message, which then
    # stays hidden for the visibility timeout (here 600 s). The stopping sidecar must let the
    # poll end and make what it took visible again, so the restarted sidecar gets every message
    # now. Load before and during the stop; the bound below is far under the visibility timeout.
    def test_restart_during_a_long_poll_strands_no_message(self):
        m = self.mesh
        wait_s = 10
        actor = m.actor("restart", "component_handlers.dispatch",
                        sidecar_env={"ASYA_SQS_WAIT_TIME_SECONDS": str(wait_s),
                                     "ASYA_VISIBILITY_TIMEOUT": "600s",
                                     "ASYA_SIDECAR_CONCURRENCY": "2",
                                     "ASYA_LOG_LEVEL": "INFO"})
        first = ["before-%d" % i for i in range(10)]
        for i in first:
            m.publish(actor.queue, harness.envelope(i, [actor.name], 0, {"i": i}))
        got = [r["id"] for r in m.collect(m.q(m.happy_end), len(first), timeout=60)]
        self.assertEqual(sorted(got), sorted(first))
        # The queue is empty: the sidecar's next poll is waiting at moto. Stop it and publish
        # while it stops (a poll in flight has up to wait_s seconds left).
        actor.sidecar.send_signal(signal.SIGTERM)
        during = ["during-%d" % i for i in range(6)]
        for i in during:
            m.publish(actor.queue, harness.envelope(i, [actor.name], 0, {"i": i}))
        # One signal only: a second one makes the sidecar exit at once.
        self.assertEqual(actor.sidecar.wait(wait_s + 30), 0, actor.sidecar_output())
        after = ["after-%d" % i for i in range(4)]
        for i in after:
            m.publish(actor.queue, harness.envelope(i, [actor.name], 0, {"i": i}))
        actor.start_sidecar()
        # Every message, at once: a stranded one would come back only after 600 s.
        results = m.collect(m.q(m.happy_end), len(during) + len(after), timeout=90)
        self.assertEqual(sorted(r["id"] for r in results), sorted(during + after))
        self.assert_settled(actor)


if __name__ == "__main__":
    unittest.main()
