"""asya-gateway end to end: the built binary in front of a real `asya up` mesh (SQLite queues,
real sidecars, runtimes and crew). A REST tool call becomes an envelope, the sidecars report
progress, happy-end/error-end report the final status, and the SSE stream shows all of it. Also the
gateway edge cases of reference-controlplane §9 and bad input. Standard library only."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from mesh import ASYA, Mesh, actor_yaml  # noqa: E402

GATEWAY = os.path.join(os.path.dirname(ASYA), "asya-gateway")
CLIENT = "client-token"
CALLBACK = "callback-token"

STEPS = '''
import os, time

def add_one(p):
    return {"n": p["n"] + 1}

def double(p):
    return {"n": p["n"] * 2}

def slow(p):
    time.sleep(float(p.get("sleep", 3)))
    return p

def boom(p):
    raise ValueError("boom: " + str(p.get("n")))

def fan(p):
    return [{"n": p["n"]}, {"n": p["n"] + 100}]
'''

TOOLS = '''
defaults: {progress: true, timeout: 60}
tools:
- name: compute
  description: add one, then double
  route: [add, double]
  parameters:
    n: {type: integer, required: true}
- name: explode
  route: [add, boom]
  parameters:
    n: {type: integer, required: true}
- name: sleepy
  route: [slow]
  timeout: 1
  parameters:
    sleep: {type: number, default: 3}
- name: spread
  route: [fan, add]
  parameters:
    n: {type: integer, required: true}
'''


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    def __init__(self, workdir, sqlite_path, env=None):
        self.port = free_port()
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "gateway-%d.log" % self.port)
        tools = os.path.join(workdir, "tools.yaml")
        with open(tools, "w") as f:
            f.write(TOOLS)
        self.env = dict(os.environ)
        self.env.update({
            "ASYA_GATEWAY_PORT": str(self.port),
            "ASYA_GATEWAY_ADDR": "127.0.0.1",
            "ASYA_CONFIG_PATH": tools,
            "ASYA_DATABASE_URL": "sqlite://" + os.path.join(workdir, "gateway.db"),
            "ASYA_TRANSPORT": "sqlite",
            "ASYA_SQLITE_PATH": sqlite_path,
            "ASYA_GATEWAY_TOKENS": CLIENT + ",second-token",
            "ASYA_GATEWAY_TOKEN": CALLBACK,
            "ASYA_MAX_MESSAGE_BYTES": str(1 << 20),
        })
        self.env.update(env or {})
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([GATEWAY], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.request("GET", "/health", token=None)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited: " + self.output())
            time.sleep(0.05)
        raise AssertionError("gateway did not start: " + self.output())

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        self.log.close()
        return rc

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, token=CLIENT, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.status, r.read().decode(errors="replace"), dict(r.getheaders())
        c.close()
        return out

    def call(self, tool, arguments):
        status, body, _ = self.request("POST", "/tools/call", {"name": tool, "arguments": arguments})
        assert status == 200, (status, body)
        result = json.loads(body)
        assert not result.get("isError"), result
        return json.loads(result["content"][0]["text"])["envelope_id"]

    def envelope(self, id):
        status, body, _ = self.request("GET", "/envelopes/" + id)
        assert status == 200, (status, body)
        return json.loads(body)

    def wait_final(self, id, timeout=60):
        # A fan-out child is recorded by its actor's (batched) gateway reports, which may reach
        # the gateway after the parent's final status: until then it is unknown (404).
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body, _ = self.request("GET", "/envelopes/" + id)
            assert status in (200, 404), (status, body)
            if status == 200:
                env = json.loads(body)
                if env["status"] in ("succeeded", "failed", "cancelled"):
                    return env
            time.sleep(0.1)
        raise AssertionError("envelope %s not final: %s" % (id, self.envelope(id)))

    def stream(self, id, headers=None, timeout=60):
        """Reads the SSE stream to its end: [(event id, data dict)], comments counted apart."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Authorization": "Bearer " + CLIENT, "Accept": "text/event-stream"}
        h.update(headers or {})
        c.request("GET", "/envelopes/%s/stream" % id, headers=h)
        r = c.getresponse()
        assert r.status == 200, r.status
        assert r.getheader("Content-Type") == "text/event-stream"
        events, cur_id, data = [], None, None
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("id: "):
                cur_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and data is not None:
                events.append((cur_id, data))
                cur_id, data = None, None
        c.close()
        return events


class GatewayMeshTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("asya", "asya-sidecar", "asya-crew", "asya-gateway"):
            if not os.path.exists(os.path.join(os.path.dirname(ASYA), name)):
                raise RuntimeError("%s is not built" % name)
        cls.mesh = Mesh({"steps.py": STEPS})
        m = cls.mesh
        os.makedirs(m.state, exist_ok=True)
        cls.gw = Gateway(m.dir, os.path.join(m.state, "queues.db"))
        cls.gw.start()
        for name, handler in (("add", "steps.add_one"), ("double", "steps.double"),
                              ("slow", "steps.slow"), ("boom", "steps.boom"),
                              ("fan", "steps.fan")):
            m.write(name + ".yaml", actor_yaml(name, handler, replicas=1, timeout=30))
        saved = dict(os.environ)
        os.environ["ASYA_GATEWAY_URL"] = "http://127.0.0.1:%d" % cls.gw.port
        os.environ["ASYA_GATEWAY_TOKEN"] = CALLBACK
        try:
            m.up()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.mesh.stop()
        finally:
            cls.gw.stop()

    def test_tool_call_runs_the_pipeline_and_streams_progress(self):
        gw = self.gw
        id = gw.call("compute", {"n": 4})
        events = gw.stream(id)
        statuses = [e["status"] for _, e in events]
        self.assertEqual(statuses[0], "pending")
        self.assertEqual(statuses[-1], "succeeded")
        self.assertEqual(statuses.count("succeeded"), 1)
        ids = [i for i, _ in events]
        self.assertTrue(all(i is not None and i > 0 for i in ids), ids)
        self.assertEqual(ids, sorted(set(ids)))
        percents = [e["progress_percent"] for _, e in events if "progress_percent" in e]
        self.assertEqual(percents, sorted(percents))
        self.assertTrue(all(p < 100 for p in percents[:-1]), percents)  # 100 only at the end
        self.assertEqual(events[-1][1]["progress_percent"], 100)
        self.assertEqual(events[-1][1]["result"], {"n": 10})
        # Progress posts are asynchronous (DESIGN §4.9): in a fast pipeline the final report may
        # overtake them, and a report after the final one changes nothing. Whatever arrived came
        # from the route's actors.
        for _, e in events:
            if e.get("envelope_state"):
                self.assertIn(e["envelope_state"], ("received", "processing", "completed"))
                self.assertIn(e["actors"][e["current_actor_idx"]], ("add", "double"))
        env = gw.envelope(id)
        self.assertEqual(env["status"], "succeeded")
        self.assertEqual(env["result"], {"n": 10})
        self.assertEqual(env["progress_percent"], 100)

        # A late subscriber still gets the final event, then the stream closes.
        late = gw.stream(id)
        self.assertEqual(late[-1][1]["status"], "succeeded")
        self.assertEqual([i for i, _ in late], ids)
        # Resume after the third event.
        resumed = gw.stream(id, headers={"Last-Event-ID": str(ids[2])})
        self.assertEqual([i for i, _ in resumed], ids[3:])
        # /active: final → 410.
        self.assertEqual(gw.request("GET", "/envelopes/%s/active" % id)[0], 410)

    def test_failing_actor_fails_the_envelope(self):
        env = self.gw.wait_final(self.gw.call("explode", {"n": 1}))
        self.assertEqual(env["status"], "failed")
        self.assertEqual(env["error"], "processing_error")
        self.assertIn("boom: 2", env["result"]["details"]["message"])
        self.assertEqual(env["result"]["failed_actor"], "boom")
        self.assertIn("Envelope failed at actor 'boom': processing_error (ValueError: boom: 2)",
                      env["message"])

    def test_deadline_fails_the_envelope_and_a_late_success_changes_nothing(self):
        gw = self.gw
        id = gw.call("sleepy", {"sleep": 3})
        env = gw.wait_final(id, timeout=20)
        self.assertEqual(env["status"], "failed")
        self.assertEqual(env["error"], "envelope timed out")
        # The sidecar's reports arrived while the handler slept (long before the deadline).
        events = gw.stream(id)
        states = [(e.get("envelope_state"), e.get("actors", [None])[e.get("current_actor_idx", 0)])
                  for _, e in events if e.get("envelope_state")]
        self.assertIn(("received", "slow"), states)
        self.assertIn(("processing", "slow"), states)
        self.assertEqual(events[-1][1]["status"], "failed")
        self.assertTrue(all(e["progress_percent"] < 100 for _, e in events[:-1] if "progress_percent" in e))
        time.sleep(4)  # the actor finishes; happy-end reports success, too late
        env = gw.envelope(id)
        self.assertEqual(env["status"], "failed")
        self.assertEqual(env["error"], "envelope timed out")

    def test_fan_out_children_are_recorded_not_republished(self):
        gw = self.gw
        id = gw.call("spread", {"n": 1})
        self.assertEqual(gw.wait_final(id)["status"], "succeeded")
        child = gw.wait_final(id + "-1")
        self.assertEqual(child["parent_id"], id)
        self.assertEqual(child["status"], "succeeded")
        self.assertEqual(child["result"], {"n": 102})
        # Exactly one result per envelope: the child was not published a second time.
        time.sleep(1)
        stored = self.mesh.stored("results")
        self.assertEqual(len(stored.get(id + "-1", [])), 1)
        self.assertEqual(len(stored.get(id, [])), 1)

    def test_concurrent_tool_calls(self):
        gw = self.gw
        ids, errors = [], []

        def one(n):
            try:
                ids.append((n, gw.call("compute", {"n": n})))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for n, id in ids:
            env = gw.wait_final(id, timeout=120)
            self.assertEqual(env["status"], "succeeded")
            self.assertEqual(env["result"], {"n": (n + 1) * 2})

    def test_bad_input(self):
        gw = self.gw
        st, body, _ = gw.request("POST", "/tools/call", raw="{not json")
        self.assertEqual((st, body), (400, "Invalid request body\n"))
        st, body, _ = gw.request("POST", "/tools/call", {"name": "nope"})
        self.assertEqual((st, body), (404, 'Tool "nope" not found\n'))
        st, body, _ = gw.request("POST", "/tools/call", {"name": "compute", "arguments": {"n": "x"}})
        self.assertEqual(st, 200)
        self.assertTrue(json.loads(body)["isError"])
        self.assertIn("parameter 'n': expected integer", body)
        st, body, _ = gw.request("POST", "/tools/call", {"name": "compute", "arguments": {"n": 1, "m": 2}})
        self.assertIn("unknown parameter: m", body)
        st, body, _ = gw.request("POST", "/tools/call", {"name": "compute", "arguments": {}})
        self.assertIn("missing required parameter: n", body)
        st, body, _ = gw.request("POST", "/tools/call", raw='{"name":"compute","arguments":{"n":1},"pad":"%s"}' % ("x" * (2 << 20)))
        self.assertEqual(st, 413)
        self.assertIn("exceeds the limit of 1048576 bytes", body)
        st, _, h = gw.request("POST", "/tools/call", {"name": "compute", "arguments": {"n": 1}}, token=None)
        self.assertEqual(st, 401)
        self.assertTrue(h.get("WWW-Authenticate", "").startswith("Bearer"))
        st, body, h = gw.request("GET", "/envelopes/x", token="wrong")
        self.assertEqual(st, 401)
        self.assertIn("invalid_token", h.get("WWW-Authenticate", ""))
        self.assertEqual(gw.request("GET", "/envelopes/x", token="second-token")[0], 404)
        st, _, _ = gw.request("POST", "/tools/call", {"name": "compute", "arguments": {"n": 1}},
                              headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 403)
        st, _, _ = gw.request("GET", "/health", token=None, headers={"Host": "evil.example"})
        self.assertEqual(st, 403)
        self.assertEqual(gw.request("GET", "/health", token=None)[0], 200)
        self.assertEqual(gw.request("GET", "/envelopes/does-not-exist")[0], 404)
        self.assertEqual(gw.request("GET", "/envelopes/does-not-exist/stream")[0], 404)
        # Callbacks need the callback token, not a client token.
        self.assertEqual(gw.request("POST", "/envelopes/x/progress", {"status": "received"})[0], 401)
        self.assertEqual(gw.request("POST", "/envelopes/x/progress", {"status": "received"},
                                    token=CALLBACK)[0], 404)
        # Nothing of the above leaked into the log.
        self.assertNotIn(CLIENT, gw.output())
        self.assertNotIn(CALLBACK, gw.output())
        self.assertNotIn("xxxxxxxx", gw.output())


