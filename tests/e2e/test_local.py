"""`asya up` end to end: real asya / asya-sidecar / asya-crew / asya_runtime.py processes on a
real SQLite queue file. Each test starts its own mesh in a temp dir and stops it, checking that
no process is left behind."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

from mesh import ASYA, Mesh, actor_yaml, environ_of, pid_alive

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault", "sqs"))
from moto_fixture import Moto  # noqa: E402

STEPS = '''
import os, time

def add_one(p):
    return {"n": p["n"] + 1, "trail": p.get("trail", []) + ["add"]}

def double(p):
    return {"n": p["n"] * 2, "trail": p["trail"] + ["double"]}

def tag(p):
    return dict(p, trail=p["trail"] + ["tag"], mark=os.environ.get("MARK", ""))

def slow(p):
    time.sleep(float(os.environ.get("SLEEP", "0.05")))
    return dict(p, mark=os.environ.get("MARK", ""))

def fail_on_bad(p):
    if not isinstance(p, dict) or "n" not in p:
        raise ValueError("needs n")
    return p

def split(p):
    return [{"part": x} for x in p["parts"]]

def check_part(p):
    if p["part"] == "bad":
        raise ValueError("bad part")
    if p["part"] == "slow":
        time.sleep(5)
    return p
'''


def require_binaries(test):
    for name in ("asya", "asya-sidecar", "asya-crew"):
        if not os.path.exists(os.path.join(os.path.dirname(ASYA), name)):
            raise RuntimeError("%s is not built (run make build first)" % name)


class LocalMeshTest(unittest.TestCase):
    def setUp(self):
        require_binaries(self)
        self.mesh = Mesh({"steps.py": STEPS})

    def tearDown(self):
        if self.mesh.proc is not None:
            self.mesh.stop()

    def test_thousand_envelopes_through_three_actors(self):
        m = self.mesh
        m.write("add.yaml", actor_yaml("add", "steps.add_one", replicas=2))
        m.write("double.yaml", actor_yaml("double", "steps.double", replicas=2))
        m.write("tag.yaml", actor_yaml("tag", "steps.tag", replicas=2, env={"MARK": "v1"}))
        m.up()
        ids = m.send_many("add,double,tag", [{"n": i} for i in range(1000)])
        self.assertEqual(len(ids), 1000)
        m.wait_for(lambda: m.count_stored("results") >= 1000, 240, "1000 results")
        results = m.stored("results")
        self.assertEqual(set(results), set(ids))
        got = sorted(envs[0]["payload"]["n"] for envs in results.values())
        self.assertEqual(got, sorted((i + 1) * 2 for i in range(1000)))
        for envs in results.values():
            self.assertEqual(envs[0]["payload"]["trail"], ["add", "double", "tag"])
            self.assertEqual(envs[0]["payload"]["mark"], "v1")
            self.assertIn("traceparent", envs[0]["headers"])
        self.assertEqual(m.count_stored("errors"), 0)
        # Results are filed by last actor, in the crew's key layout.
        some = os.listdir(os.path.join(m.state, "results"))[0]
        self.assertRegex(some, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(os.listdir(os.path.join(m.state, "results", some)), ["tag"])
        for q in ("asya-add", "asya-double", "asya-tag"):
            m.wait_for(lambda q=q: m.depth(q) == {"ready": 0, "inflight": 0}, 30, q + " empty")

        # `asya get actors` agrees with the state.
        # status.json is refreshed periodically: wait until it has seen the empty queues too.
        m.wait_for(lambda: all(a["queued"] == 0 and a["processing"] == 0
                               for a in m.status()["actors"]), 10, "depth")
        r = m.asya("get", "actors", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {row["name"]: row for row in json.loads(r.stdout)}
        self.assertEqual(set(rows), {"add", "double", "tag", "happy-end", "error-end"})
        for name in ("add", "double", "tag"):
            row = rows[name]
            self.assertEqual((row["status"], row["running"], row["total"], row["desired"],
                              row["failing"]), ("Running", 2, 2, 2, 0), row)
            self.assertEqual((row["scaling"], row["workload"], row["transport"]),
                             ("Manual", "Deployment", "Ready"))
            self.assertEqual((row["queued"], row["processing"]), (0, 0))
            self.assertIsNone(row["min"])
        table = m.asya("get", "actors").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "STATUS", "RUNNING", "FAILING", "TOTAL",
                                            "DESIRED", "MIN", "MAX", "LAST-SCALE", "AGE"])
        add_row = [l for l in table if l.startswith("add ")][0].split()
        self.assertEqual(add_row[:8], ["add", "Running", "2", "0", "2", "2", "<none>", "<none>"])
        wide = m.asya("get", "actors", "add", "-o", "wide").stdout.splitlines()
        self.assertEqual(wide[0].split()[-5:], ["WORKLOAD", "TRANSPORT", "SCALING", "QUEUED",
                                                "PROCESSING"])
        self.assertEqual(len(wide), 2)
        self.assertEqual(m.stop(), 0)

    def test_napping_actor_wakes_scales_and_naps_again(self):
        m = self.mesh
        m.write("nap.yaml", actor_yaml(
            "nap", "steps.slow", env={"SLEEP": "0.3"},
            scaling={"minReplicas": 0, "maxReplicas": 3, "queueLength": 2,
                     "pollingInterval": 1, "cooldownPeriod": 4}))
        m.up()
        self.assertEqual(m.actor("nap")["status"], "Napping")
        self.assertEqual(m.actor("nap")["total"], 0)
        first = m.asya("send", "nap", '{"n": 0}').stdout.strip()
        m.wait_for(lambda: m.actor("nap")["total"] >= 1, 10, "first replica")
        m.wait_for(lambda: first in m.stored("results"), 30, "first result")
        ids = m.send_many("nap", [{"n": i} for i in range(1, 41)])
        max_total, saw_up = 0, False
        deadline = time.time() + 120
        while time.time() < deadline and m.count_stored("results") < 41:
            a = m.actor("nap")
            running = sum(1 for r in a["replicas"] if r["phase"] != "Stopping")
            max_total = max(max_total, a["total"], running)
            saw_up = saw_up or a["desired"] == 3
            time.sleep(0.1)
        self.assertEqual(m.count_stored("results"), 41)
        self.assertTrue(saw_up, "never scaled up to max under a backlog")
        self.assertLessEqual(max_total, 3, "scaled above maxReplicas")
        self.assertTrue(set(ids) <= set(m.stored("results")))
        drained = time.time()
        m.wait_for(lambda: m.actor("nap")["total"] == 0 and m.actor("nap")["status"] == "Napping",
                   4 + 1 + 10, "back to zero after the cooldown")
        self.assertGreaterEqual(time.time() - drained, 2.0, "napped before the cooldown")
        reasons = [e["reason"] for e in m.actor("nap")["events"]]
        self.assertIn("ScaledUp", reasons)
        self.assertIn("ScaledDown", reasons)
        self.assertEqual(m.stop(), 0)

    def test_killing_runtime_or_sidecar_loses_nothing(self):
        m = self.mesh
        m.write("work.yaml", actor_yaml(
            "work", "steps.slow", replicas=2, timeout=3, env={"SLEEP": "0.02"},
            sidecar_env={"ASYA_RETRY_MAX_ATTEMPTS": "5", "ASYA_RETRY_BACKOFF": "100ms"}))
        m.up(backoff="200ms")
        ids = m.send_many("work", [{"n": i} for i in range(300)])
        m.wait_for(lambda: m.count_stored("results") >= 20, 60, "work started")
        reps = m.actor("work")["replicas"]
        os.kill(reps[0]["runtimePid"], signal.SIGKILL)
        m.wait_for(lambda: m.count_stored("results") >= 120, 60, "progress after runtime kill")
        reps = [r for r in m.actor("work")["replicas"] if r["sidecarPid"]]
        os.kill(reps[-1]["sidecarPid"], signal.SIGKILL)
        m.wait_for(lambda: set(ids) <= set(m.stored("results")), 120,
                   "every envelope at happy-end")
        self.assertEqual(m.count_stored("errors"), 0, m.stored("errors"))
        restarts = sum(r["runtimeRestarts"] + r["sidecarRestarts"]
                       for r in m.actor("work")["replicas"])
        self.assertGreaterEqual(restarts, 2)
        m.wait_for(lambda: m.depth("asya-work") == {"ready": 0, "inflight": 0}, 30, "queue empty")
        self.assertEqual(m.stop(), 0)

    def test_import_crash_shows_failing_with_backoff(self):
        m = self.mesh
        m.write("broken.py", "raise RuntimeError('cannot load model weights')\n")
        m.write("broken.yaml", actor_yaml("broken", "broken.handle"))
        m.up(backoff="500ms", wait_ready=False)
        m.wait_for(lambda: m.actor("broken") and m.actor("broken")["replicas"]
                   and m.actor("broken")["replicas"][0]["runtimeRestarts"] >= 3, 30, "3 restarts")
        a = m.actor("broken")
        self.assertEqual(a["status"], "RuntimeError")
        self.assertEqual(a["failing"], 1)
        self.assertEqual(a["ready"], 0)
        crashes = [e["message"] for e in a["events"] if e["reason"] == "Crashed"]
        self.assertIn("back-off 500ms", crashes[0])
        self.assertIn("back-off 1s", crashes[1])
        self.assertIn("back-off 2s", crashes[2])
        r = m.asya("get", "actors", "broken")
        self.assertIn("RuntimeError", r.stdout)
        d = m.asya("describe", "actor", "broken")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertIn("CrashLoopBackOff", d.stdout + json.dumps(m.actor("broken")))
        logs = m.asya("logs", "broken").stdout
        self.assertIn("cannot load model weights", logs)
        self.assertEqual(m.stop(), 0)

    def test_bad_sidecar_config_shows_sidecar_error(self):
        m = self.mesh
        m.write("conf.yaml", actor_yaml("conf", "steps.add_one",
                                        sidecar_env={"ASYA_SIDECAR_CONCURRENCY": "0"}))
        m.up(backoff="300ms", wait_ready=False)
        m.wait_for(lambda: m.actor("conf") and m.actor("conf")["replicas"]
                   and m.actor("conf")["replicas"][0]["sidecarRestarts"] >= 2, 30, "2 restarts")
        a = m.actor("conf")
        self.assertEqual(a["status"], "SidecarError")
        self.assertEqual(a["replicas"][0]["sidecarLastExit"], "exit 2")
        self.assertIn("ASYA_SIDECAR_CONCURRENCY", m.asya("logs", "conf").stdout)
        self.assertEqual(m.stop(), 0)

    def test_second_up_applies_changes_without_losing_messages(self):
        m = self.mesh
        m.write("slow.yaml", actor_yaml("slow", "steps.slow", env={"SLEEP": "0.05", "MARK": "v1"}))
        m.write("gone.yaml", actor_yaml("gone", "steps.tag"))
        m.up()
        gen = m.status()["generation"]
        ids = m.send_many("slow", [{"n": i} for i in range(150)])
        # Edit slow, remove gone, add fresh -- while messages are queued.
        os.remove(os.path.join(m.code, "gone.yaml"))
        m.write("slow.yaml", actor_yaml("slow", "steps.slow", env={"SLEEP": "0.01", "MARK": "v2"}))
        m.write("fresh.yaml", actor_yaml("fresh", "steps.tag"))
        r = m.asya("up", m.code, "--prune")  # removal only with --prune (issue 11 item 6)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("added:   fresh", r.stdout)
        self.assertIn("removed: gone", r.stdout)
        self.assertGreater(m.status()["generation"], gen)
        m.wait_for(lambda: set(ids) <= set(m.stored("results")), 120, "all 150 results")
        marks = [m.stored("results")[i][0]["payload"]["mark"] for i in ids]
        self.assertIn("v2", marks)
        names = {a["name"] for a in m.status()["actors"]}
        self.assertIn("fresh", names)
        m.wait_for(lambda: m.actor("gone") is None, 30, "gone removed")
        # Messages sent to a removed actor stay in its queue (with --enqueue: refused otherwise).
        m.asya("send", "gone", '{"n": 1}', "--enqueue")
        self.assertEqual(m.depth("asya-gone")["ready"], 1)
        self.assertTrue(any(e["reason"] == "Updated" for e in m.actor("slow")["events"]))
        self.assertEqual(m.stop(), 0)

    def test_send_wait_outcomes_and_bad_input(self):
        m = self.mesh
        m.write("check.yaml", actor_yaml("check", "steps.fail_on_bad"))
        m.up()
        ok = m.asya("send", "check", '{"n": 5}', "--wait", "--timeout", "30")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # The result alone on stdout (a pipe to json.tool works); the id on stderr.
        self.assertEqual(json.loads(ok.stdout)["payload"], {"n": 5})
        self.assertIn("1 result: 1 succeeded, 0 failed", ok.stderr)
        self.assertNotIn("\033[", ok.stderr)  # no colours outside a terminal
        bad = m.asya("send", "check", '{"x": 1}', "--wait", "--timeout", "30")
        self.assertEqual(bad.returncode, 1, bad.stderr)
        err = json.loads(bad.stdout)
        self.assertIn("needs n", json.dumps(err["payload"]))
        # One error shape: error + details.type + details.message (docs/sidecar.md).
        self.assertEqual(err["payload"]["error"], "processing_error")
        self.assertEqual(err["payload"]["details"]["type"], "ValueError")
        self.assertEqual(err["payload"]["details"]["message"], "needs n")
        # Every actor of the route is checked, not only the first; nothing is sent.
        before = m.depth("asya-check")
        unknown = m.asya("send", "check,nobody,nobody2", '{"n": 1}', "--wait", "--timeout", "1")
        self.assertEqual(unknown.returncode, 2, unknown.stderr)
        self.assertIn("does not run actors nobody, nobody2", unknown.stderr)
        self.assertIn("it runs: check, ", unknown.stderr)
        self.assertIn("happy-end", unknown.stderr)
        self.assertEqual(m.depth("asya-check"), before)
        # Queued anyway on request; no result in time is exit 3, naming the envelope.
        timeout = m.asya("send", "nobody", '{"n": 1}', "--enqueue", "--wait", "--timeout", "1")
        self.assertEqual(timeout.returncode, 3, timeout.stderr)
        self.assertIn("warning", timeout.stderr)
        self.assertIn("no result within 1s", timeout.stderr)
        self.assertEqual(timeout.stdout, "")
        for args, needle in (
            (("send", "check", "{not json"), "PAYLOAD is not valid JSON"),
            (("send", "Bad_Actor", "{}"), "'Bad_Actor' is not one"),
            (("send", "check,", "{}"), "'' is not one"),
            (("get", "pods"), "unknown resource 'pods'"),
            (("get", "actors", "-o", "yaml"), "-o must be wide or json"),
        ):
            r = m.asya(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)
        r = m.asya("send", "check", "-", "--jsonl", input='{"n": 1}\n{oops}\n')
        self.assertEqual(r.returncode, 2)
        self.assertIn("payload 2 is not valid JSON", r.stderr)
        for args in (("describe", "actor", "nope"), ("logs", "nope"), ("get", "actors", "nope")):
            r = m.asya(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn('"nope"', r.stderr)
            self.assertIn(": check, ", r.stderr, args)
        self.assertEqual(m.stop(), 0)

    def test_crew_files_errors_under_the_failed_actor_and_keeps_non_json(self):
        m = self.mesh
        m.write("check.yaml", actor_yaml("check", "steps.fail_on_bad"))
        m.write("add.yaml", actor_yaml("add", "steps.add_one"))
        m.up()
        # Fails at actor 0 of a two-actor route: filed under `check`, not the route's last actor.
        bad = m.asya("send", "check,add", '{"x": 1}')
        self.assertEqual(bad.returncode, 0, bad.stderr)
        bad_id = bad.stdout.strip()
        m.wait_for(lambda: bad_id in m.stored("errors"), 30, "the failed envelope")
        [path] = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(m.state, "errors"))
                  for f in files if f == bad_id + ".json"]
        self.assertEqual(os.path.basename(os.path.dirname(path)), "check", path)
        # A body that is not JSON: its error envelope has no id, and is still stored (under a
        # generated one) rather than dead-lettered by error-end.
        sqlite = ["--transport", "sqlite", "--sqlite-path", os.path.join(m.state, "queues.db")]
        r = m.asya("queue", "publish", "asya-add", "{not json", *sqlite)
        self.assertEqual(r.returncode, 0, r.stderr)
        m.wait_for(lambda: m.count_stored("errors") >= 2, 30, "the error envelope of non-JSON")
        generated = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(m.state, "errors"))
                     for f in files if f.startswith("crew-") and f.endswith(".json")]
        self.assertEqual(len(generated), 1, m.stored("errors"))
        with open(generated[0]) as f:
            env = json.load(f)
        self.assertEqual(env["id"], "")  # stored as it came
        self.assertEqual(env["payload"]["original_body"], "{not json")
        self.assertIn("Failed to parse message", env["payload"]["error"])
        self.assertEqual(m.depth("asya-error-end-dlq")["ready"], 0)
        self.assertEqual(m.stop(), 0)

    def test_crew_stores_in_s3_and_the_state_dir(self):
        moto = Moto()
        self.addCleanup(moto.stop)
        m = self.mesh
        m.write("add.yaml", actor_yaml("add", "steps.add_one"))
        m.write("check.yaml", actor_yaml("check", "steps.fail_on_bad"))
        m.up(env={"ASYA_S3_BUCKET": "asya-e2e", "ASYA_S3_ENDPOINT": moto.endpoint})
        ok_id = m.asya("send", "add", '{"n": 1}').stdout.strip()
        bad_id = m.asya("send", "check", '{"x": 1}').stdout.strip()
        # The state dir has them too (asya send --wait finds results there).
        m.wait_for(lambda: ok_id in m.stored("results") and bad_id in m.stored("errors"), 30,
                   "both envelopes stored")

        # moto does not check signatures (but refuses anonymous reads): any SigV4-shaped header.
        def get(path):
            req = urllib.request.Request(moto.endpoint + "/asya-e2e" + path, headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/"
                                 "aws4_request, SignedHeaders=host, Signature=0"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read()

        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        listing = ET.fromstring(get("?list-type=2"))
        keys = [k.text for k in listing.findall(".//s3:Contents/s3:Key", ns)]
        ok_keys = [k for k in keys if k.startswith("results/") and k.endswith("/add/" + ok_id + ".json")]
        bad_keys = [k for k in keys if k.startswith("errors/") and k.endswith("/check/" + bad_id + ".json")]
        self.assertEqual((len(ok_keys), len(bad_keys)), (1, 1), keys)
        stored = json.loads(get("/" + urllib.request.quote(ok_keys[0])))
        self.assertEqual(stored["payload"]["n"], 2)
        self.assertEqual(json.loads(get("/" + urllib.request.quote(bad_keys[0])))["id"], bad_id)
        self.assertEqual(m.stop(), 0)

    def test_detach_and_down(self):
        m = self.mesh
        m.write("add.yaml", actor_yaml("add", "steps.add_one"))
        r = m.asya("up", m.code, "--detach")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("running in the background", r.stdout)
        with open(os.path.join(m.state, "supervisor.pid")) as f:
            pid = int(f.read())
        m.wait_for(m.all_settled, 30, "settled")
        out = m.asya("send", "add", '{"n": 1}', "--wait", "--timeout", "30")
        self.assertEqual(out.returncode, 0, out.stderr)
        children = set(m.seen_pids)
        self.assertTrue(children)
        again = m.asya("up", m.code, "--detach")  # applies to the running mesh
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("applied to the running mesh", again.stdout)
        # `asya logs -f` follows until the mesh stops.
        follow = subprocess.Popen([ASYA, "logs", "add", "-f", "--state-dir", m.state],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        down = m.asya("down")
        self.assertEqual(down.returncode, 0, down.stderr)
        self.assertFalse(pid_alive(pid))
        try:
            f_out, f_err = follow.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.communicate()
            self.fail("asya logs -f kept running after asya down")
        self.assertEqual(follow.returncode, 0, f_err)
        self.assertIn("no mesh is running", f_err)
        self.assertIn("socket=", f_out)
        time.sleep(0.3)
        self.assertEqual([p for p in children if pid_alive(p)], [])
        self.assertIn("no mesh is running", m.asya("get", "actors").stderr)
        self.assertIn("no mesh is running", m.asya("down").stdout)

    def test_wait_follows_the_fan_out_tree_and_output_suits_scripts(self):
        m = self.mesh
        m.write("split.yaml", actor_yaml("split", "steps.split"))
        m.write("part.yaml", actor_yaml("part", "steps.check_part", timeout=1))
        m.up()
        # Every result of the tree, as it arrives, then the count; exit 1 as one failed.
        r = m.asya("send", "split,part", '{"parts": ["a", "bad", "c"]}', "--wait",
                   "--timeout", "60")
        self.assertEqual(r.returncode, 1, r.stderr)
        docs = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(docs), 3, r.stdout)
        root = docs[0]["id"].split("-")[0:5]
        root = "-".join(root)
        self.assertEqual(sorted(d["id"] for d in docs), [root, root + "-1", root + "-2"])
        self.assertIn("sent " + root, r.stderr)
        self.assertIn("3 results: 2 succeeded, 1 failed", r.stderr)
        failed = [d for d in docs if "error" in d["payload"]]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["payload"]["details"]["type"], "ValueError")
        # -o json: one document with every result.
        r = m.asya("send", "split,part", '{"parts": ["a", "b"]}', "--wait", "-o", "json",
                   "--timeout", "60")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertTrue(doc["complete"])
        self.assertEqual((doc["succeeded"], doc["failed"]), (2, 0))
        self.assertEqual(sorted(x["id"] for x in doc["results"]),
                         [doc["ids"][0], doc["ids"][0] + "-1"])
        self.assertEqual(sorted(x["envelope"]["payload"]["part"] for x in doc["results"]),
                         ["a", "b"])
        # A batch: --jsonl --wait waits for every tree and sums up (no progress bar in a pipe).
        r = m.asya("send", "split,part", "-", "--jsonl", "--wait", "--timeout", "60",
                   input='{"parts": ["a"]}\n{"parts": ["b", "c"]}\n{"parts": ["d", "bad"]}\n')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 5)
        self.assertIn("3 envelopes (3 final), 5 results: 4 succeeded, 1 failed", r.stderr)
        self.assertNotIn("\r", r.stderr)
        # A runtime timeout reaches error-end in the same shape.
        r = m.asya("send", "part", '{"part": "slow"}', "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 1, r.stderr)
        err = json.loads(r.stdout)["payload"]
        self.assertEqual(err["error"], "Runtime timeout exceeded after 1s")
        self.assertEqual(err["details"]["type"], "RuntimeTimeout")
        self.assertEqual(err["details"]["message"], err["error"])
        # get actors -o json: machine values under the same keys.
        rows = {row["name"]: row for row in json.loads(m.asya("get", "actors", "-o", "json").stdout)}
        self.assertRegex(rows["split"]["age"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(rows["split"]["lastScale"]["direction"], "up")  # the first replica
        self.assertRegex(rows["split"]["lastScale"]["time"], r"^\d{4}-\d\d-\d\dT.*Z$")
        self.assertEqual(m.stop(), 0)

    def test_long_state_dir_gets_short_socket_dirs(self):
        self.mesh = m = Mesh({"steps.py": STEPS}, state_name="s" * 100)
        m.write("add.yaml", actor_yaml("add", "steps.add_one"))
        m.up()
        ok = m.asya("send", "add", '{"n": 1}', "--wait", "--timeout", "30")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("socket=/tmp/asya-", m.asya("logs", "add").stdout)
        self.assertEqual(m.stop(), 0)

    def test_runtime_concurrency_follows_sidecar_concurrency(self):
        m = self.mesh
        m.write("par.yaml", actor_yaml("par", "steps.add_one",
                                       sidecar_env={"ASYA_SIDECAR_CONCURRENCY": "4"}))
        m.write("own.yaml", actor_yaml("own", "steps.add_one",
                                       env={"ASYA_RUNTIME_CONCURRENCY": "2"},
                                       sidecar_env={"ASYA_SIDECAR_CONCURRENCY": "4"}))
        m.up()

        def runtime_env(actor):
            return environ_of(m.actor(actor)["replicas"][0]["runtimePid"])

        self.assertEqual(runtime_env("par")["ASYA_RUNTIME_CONCURRENCY"], "4")
        self.assertEqual(runtime_env("own")["ASYA_RUNTIME_CONCURRENCY"], "2")
        ids = m.send_many("par", [{"n": i} for i in range(20)])
        m.wait_for(lambda: set(ids) <= set(m.stored("results")), 60, "20 results")
        self.assertEqual(m.stop(), 0)

    def test_values_file_example_runs(self):
        m = self.mesh
        src = os.path.join(os.environ.get("ASYA_SOURCE_DIR", "."), "examples", "orders")
        m.up(os.path.join(src, "values.yaml"))
        ok = m.asya("send", "validate,price,total",
                    '{"customer": "Ada", "lines": [{"sku": "mug", "qty": 2}]}',
                    "--wait", "--timeout", "60")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        result = json.loads(ok.stdout)["payload"]
        self.assertEqual(result["total_cents"], 2880)
        bad = m.asya("send", "validate,price,total",
                     '{"customer": "Ada", "lines": [{"sku": "mug", "qty": 0}]}',
                     "--wait", "--timeout", "60")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("positive integer", bad.stdout)
        self.assertEqual(m.stop(), 0)


class InvalidManifestTest(unittest.TestCase):
    """`asya up` refuses invalid input with exit 2 naming file, actor and field."""

    def setUp(self):
        require_binaries(self)
        self.mesh = Mesh()

    def refused(self, text, *needles):
        path = self.mesh.write("bad.yaml", text)
        r = subprocess.run([ASYA, "up", path, "--state-dir", self.mesh.state],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("refusing invalid manifests", r.stderr)
        self.assertIn(path, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.mesh.state, "status.json")))
        return r.stderr

    def base(self, **kw):
        return actor_yaml("bad-actor", "steps.add_one", **kw)

    # Each validation rule has its case in tests/unit/actor (the table of refusal messages) and
    # `asya render` refuses the same manifests with the same lines (tests/cli/test_render_cli.py);
    # here one rule shows the whole path through the binary: exit 2, file, actor and field named,
    # nothing started.
    def test_invalid_manifest_is_refused_naming_file_actor_and_field(self):
        self.refused(self.base(scaling={"minReplicas": 4, "maxReplicas": 2}),
                     'actor "bad-actor"',
                     "spec.scaling.minReplicas: must be <= maxReplicas (4 > 2)")

    def test_unparsable_file_is_refused(self):
        self.refused("kind: [AsyncActor\n", "invalid YAML")

    def test_missing_path(self):
        r = subprocess.run([ASYA, "up", "/nonexistent/x.yaml", "--state-dir", self.mesh.state],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such file or directory", r.stderr)


if __name__ == "__main__":
    unittest.main()
