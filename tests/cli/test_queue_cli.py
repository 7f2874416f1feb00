"""`asya queue` through the built binary, on the sqlite transport (real files, real processes)."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

BUILD_DIR = os.environ.get(
    "ASYA_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "release"))
ASYA = os.path.abspath(os.path.join(BUILD_DIR, "bin", "asya"))

# Variables that would change which transport/file the CLI uses.
_SCRUB = ("ASYA_TRANSPORT", "ASYA_SQLITE_PATH", "ASYA_STATE_DIR", "ASYA_QUEUE_RETRY_BACKOFF",
          "ASYA_QUEUE_RETRY_MAX_ATTEMPTS", "ASYA_RABBITMQ_URL", "ASYA_SQS_ENDPOINT")


class QueueCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="asya-qcli-")
        self.db = os.path.join(self.dir, "queues.db")
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        self.env["ASYA_SQLITE_PATH"] = self.db

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_cli(self, *args, stdin=None, env=None, cwd=None):
        return subprocess.run([ASYA, "queue", *args], input=stdin, capture_output=True,
                              env=env if env is not None else self.env, cwd=cwd or self.dir,
                              timeout=60)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"asya queue {args}: {r.stderr.decode(errors='replace')}")
        return r

    # ---- publish / get ----

    def test_round_trip_is_byte_exact(self):
        bodies = ["hello", '{"id": "1", "payload": ', "not json", "é€😀 中文", " spaced  ",
                  '{"id":"x","route":{"actors":["a"],"current":0},"payload":null}']
        for body in bodies:
            self.ok("publish", "asya-rt", body)
            r = self.ok("get", "asya-rt")
            # stdout is a pipe, not a TTY: exactly the bytes, no newline added
            self.assertEqual(r.stdout, body.encode())

    def test_stdin_body_is_byte_exact_binary(self):
        body = bytes(range(256)) + b"\n\x00trailing\r\n"
        self.ok("publish", "asya-bin", "-", stdin=body)
        self.assertEqual(self.ok("get", "asya-bin").stdout, body)

    def test_publish_creates_queue_and_its_dlq(self):
        self.ok("publish", "asya-new", "x")
        names = self.ok("list").stdout.decode().splitlines()
        self.assertIn("asya-new", names)
        self.assertIn("asya-new-dlq", names)
        self.ok("publish", "asya-new-dlq", "dead")
        names = self.ok("list").stdout.decode().splitlines()
        self.assertNotIn("asya-new-dlq-dlq", names)

    def test_get_on_empty_queue_waits_and_exits_3(self):
        self.ok("publish", "asya-empty", "x")
        self.ok("purge", "asya-empty")
        start = time.monotonic()
        r = self.run_cli("get", "asya-empty", "--wait", "1")
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"no message", r.stderr)
        self.assertGreaterEqual(elapsed, 0.95)
        # default --wait 0: one immediate try
        self.assertEqual(self.run_cli("get", "asya-empty").returncode, 3)

    def test_get_wakes_when_another_process_publishes(self):
        self.ok("publish", "asya-wake", "first")
        self.ok("get", "asya-wake")
        getter = subprocess.Popen([ASYA, "queue", "get", "asya-wake", "--wait", "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                  cwd=self.dir)
        time.sleep(0.3)
        self.ok("publish", "asya-wake", "second")
        out, err = getter.communicate(timeout=60)
        self.assertEqual(getter.returncode, 0, err)
        self.assertEqual(out, b"second")

    def test_no_ack_leaves_the_message(self):
        self.ok("publish", "asya-keep", "keep me")
        self.assertEqual(self.ok("get", "asya-keep", "--no-ack").stdout, b"keep me")
        self.assertEqual(self.ok("depth", "asya-keep").stdout, b"ready=1 inflight=0\n")
        self.assertEqual(self.ok("get", "asya-keep").stdout, b"keep me")
        self.assertEqual(self.ok("depth", "asya-keep").stdout, b"ready=0 inflight=0\n")

    def test_get_of_missing_queue_is_an_error(self):
        r = self.run_cli("get", "asya-missing")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"asya-missing", r.stderr)
        self.assertIn(b"does not exist", r.stderr)

    def test_bad_wait_is_a_usage_error(self):
        r = self.run_cli("get", "asya-q", "--wait", "soon")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--wait", r.stderr)

    # ---- depth / list / purge ----

    def test_depth_text_and_json(self):
        for i in range(3):
            self.ok("publish", "asya-d", f"m{i}")
        self.assertEqual(self.ok("depth", "asya-d").stdout, b"ready=3 inflight=0\n")
        raw = self.ok("depth", "asya-d", "-o", "json").stdout
        self.assertEqual(raw, b'{"ready":3,"inflight":0}\n')
        self.assertEqual(json.loads(raw), {"ready": 3, "inflight": 0})

    def test_depth_of_missing_queue_is_an_error(self):
        r = self.run_cli("depth", "asya-nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"asya-nope", r.stderr)

    def test_list_prints_one_queue_per_line(self):
        self.ok("publish", "asya-b", "x")
        self.ok("publish", "asya-a", "x")
        self.assertEqual(self.ok("list").stdout,
                         b"asya-a\nasya-a-dlq\nasya-b\nasya-b-dlq\n")
        self.assertEqual(json.loads(self.ok("list", "-o", "json").stdout),
                         ["asya-a", "asya-a-dlq", "asya-b", "asya-b-dlq"])

    def test_purge_empties_the_queue(self):
        for i in range(5):
            self.ok("publish", "asya-p", f"m{i}")
        self.ok("purge", "asya-p")
        self.assertEqual(self.ok("depth", "asya-p").stdout, b"ready=0 inflight=0\n")
        self.assertEqual(self.run_cli("purge", "asya-never").returncode, 1)

    # ---- configuration ----

    def test_state_dir_and_default_path(self):
        env = dict(self.env)
        del env["ASYA_SQLITE_PATH"]
        env["ASYA_STATE_DIR"] = os.path.join(self.dir, "state")
        self.ok("publish", "asya-s", "x", env=env)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "state", "queues.db")))
        del env["ASYA_STATE_DIR"]
        cwd = os.path.join(self.dir, "cwd")
        os.mkdir(cwd)
        self.ok("publish", "asya-s", "x", env=env, cwd=cwd)
        self.assertTrue(os.path.exists(os.path.join(cwd, ".asya", "queues.db")))

    def test_sqlite_path_flag_overrides_env(self):
        other = os.path.join(self.dir, "other.db")
        self.ok("--sqlite-path", other, "publish", "asya-f", "x")
        self.ok("publish", "asya-f", "y", "--sqlite-path", other)
        self.assertEqual(self.ok("depth", "asya-f", "--sqlite-path", other).stdout,
                         b"ready=2 inflight=0\n")
        self.assertEqual(self.run_cli("depth", "asya-f").returncode, 1)  # not in ASYA_SQLITE_PATH

    def test_bad_transport_names_the_variable(self):
        env = dict(self.env, ASYA_TRANSPORT="kafka")
        r = self.run_cli("list", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"ASYA_TRANSPORT", r.stderr)
        self.assertIn(b"kafka", r.stderr)
        r = self.run_cli("--transport", "kafka", "list")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--transport", r.stderr)

    def test_bad_retry_backoff_names_the_variable(self):
        env = dict(self.env, ASYA_QUEUE_RETRY_BACKOFF="fast")
        r = self.run_cli("list", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"ASYA_QUEUE_RETRY_BACKOFF", r.stderr)
        env = dict(self.env, ASYA_QUEUE_RETRY_MAX_ATTEMPTS="many")
        r = self.run_cli("list", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"ASYA_QUEUE_RETRY_MAX_ATTEMPTS", r.stderr)

    def test_usage_errors_exit_2(self):
        for args in ([], ["frobnicate"], ["depth"], ["publish", "asya-q"],
                     ["depth", "asya-q", "-o", "yaml"], ["get", "asya-q", "--bogus"]):
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
            self.assertNotEqual(r.stderr, b"", args)

    def test_invalid_queue_name_is_a_clear_error(self):
        r = self.run_cli("publish", "bad/name", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"invalid queue name", r.stderr)

    def test_unusable_database_is_a_clear_error(self):
        not_a_db = os.path.join(self.dir, "garbage.db")
        with open(not_a_db, "wb") as f:
            f.write(b"this is not a sqlite file" * 100)
        r = self.run_cli("--sqlite-path", not_a_db, "list")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"garbage.db", r.stderr)

    # ---- several processes ----

    def test_two_consumer_processes_get_every_message_once(self):
        n = 60
        for i in range(n):
            self.ok("publish", "asya-mp", f"m{i}")
        got = [[], []]

        def consume(out):
            while True:
                r = self.run_cli("get", "asya-mp", "--wait", "0.5")
                if r.returncode == 3:
                    return
                self.assertEqual(r.returncode, 0, r.stderr)
                out.append(r.stdout.decode())

        threads = [threading.Thread(target=consume, args=(got[i],)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everything = got[0] + got[1]
        self.assertEqual(sorted(everything), sorted(f"m{i}" for i in range(n)))
        self.assertEqual(self.ok("depth", "asya-mp").stdout, b"ready=0 inflight=0\n")


if __name__ == "__main__":
    unittest.main()
