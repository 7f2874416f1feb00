"""Gateway replicas on one PostgreSQL store, end to end: two (and, for a while, three) asya-gateway
processes share one database in front of a real `asya up` mesh. `asya call` and the SSE stream use
a replica other than the one the sidecars report to; an MCP session outlives the replica that
opened it and ends everywhere at once. (The official conformance suite and MCP clients run against
replicas in tests/gateway/mcp, ctest gateway_mcp_conformance_replicas.) Standard library only."""

import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "gateway_e2e"))
from mesh import ASYA, Mesh, actor_yaml  # noqa: E402
from postgres import Postgres  # noqa: E402
from test_gateway import CALLBACK, CLIENT, Gateway  # noqa: E402

GREET = '''
def greet(payload):
    return "Hello, %s!" % payload.get("name", "World")
'''

TOOLS = '''
tools:
- name: greet
  description: Greets by name
  route: [fx-greet]
  timeout: 30
  task_support: forbidden
  parameters:
    name: {type: string, required: true}
'''


class GatewayReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres().start()
        cls.mesh = Mesh({"fixtures.py": GREET})
        m = cls.mesh
        os.makedirs(m.state, exist_ok=True)
        tools = os.path.join(m.dir, "replica-tools.yaml")
        with open(tools, "w") as f:
            f.write(TOOLS)
        cls.env = {"ASYA_DATABASE_URL": cls.pg.create_database("gw"), "ASYA_CONFIG_PATH": tools}
        queues = os.path.join(m.state, "queues.db")
        cls.a = Gateway(m.dir, queues, cls.env)  # the sidecars report here
        cls.b = Gateway(m.dir, queues, cls.env)
        cls.a.start()
        cls.b.start()
        m.write("greet.yaml", actor_yaml("fx-greet", "fixtures.greet", replicas=1, timeout=30))
        m.up(env={"ASYA_GATEWAY_URL": "http://127.0.0.1:%d" % cls.a.port,
                  "ASYA_GATEWAY_TOKEN": CALLBACK})

    @classmethod
    def tearDownClass(cls):
        try:
            cls.mesh.stop()
        finally:
            try:
                cls.a.stop()
                cls.b.stop()
            finally:
                cls.pg.stop()

    def mcp(self, gw, body, session=None):
        headers = {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        if session:
            headers["Mcp-Session-Id"] = session
        status, text, out_headers = gw.request("POST", "/mcp", body, headers=headers)
        return status, (json.loads(text) if text else None), out_headers

    def test_cli_calls_through_a_replica_the_sidecars_do_not_report_to(self):
        r = subprocess.run([ASYA, "call", "--url", "http://127.0.0.1:%d" % self.b.port,
                            "--token", CLIENT, "greet", "--name", "Replica"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Hello, Replica!", r.stdout)

    def test_envelope_created_on_one_replica_streams_to_its_end_on_the_other(self):
        id = self.b.call("greet", {"name": "stream"})
        events = self.b.stream(id)  # b hears a's callbacks through LISTEN/NOTIFY
        self.assertEqual(events[0][1]["status"], "pending")
        self.assertEqual(events[-1][1]["status"], "succeeded")
        self.assertEqual(events[-1][1]["result"], "Hello, stream!")
        self.assertEqual(self.a.envelope(id)["status"], "succeeded")

    def test_a_session_outlives_the_replica_that_opened_it(self):
        c = Gateway(self.mesh.dir, os.path.join(self.mesh.state, "queues.db"), self.env)
        c.start()
        try:
            status, body, headers = self.mcp(c, {
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "replicas-test", "version": "1"}}})
            self.assertEqual(status, 200, body)
            session = headers.get("Mcp-Session-Id")
            self.assertTrue(session)
        finally:
            self.assertEqual(c.stop(), 0)
        status, body, _ = self.mcp(self.a, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                            "params": {"name": "greet",
                                                       "arguments": {"name": "later"}}},
                                   session)
        self.assertEqual(status, 200, body)
        self.assertFalse(body["result"].get("isError"), body)
        self.assertEqual(body["result"]["content"][0]["text"], "Hello, later!")
        # Ended on one replica, gone on every replica.
        self.assertEqual(self.b.request("DELETE", "/mcp",
                                        headers={"Mcp-Session-Id": session})[0], 200)
        status, body, _ = self.mcp(self.a, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, session)
        self.assertEqual(status, 404, body)


if __name__ == "__main__":
    unittest.main()