class GatewayProcessTest(unittest.TestCase):
    def test_no_tokens_means_loopback_and_a_foreign_address_is_refused(self):
        d = tempfile.mkdtemp(prefix="asya-gw-", dir="/tmp")
        env = dict(os.environ, ASYA_GATEWAY_PORT=str(free_port()), ASYA_TRANSPORT="sqlite",
                   ASYA_SQLITE_PATH=os.path.join(d, "q.db"),
                   ASYA_DATABASE_URL="sqlite://" + os.path.join(d, "g.db"))
        env.pop("ASYA_GATEWAY_TOKENS", None)
        r = subprocess.run([GATEWAY], env=dict(env, ASYA_GATEWAY_ADDR="0.0.0.0"),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a loopback address and no client tokens", r.stderr)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("tools:\n- name: a\n  route: [x]\n  colour: red\n")
        r = subprocess.run([GATEWAY], env=dict(env, ASYA_CONFIG_PATH=bad),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.yaml:4: unknown key 'colour'", r.stderr)
        p = subprocess.Popen([GATEWAY], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines = [p.stdout.readline() for _ in range(2)]
            self.assertIn("loopback only", "".join(lines))
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 0)
            p.stdout.close()

    def test_restart_keeps_status_and_deadlines(self):
        d = tempfile.mkdtemp(prefix="asya-gw-", dir="/tmp")
        gw = Gateway(d, os.path.join(d, "q.db"))
        gw.start()
        try:
            id = gw.call("sleepy", {"sleep": 1})  # nothing consumes `slow` here
            self.assertEqual(gw.stop(), 0)
            time.sleep(1.5)  # the deadline passes while the gateway is down
            gw.start()
            env = gw.wait_final(id, timeout=20)
            self.assertEqual(env["status"], "failed")
            self.assertEqual(env["error"], "envelope timed out")
            events = gw.stream(id)
            self.assertEqual(events[-1][1]["status"], "failed")
        finally:
            gw.stop()


if __name__ == "__main__":
    unittest.main()
