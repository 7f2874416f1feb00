"""`asya queue redrive ACTOR` through the built binary on sqlite, RabbitMQ and SQS (moto).

Every transport: dead letters go back to asya-ACTOR with a fresh delivery count and the reason
kept; --limit; a kill between publish and delete (test hook ASYA_TEST_REDRIVE_EXIT_AFTER_PUBLISH)
followed by re-runs moves every message exactly once; a missing DLQ exits 2; an unreachable
broker exits 1. Brokers are real (tests/fault/*/…_fixture.py start them on free ports).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fault", "sqs"))
sys.path.insert(0, os.path.join(HERE, "..", "fault", "rabbitmq"))

BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(HERE, "..", "..", "build", "release"))
ASYA = os.path.abspath(os.path.join(BUILD_DIR, "bin", "asya"))

_SCRUB = ("ASYA_TRANSPORT", "ASYA_SQLITE_PATH", "ASYA_STATE_DIR", "ASYA_QUEUE_RETRY_BACKOFF",
          "ASYA_QUEUE_RETRY_MAX_ATTEMPTS", "ASYA_RABBITMQ_URL", "ASYA_RABBITMQ_MGMT_URL",
          "ASYA_SQS_ENDPOINT", "ASYA_TEST_REDRIVE_EXIT_AFTER_PUBLISH")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedriveBase:
    transport = None  # set by subclasses
    broker_env = {}

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="asya-redrive-")
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        self.env["ASYA_TRANSPORT"] = self.transport
        self.env["ASYA_SQLITE_PATH"] = os.path.join(self.dir, "queues.db")
        self.env["ASYA_STATE_DIR"] = os.path.join(self.dir, "state")
        self.env.update(self.broker_env)
        self.actor = "r" + uuid.uuid4().hex[:8]
        self.main = "asya-" + self.actor
        self.dlq = self.main + "-dlq"

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_cli(self, *args, env=None, stdin=None):
        return subprocess.run([ASYA, "queue", *args], capture_output=True, input=stdin,
                              env=env or self.env, cwd=self.dir, timeout=120)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "asya queue %s: %s" % (args, r.stderr.decode()))
        return r

    def make_queues(self):
        # publish creates asya-X with its asya-X-dlq; take the message back out.
        self.ok("publish", self.main, "setup")
        self.assertEqual(self.ok("get", self.main, "--wait", "10").stdout, b"setup")

    def dead_letters(self, n):
        bodies = ['{"id":"%s-%d","route":{"actors":["%s"],"current":0},"payload":%d}'
                  % (self.actor, i, self.actor, i) for i in range(n)]
        for i, body in enumerate(bodies):
            self.ok("publish", self.dlq, body, "--header", "x-asya-dlq-reason=boom %d" % i,
                    "--header", "x-asya-deliveries=5")
        return bodies

    def depth(self, queue):
        d = json.loads(self.ok("depth", queue, "-o", "json").stdout)
        return d["ready"], d["inflight"]

    def drain(self, queue, expect):
        """Every message of `queue` as parsed `get -o json` objects (acked)."""
        out = []
        deadline = time.monotonic() + 60
        while len(out) < expect and time.monotonic() < deadline:
            r = self.run_cli("get", queue, "--wait", "2", "-o", "json")
            if r.returncode == 3:
                continue
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            out.append(json.loads(r.stdout))
        # Nothing more arrives (a duplicate would).
        r = self.run_cli("get", queue, "--wait", "2")
        self.assertEqual(r.returncode, 3, "unexpected extra message: %r" % r.stdout)
        return out

    # ---- tests ----

    def test_moves_every_dead_letter_with_a_fresh_count_and_the_reason(self):
        self.make_queues()
        bodies = self.dead_letters(5)
        r = self.ok("redrive", self.actor)
        self.assertEqual(r.stdout.decode().strip(),
                         "moved 5 messages from %s to %s" % (self.dlq, self.main))
        self.assertEqual(self.depth(self.dlq)[0], 0)
        got = self.drain(self.main, 5)
        self.assertEqual(sorted(m["body"] for m in got), sorted(bodies))
        for m in got:
            i = json.loads(m["body"])["payload"]
            h = m["headers"]
            # Fresh count: 1 on the first delivery after the redrive. On RabbitMQ `get` runs
            # one consumer process per message, and a message another one had prefetched can
            # come back counted by the broker (x-delivery-count, reported to the lead); the
            # part the redrive controls (x-asya-deliveries=5 dropped) is what is asserted there.
            returns = int(h.get("x-delivery-count", "0")) if self.transport == "rabbitmq" else 0
            self.assertEqual(m["delivery_count"] - returns, 1, m)
            self.assertEqual(h.get("x-asya-dlq-reason"), "boom %d" % i, m)
            self.assertEqual(h.get("x-asya-dlq-deliveries"), "5", m)
            self.assertNotIn("x-asya-deliveries", h)
            self.assertTrue(h.get("x-asya-redrive-id"), m)
        # Nothing left to move: a second run moves 0 and succeeds; no journal is left behind.
        r = self.ok("redrive", self.actor, "-o", "json")
        self.assertEqual(json.loads(r.stdout)["moved"], 0)
        redrive_dir = os.path.join(self.dir, "state", "redrive")
        self.assertEqual(os.listdir(redrive_dir) if os.path.isdir(redrive_dir) else [], [])

    def test_limit_moves_at_most_n(self):
        self.make_queues()
        self.dead_letters(5)
        r = self.ok("redrive", self.actor, "--limit", "2", "-o", "json")
        self.assertEqual(json.loads(r.stdout), {"moved": 2, "from": self.dlq, "to": self.main})
        self.assertEqual(len(self.drain(self.main, 2)), 2)
        self.assertEqual(self.depth(self.dlq)[0], 3)

    def test_kill_between_publish_and_delete_loses_and_duplicates_nothing(self):
        self.make_queues()
        bodies = self.dead_letters(4)
        env = dict(self.env, ASYA_TEST_REDRIVE_EXIT_AFTER_PUBLISH="2")
        r = self.run_cli("redrive", self.actor, "--visibility", "1s", env=env)
        self.assertEqual(r.returncode, 137, r.stderr.decode())
        # The second message is in asya-X already and still in the DLQ (hidden until its
        # visibility ends, or back at once on RabbitMQ). Re-run until the DLQ is empty.
        deadline = time.monotonic() + 60
        while True:
            self.ok("redrive", self.actor, "--visibility", "1s")
            ready, inflight = self.depth(self.dlq)
            if ready == 0 and inflight <= 0:
                break
            self.assertLess(time.monotonic(), deadline, "DLQ never emptied: %d/%d"
                            % (ready, inflight))
            time.sleep(0.5)
        got = self.drain(self.main, 4)
        self.assertEqual(sorted(m["body"] for m in got), sorted(bodies))  # each exactly once

    def test_missing_dead_letter_queue_exits_2(self):
        r = self.run_cli("redrive", "nosuch" + self.actor)
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        self.assertIn("no dead-letter queue asya-nosuch%s-dlq" % self.actor, r.stderr.decode())
        r = self.run_cli("redrive", "--limit", "0", self.actor)
        self.assertEqual(r.returncode, 2, r.stderr.decode())


class RedriveSqlite(RedriveBase, unittest.TestCase):
    transport = "sqlite"

    def test_unusable_database_exits_1(self):
        not_a_db = os.path.join(self.dir, "garbage.db")
        with open(not_a_db, "wb") as f:
            f.write(b"this is not a sqlite file" * 100)
        r = self.run_cli("redrive", self.actor, env=dict(self.env, ASYA_SQLITE_PATH=not_a_db))
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertIn("garbage.db", r.stderr.decode())


class RedriveSqs(RedriveBase, unittest.TestCase):
    transport = "sqs"

    @classmethod
    def setUpClass(cls):
        from moto_fixture import Moto
        cls.moto = Moto()
        cls.broker_env = {"ASYA_SQS_ENDPOINT": cls.moto.endpoint, "AWS_ACCESS_KEY_ID": "test",
                          "AWS_SECRET_ACCESS_KEY": "test", "ASYA_AWS_REGION": "us-east-1"}

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def test_unreachable_endpoint_exits_1(self):
        env = dict(self.env, ASYA_SQS_ENDPOINT="http://127.0.0.1:%d" % closed_port())
        r = self.run_cli("redrive", self.actor, env=env)
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertIn("cannot reach", r.stderr.decode())


class RedriveRabbitMq(RedriveBase, unittest.TestCase):
    transport = "rabbitmq"

    @classmethod
    def setUpClass(cls):
        from rabbitmq_fixture import Broker
        cls.broker = Broker(management=False)
        cls.broker_env = {"ASYA_RABBITMQ_URL": cls.broker.url}

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def test_unreachable_broker_exits_1(self):
        env = dict(self.env, ASYA_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:%d/" % closed_port())
        r = self.run_cli("redrive", self.actor, env=env)
        self.assertEqual(r.returncode, 1, r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
