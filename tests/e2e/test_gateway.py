"""The real asya-gateway in front of an `asya up` mesh whose crew stores in S3 (moto): a tool
call becomes an envelope, the actors' sidecars report progress, the crew's sidecar reports the
final status with `metadata.s3_uri`, and `asya status` / `asya stream` show it (exit codes 0/1).
`asya list|show|call` speak MCP to the same gateway."""

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

from mesh import ASYA, BUILD_DIR, Mesh, actor_yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault", "sqs"))
from moto_fixture import Moto  # noqa: E402

GATEWAY = os.path.join(BUILD_DIR, "bin", "asya-gateway")

STEPS = '''
def double(p):
    return {"n": p["n"] * 2}

def explode(p):
    raise ValueError("exploded on purpose")
'''

TOOLS = '''
defaults: {progress: true, timeout: 120}
tools:
- name: twice
  description: Doubles n twice
  parameters:
    n: {type: integer, required: true}
  route: [dbl, dbl2]
- name: boom
  description: Always fails
  parameters: {}
  route: [explode]
'''

CLIENT, CALLBACK = "client-token", "callback-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.path.exists(GATEWAY), "asya-gateway is not built")
class GatewayMeshTest(unittest.TestCase):
    def setUp(self):
        self.moto = Moto()
        self.addCleanup(self.moto.stop)
        self.mesh = Mesh({"steps.py": STEPS})
        m = self.mesh
        os.makedirs(m.state, exist_ok=True)
        tools = os.path.join(m.dir, "tools.yaml")
        with open(tools, "w") as f:
            f.write(TOOLS)
        port = free_port()
        self.url = "http://127.0.0.1:%d" % port
        env = dict(os.environ, ASYA_GATEWAY_PORT=str(port), ASYA_GATEWAY_ADDR="127.0.0.1",
                   ASYA_DATABASE_URL="sqlite:///" + os.path.join(m.dir, "gateway.db"),
                   ASYA_TRANSPORT="sqlite", ASYA_SQLITE_PATH=os.path.join(m.state, "queues.db"),
                   ASYA_CONFIG_PATH=tools, ASYA_GATEWAY_TOKENS=CLIENT,
                   ASYA_GATEWAY_TOKEN=CALLBACK)
        self.gw_log = open(os.path.join(m.dir, "gateway.log"), "wb")
        self.addCleanup(self.gw_log.close)
        self.gw = subprocess.Popen([GATEWAY], env=env, stdout=self.gw_log,
                                   stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_gateway)
        m.wait_for(self.healthy, 30, "gateway /health")
        m.write("dbl.yaml", actor_yaml("dbl", "steps.double"))
        m.write("dbl2.yaml", actor_yaml("dbl2", "steps.double"))
        m.write("explode.yaml", actor_yaml("explode", "steps.explode"))
        m.up(env={"ASYA_GATEWAY_URL": self.url, "ASYA_GATEWAY_TOKEN": CALLBACK,
                  "ASYA_S3_BUCKET": "e2e-results", "ASYA_S3_ENDPOINT": self.moto.endpoint})
        with open(os.path.join(m.state, "gateway.url"), "w") as f:
            f.write(self.url + "\n")

    def tearDown(self):
        if self.mesh.proc is not None:
            self.mesh.stop()

    def stop_gateway(self):
        if self.gw.poll() is None:
            self.gw.terminate()
            self.gw.wait(15)

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def rest_call(self, tool, arguments):
        req = urllib.request.Request(
            self.url + "/tools/call", data=json.dumps({"name": tool, "arguments": arguments}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + CLIENT})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(json.loads(r.read())["content"][0]["text"])["envelope_id"]

    def test_status_and_stream_of_a_real_pipeline(self):
        m = self.mesh
        eid = self.rest_call("twice", {"n": 5})
        r = m.asya("stream", eid, "--token", CLIENT, "--timeout", "60")
        self.assertEqual(r.returncode, 0, r.stderr + m.output()[-3000:])
        updates = [json.loads(l) for l in r.stdout.splitlines()]
        final = updates[-1]
        self.assertEqual(final["status"], "succeeded", updates)
        self.assertEqual(final["result"], {"n": 20})
        self.assertIn("results stored at s3://e2e-results/results/", final["message"])
        self.assertIn("/dbl2/%s.json" % eid, final["message"])
        progress = [(u["actor"], u["envelope_state"]) for u in updates if "envelope_state" in u]
        # Each actor's sidecar reports in order; two actors' reports may interleave.
        for actor in ("dbl", "dbl2"):
            self.assertEqual([st for a, st in progress if a == actor],
                             ["received", "processing", "completed"], progress)
        self.assertEqual(len(progress), 6, progress)
        percents = [u["progress_percent"] for u in updates if "progress_percent" in u]
        self.assertEqual(percents, sorted(percents))  # never backwards
        self.assertEqual(percents[-1], 100)
        # The object the message names is in the bucket.
        key = final["message"].split("s3://e2e-results/", 1)[1]
        req = urllib.request.Request(
            self.moto.endpoint + "/e2e-results/" + urllib.request.quote(key),
            headers={"Authorization": "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/s3/"
                                      "aws4_request, SignedHeaders=host, Signature=0"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            stored = json.loads(resp.read())
        self.assertEqual((stored["id"], stored["payload"]), (eid, {"n": 20}))
        # status reads the gateway URL that `asya up` would write into the state dir.
        r = m.asya("status", eid, "--token", CLIENT)
        self.assertEqual(r.returncode, 0, r.stderr)
        env = json.loads(r.stdout)
        self.assertEqual((env["status"], env["result"], env["progress_percent"]),
                         ("succeeded", {"n": 20}, 100))
        # The crew also kept it under the state dir (asya send --wait finds results there).
        self.assertIn(eid, m.stored("results"))

    def test_a_failed_pipeline_and_the_client_errors(self):
        m = self.mesh
        eid = self.rest_call("boom", {})
        r = m.asya("stream", eid, "--token", CLIENT, "--timeout", "60")
        self.assertEqual(r.returncode, 1, r.stderr)
        final = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual(final["status"], "failed")
        self.assertIn("exploded on purpose", json.dumps(final))
        r = m.asya("status", eid)  # no token
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)
        r = m.asya("status", "no-such-envelope", "--token", CLIENT)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not found", r.stderr)

    def cli(self, *args):
        # Not Mesh.asya: that appends --state-dir, which after TOOL would be a tool parameter.
        return subprocess.run([ASYA, *args], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, ASYA_STATE_DIR=self.mesh.state))

    def test_list_show_and_call_through_mcp(self):
        r = self.cli("list", "--token", CLIENT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("- name: boom", r.stdout)
        self.assertIn("- name: twice", r.stdout)
        r = self.cli("show", "twice", "--token", CLIENT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("name: twice\ndescription: Doubles n twice\n"), r.stdout)
        self.assertIn("  n:\n    type: integer\n    required: true\n", r.stdout)
        r = self.cli("call", "--token", CLIENT, "--timeout", "60", "twice", "--n", "5")
        self.assertEqual(r.returncode, 0, r.stderr + self.mesh.output()[-3000:])
        self.assertEqual(json.loads(r.stdout), {"n": 20})  # the result alone on stdout
        self.assertIn("100%", r.stderr)  # progress lines (stderr is not a terminal here)
        r = self.cli("call", "--token", CLIENT, "--timeout", "60", "boom")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("exploded on purpose", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.cli("call", "--token", CLIENT, "twice", "--n", "five")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--n: expected integer, got 'five'", r.stderr)
        r = self.cli("call", "twice", "--n", "1")  # no token
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)

if __name__ == "__main__":
    unittest.main()
