"""Issue 11 (what a new user trips over), end to end through the real binaries: misspelt fields
(item 7), `asya up` on a running mesh (6), `up --detach` readiness (4), a runtime that dies
(1), a timeout set in the runtime's env (15) and `asya down` (8)."""

import json
import os
import subprocess
import time
import unittest

from mesh import ASYA, Mesh, actor_yaml, environ_of, pid_alive

STEPS = '''
import os, time

def add_one(p):
    return {"n": p["n"] + 1}

def slow(p):
    time.sleep(float(os.environ.get("SLEEP", "0.05")))
    return p

def die(p):
    os.kill(os.getpid(), 9)
'''


def error_text(stdout):
    """The (last) envelope `asya send --wait` printed on stdout, one JSON document per line."""
    return json.dumps(json.loads(stdout.strip().splitlines()[-1]))


class NewcomerTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(ASYA):
            raise RuntimeError("asya is not built (run make build first)")
        self.mesh = Mesh({"steps.py": STEPS})
        self.detached = False

    def tearDown(self):
        if self.mesh.proc is not None:
            self.mesh.stop()
        if self.detached:
            self.mesh.asya("down", timeout=120)

    def detach(self, *paths, expect=0):
        r = self.mesh.asya("up", *(paths or (self.mesh.code,)), "--detach",
                           "--restart-backoff", "500ms", timeout=180)
        self.detached = True
        self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r

    # ---- item 7 ----

    def test_misspelt_field_is_refused_by_up_and_render_alike(self):
        m = self.mesh
        text = actor_yaml("typo", "steps.add_one", scaling={"minReplica": 0})
        path = m.write("typo.yaml", text)
        line = ('actor "typo": spec.scaling.minReplica: unknown field; '
                'did you mean `minReplicas`?')
        up = subprocess.run([ASYA, "up", path, "--state-dir", m.state],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(up.returncode, 2, up.stdout + up.stderr)
        self.assertIn(path + ": " + line, up.stderr)
        self.assertFalse(os.path.exists(os.path.join(m.state, "status.json")))
        render = subprocess.run([ASYA, "render", path], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(render.returncode, 2, render.stdout + render.stderr)
        self.assertIn(path + ": " + line, render.stderr)

    # ---- items 6 and 7 (transport note) ----

    def test_up_on_a_running_mesh_adds_and_updates_only_unless_pruned(self):
        m = self.mesh
        m.write("a.yaml", actor_yaml("a", "steps.add_one"))
        # No spec.transport at all: fine for asya up.
        m.write("b.yaml", actor_yaml("b", "steps.add_one").replace("  transport: rabbitmq\n", ""))
        m.up()
        self.assertIn("note: spec.transport (rabbitmq)", m.output())
        other = os.path.join(m.dir, "other")
        os.makedirs(other)
        with open(os.path.join(other, "c.yaml"), "w") as f:
            f.write(actor_yaml("c", "steps.add_one"))
        with open(os.path.join(other, "steps.py"), "w") as f:
            f.write(STEPS)
        r = m.asya("up", os.path.join(other, "c.yaml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("added:   c", r.stdout)
        self.assertNotIn("removed:", r.stdout)
        self.assertIn("running: a b (not in these manifests; --prune removes them)", r.stdout)
        m.wait_for(m.all_settled, 60, "c running")
        names = {a["name"] for a in m.status()["actors"]}
        self.assertTrue({"a", "b", "c"} <= names, names)
        ok = m.asya("send", "a,c", '{"n": 1}', "--wait", "--timeout", "60")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        r = m.asya("up", os.path.join(other, "c.yaml"), "--prune")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("removed: a b", r.stdout)
        m.wait_for(lambda: m.actor("a") is None and m.actor("b") is None, 60, "a, b removed")
        self.assertEqual(m.stop(), 0)

    # ---- item 4 ----

    def test_detach_waits_for_ready_and_names_failing_actors(self):
        m = self.mesh
        m.write("good.yaml", actor_yaml("good", "steps.add_one"))
        m.write("broken.yaml", actor_yaml("broken", "nosuchmodule.handle"))
        r = self.detach(expect=1)
        self.assertIn("running in the background", r.stdout)
        table = r.stdout.splitlines()
        header = [l for l in table if l.startswith("NAME")]
        self.assertTrue(header, r.stdout)
        rows = {l.split()[0]: l.split() for l in table[table.index(header[0]) + 1:] if l.strip()}
        self.assertEqual(rows["good"][1], "Running", r.stdout)
        self.assertEqual(rows["broken"][1], "RuntimeError", r.stdout)
        self.assertIn("1 actor failing: broken; see `asya logs broken`", r.stderr)
        self.assertNotIn("good", r.stderr)
        # A --wait that times out names the actors of the route that are not running.
        w = m.asya("send", "good,broken", '{"n": 1}', "--wait", "--timeout", "2")
        self.assertNotEqual(w.returncode, 0)
        self.assertIn("not running on the route: broken (RuntimeError: see `asya logs broken`)",
                      w.stderr)
        self.assertNotIn("good (", w.stderr)
        # A mesh whose actors all start: exit 0 and every one ready in the table.
        down = m.asya("down", timeout=120)
        self.assertEqual(down.returncode, 0, down.stderr)
        os.remove(os.path.join(m.code, "broken.yaml"))
        r = self.detach()
        self.assertRegex(r.stdout, r"\ngood +Running +1 ")
        self.assertEqual(r.stderr.count("failing"), 0, r.stderr)

    # ---- item 1 ----

    def test_dead_runtime_is_named_in_the_error_and_describe_shows_retry_policy(self):
        m = self.mesh
        m.write("dies.yaml", actor_yaml("dies", "steps.die"))
        m.write("retries.yaml", actor_yaml("retries", "steps.add_one",
                                           sidecar_env={"ASYA_RETRY_MAX_ATTEMPTS": "4",
                                                        "ASYA_RETRY_BACKOFF": "200ms"}))
        m.up(backoff="300ms")
        r = m.asya("send", "dies", '{"n": 1}', "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        err = error_text(r.stdout)
        self.assertIn("failed to read response from runtime", err)  # the original's words stay
        self.assertIn("the runtime process died (signal 9 (SIGKILL))", err)
        d = m.asya("describe", "actor", "dies")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertIn("Retry:           no retry (maxAttempts 1)", d.stdout)
        self.assertIn("Max deliveries:  5", d.stdout)
        d = m.asya("describe", "actor", "retries")
        self.assertIn("Retry:           up to 4 attempts, back-off 200ms doubling to 5m", d.stdout)
        self.assertEqual(m.stop(), 0)

    # ---- item 15 ----

    def test_timeout_in_the_runtime_env_is_used_by_both_processes(self):
        m = self.mesh
        m.write("slow.yaml", actor_yaml("slow", "steps.slow", timeout=30,
                                        env={"ASYA_RUNTIME_TIMEOUT": "1s", "SLEEP": "5"}))
        m.up()
        rep = m.actor("slow")["replicas"][0]

        for pid in (rep["runtimePid"], rep["sidecarPid"]):
            self.assertEqual(environ_of(pid).get("ASYA_RUNTIME_TIMEOUT"), "1s")
        r = m.asya("send", "slow", '{"n": 1}', "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("Runtime timeout exceeded after 1s", error_text(r.stdout))
        self.assertIn("1s (ASYA_RUNTIME_TIMEOUT of runtime and sidecar)",
                      m.asya("describe", "actor", "slow").stdout)
        self.assertEqual(m.stop(), 0)

    # ---- item 8 ----

    def test_down_shows_the_drain_and_what_stays_queued(self):
        m = self.mesh
        m.write("slow.yaml", actor_yaml("slow", "steps.slow", timeout=30, env={"SLEEP": "3"}))
        self.detach()
        m.send_many("slow", [{"n": i} for i in range(4)])
        m.wait_for(lambda: (m.actor("slow") or {}).get("processing", 0) >= 1, 30, "in flight")
        with open(os.path.join(m.state, "supervisor.pid")) as f:
            pid = int(f.read())
        down = m.asya("down", timeout=120)
        self.detached = False
        self.assertEqual(down.returncode, 0, down.stdout + down.stderr)
        self.assertFalse(pid_alive(pid))
        self.assertRegex(down.stderr, r"asya down: draining .*slow \(")
        self.assertIn("left queued", down.stdout)
        self.assertRegex(down.stdout, r"\n +slow +[1-4] messages? +\(queue asya-slow\)")
        with open(os.path.join(m.state, "logs", "slow.log")) as f:
            log = f.read()
        self.assertNotIn("second signal", log)
        self.assertIn("sidecar stopped (exit 0)", log)


if __name__ == "__main__":
    unittest.main()
