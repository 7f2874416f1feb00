"""`asya up` runs asya-gateway by default (issue 10 item 5): a directory with a 2-actor Python
pipeline and a tools YAML comes up with a gateway on 127.0.0.1 whose URL is in <state>/gateway.url;
a REST tool call runs the pipeline, the sidecars report progress and the crew the final status
(with the per-mesh callback token), the SSE stream shows it, and `asya down` stops the gateway.
`--no-gateway` runs none. Standard library only."""

import http.client
import json
import os
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from mesh import ASYA, Mesh, actor_yaml, environ_of, pid_alive  # noqa: E402

STEPS = '''
def add_one(p):
    return {"n": p["n"] + 1}

def double(p):
    return {"n": p["n"] * 2}
'''

TOOLS = '''# served by the mesh's gateway
defaults: {progress: true, timeout: 60}
tools:
- name: compute
  description: add one, then double
  route: [add, double]
  parameters:
    n: {type: integer, required: true}
'''

MORE_TOOLS = '''tools:
- name: twice
  description: double only
  route: [double]
  parameters:
    n: {type: integer, required: true}
'''


class Client:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers or {})
        r = c.getresponse()
        out = r.status, r.read().decode(errors="replace")
        c.close()
        return out

    def call(self, tool, arguments):
        status, body = self.request("POST", "/tools/call", {"name": tool, "arguments": arguments})
        assert status == 200, (status, body)
        result = json.loads(body)
        assert not result.get("isError"), result
        return json.loads(result["content"][0]["text"])["envelope_id"]

    def envelope(self, id):
        status, body = self.request("GET", "/envelopes/" + id)
        assert status == 200, (status, body)
        return json.loads(body)

    def wait_final(self, id, timeout=90):
        deadline = time.time() + timeout
        env = None
        while time.time() < deadline:
            env = self.envelope(id)
            if env["status"] in ("succeeded", "failed", "cancelled"):
                return env
            time.sleep(0.1)
        raise AssertionError("envelope %s not final: %s" % (id, env))

    def stream(self, id):
        c = http.client.HTTPConnection(self.host, self.port, timeout=90)
        c.request("GET", "/envelopes/%s/stream" % id, headers={"Accept": "text/event-stream"})
        r = c.getresponse()
        assert r.status == 200, r.status
        events, data = [], None
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and data is not None:
                events.append(data)
                data = None
        c.close()
        return events


def sidecar_pids(mesh):
    st = mesh.status() or {"actors": []}
    return [r["sidecarPid"] for a in st["actors"] for r in a["replicas"] if r["sidecarPid"]]


class UpRunsTheGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("asya", "asya-sidecar", "asya-crew", "asya-gateway"):
            if not os.path.exists(os.path.join(os.path.dirname(ASYA), name)):
                raise RuntimeError("%s is not built" % name)
        m = cls.mesh = Mesh({"steps.py": STEPS})
        m.write("add.yaml", actor_yaml("add", "steps.add_one", replicas=1, timeout=30))
        m.write("double.yaml", actor_yaml("double", "steps.double", replicas=1, timeout=30))
        m.write("tools.yaml", TOOLS)
        cls.more_tools = os.path.join(m.dir, "more-tools.yaml")
        with open(cls.more_tools, "w") as f:
            f.write(MORE_TOOLS)
        os.environ.pop("ASYA_GATEWAY_URL", None)
        r = m.asya("up", m.code, "--detach", "--restart-backoff", "1s", "--tools", cls.more_tools,
                   timeout=120)
        if r.returncode != 0:
            raise AssertionError("asya up --detach failed: %s%s" % (r.stdout, r.stderr))
        cls.url_path = os.path.join(m.state, "gateway.url")
        m.wait_for(lambda: os.path.exists(cls.url_path), 60, "gateway.url")
        m.wait_for(m.all_settled, 60, "every actor ready")
        with open(cls.url_path) as f:
            cls.url = f.read().strip()
        cls.gw = Client(cls.url)

    @classmethod
    def tearDownClass(cls):
        if os.path.exists(os.path.join(cls.mesh.state, "supervisor.pid")):
            cls.mesh.asya("down", timeout=120)

    def gateway_pid(self):
        with open(os.path.join(self.mesh.state, "logs", "gateway.log")) as f:
            pids = re.findall(r"started gateway pid (\d+)", f.read())
        self.assertTrue(pids, "no gateway start in logs/gateway.log")
        return int(pids[-1])

    def test_1_gateway_on_loopback_with_its_store(self):
        self.assertRegex(self.url, r"^http://127\.0\.0\.1:\d+$")
        self.assertEqual(self.gw.request("GET", "/health")[0], 200)
        self.assertTrue(os.path.exists(os.path.join(self.mesh.state, "gateway.db")))
        env = environ_of(self.gateway_pid())
        self.assertEqual(env["ASYA_GATEWAY_ADDR"], "127.0.0.1")
        self.assertEqual(env["ASYA_DATABASE_URL"],
                         "sqlite://" + os.path.join(self.mesh.state, "gateway.db"))
        self.assertEqual(env["ASYA_TRANSPORT"], "sqlite")
        # Every sidecar (crew included) reports to it with the mesh's callback token.
        pids = sidecar_pids(self.mesh)
        self.assertEqual(len(pids), 4, self.mesh.status())
        for pid in pids:
            senv = environ_of(pid)
            self.assertEqual(senv["ASYA_GATEWAY_URL"], self.url)
            self.assertEqual(senv["ASYA_GATEWAY_TOKEN"], env["ASYA_GATEWAY_TOKEN"])
        self.assertGreaterEqual(len(env["ASYA_GATEWAY_TOKEN"]), 32)
        logs = self.mesh.asya("logs", "gateway")
        self.assertEqual(logs.returncode, 0, logs.stderr)
        self.assertIn("gateway ready at " + self.url, logs.stdout)

    def test_2_tools_from_the_directory_and_the_flag(self):
        status, body = self.gw.request("GET", "/tools")
        self.assertEqual(status, 200, body)
        names = sorted(t["name"] for t in json.loads(body)["tools"])
        self.assertEqual(names, ["compute", "twice"])

    def test_3_tool_call_runs_the_pipeline(self):
        id = self.gw.call("compute", {"n": 4})
        events = self.gw.stream(id)
        env = self.gw.wait_final(id)
        self.assertEqual(env["status"], "succeeded", env)
        self.assertEqual(env["result"], {"n": 10})
        self.assertEqual(env["progress_percent"], 100)
        statuses = [e["status"] for e in events]
        self.assertEqual(statuses[-1], "succeeded", events)
        self.assertEqual(events[-1]["result"], {"n": 10})
        # Progress from the actors' sidecars before the final event.
        states = [e.get("envelope_state") for e in events[:-1]]
        self.assertIn("received", states, events)
        self.assertIn("completed", states, events)
        percents = [e["progress_percent"] for e in events[:-1] if "progress_percent" in e]
        self.assertTrue(any(0 < p < 100 for p in percents), events)
        # The second tool (from --tools) too.
        self.assertEqual(self.gw.wait_final(self.gw.call("twice", {"n": 21}))["result"], {"n": 42})

    def test_3b_mcp_tools_call_runs_the_pipeline(self):
        def rpc(body, session=None):
            c = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=90)
            h = {"Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream"}
            if session:
                h["Mcp-Session-Id"] = session
            c.request("POST", "/mcp", body=json.dumps(body), headers=h)
            r = c.getresponse()
            text = r.read().decode()
            sid = r.getheader("Mcp-Session-Id")
            c.close()
            self.assertIn(r.status, (200, 202), text)
            data = [l[6:] for l in text.splitlines() if l.startswith("data: ")]
            return (json.loads(data[-1]) if data else json.loads(text) if text else None), sid

        init, sid = rpc({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                         "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                                    "clientInfo": {"name": "up-gateway-test", "version": "1"}}})
        self.assertEqual(init["result"]["protocolVersion"], "2025-03-26")
        self.assertTrue(sid)
        rpc({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        listed, _ = rpc({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
        self.assertEqual(sorted(t["name"] for t in listed["result"]["tools"]), ["compute", "twice"])
        called, _ = rpc({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "compute", "arguments": {"n": 5}}}, sid)
        self.assertFalse(called["result"].get("isError"), called)
        self.assertEqual(called["result"]["structuredContent"], {"n": 12})

    def test_4_callbacks_need_the_mesh_token(self):
        id = self.gw.call("compute", {"n": 1})
        self.gw.wait_final(id)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, _ = self.gw.request("POST", "/envelopes/%s/progress" % id,
                                        {"status": "processing"}, headers)
            self.assertEqual(status, 401)

    def test_5_asya_send_still_works_beside_the_gateway(self):
        r = self.mesh.asya("send", "add,double", '{"n": 2}', "--wait", "--timeout", "60")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"payload":{"n":6}', "".join(r.stdout.split()))

    def test_9_down_stops_the_gateway(self):
        pid = self.gateway_pid()
        self.assertTrue(pid_alive(pid))
        r = self.mesh.asya("down", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.time() + 10
        while time.time() < deadline and pid_alive(pid):
            time.sleep(0.1)
        self.assertFalse(pid_alive(pid))
        self.assertFalse(os.path.exists(self.url_path))


class UpWithoutGateway(unittest.TestCase):
    def test_no_gateway_writes_no_url_and_sets_no_reporting(self):
        m = Mesh({"steps.py": STEPS})
        m.write("add.yaml", actor_yaml("add", "steps.add_one", replicas=1, timeout=30))
        m.write("tools.yaml", TOOLS)
        os.environ.pop("ASYA_GATEWAY_URL", None)
        try:
            m.up(extra=("--no-gateway",))
            self.assertIn("not served", m.output())
            self.assertFalse(os.path.exists(os.path.join(m.state, "gateway.url")))
            self.assertFalse(os.path.exists(os.path.join(m.state, "logs", "gateway.log")))
            for pid in sidecar_pids(m):
                self.assertNotIn("ASYA_GATEWAY_URL", environ_of(pid))
            r = m.asya("send", "add", '{"n": 1}', "--wait", "--timeout", "60")
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            m.stop()
        self.assertFalse(os.path.exists(os.path.join(m.state, "gateway.url")))

    def test_invalid_tools_are_refused_naming_file_and_line(self):
        m = Mesh({"steps.py": STEPS})
        m.write("add.yaml", actor_yaml("add", "steps.add_one", replicas=1, timeout=30))
        path = m.write("tools.yaml", TOOLS.replace("route: [add, double]",
                                                   "route: [add, double]\n  colour: red"))
        r = m.asya("up", m.code)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(path, r.stderr)
        self.assertIn("colour", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(m.state, "supervisor.pid")))

    def test_tools_flag_without_tools_is_refused(self):
        m = Mesh({"steps.py": STEPS})
        m.write("add.yaml", actor_yaml("add", "steps.add_one", replicas=1, timeout=30))
        other = os.path.join(m.dir, "nothing.yaml")
        with open(other, "w") as f:
            f.write("defaults: {progress: true}\n")
        r = m.asya("up", m.code, "--tools", other)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no gateway tools document", r.stderr)


if __name__ == "__main__":
    unittest.main()
