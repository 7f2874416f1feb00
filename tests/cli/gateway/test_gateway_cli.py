"""`asya list|show|call|status|stream` through the built binary against fake_gateway.py (a
stand-in for asya-gateway speaking the same MCP / REST / SSE). Exit codes: 0 ok, 1 failed,
2 usage or invalid arguments, 3 nothing final within --timeout."""

import json
import os
import pty
import select
import shutil
import subprocess
import tempfile
import unittest

from fake_gateway import FakeGateway

BUILD_DIR = os.environ.get(
    "ASYA_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "release"))
ASYA = os.path.abspath(os.path.join(BUILD_DIR, "bin", "asya"))

_SCRUB = ("ASYA_GATEWAY_URL", "ASYA_GATEWAY_CLIENT_TOKEN", "ASYA_GATEWAY_TOKEN", "ASYA_STATE_DIR")


class GatewayCli(unittest.TestCase):
    token = None

    def setUp(self):
        self.gw = FakeGateway(token=self.token)
        self.addCleanup(self.gw.stop)
        self.dir = tempfile.mkdtemp(prefix="asya-gwcli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        self.env["ASYA_GATEWAY_URL"] = self.gw.url

    def run_cli(self, *args, env=None, stdin=None):
        return subprocess.run([ASYA, *args], capture_output=True, text=True, input=stdin,
                              env=env if env is not None else self.env, cwd=self.dir, timeout=60)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "asya %s: %s" % (args, r.stderr))
        return r

    # ---- list / show ----
    def test_list_every_page_as_yaml_or_json(self):
        r = self.ok("list")
        names = [l.split(": ", 1)[1] for l in r.stdout.splitlines() if l.startswith("- name: ")]
        self.assertEqual(names, ["broken", "echo", "hang", "outlives", "pipeline", "slow"])  # sorted, both pages
        self.assertIn("    text:\n      type: string\n      required: true\n", r.stdout)
        tools = json.loads(self.ok("list", "-o", "json").stdout)
        self.assertEqual(tools[1]["parameters"]["count"], {"type": "integer", "required": False})

    def test_show(self):
        r = self.ok("show", "echo")
        self.assertTrue(r.stdout.startswith("name: echo\ndescription: Says it back\n"), r.stdout)
        self.assertIn("    description: what to say\n", r.stdout)
        self.assertIn("    default: 1\n", r.stdout)
        r = self.run_cli("show", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no tool 'nope'", r.stderr)
        self.assertEqual(r.stdout, "")

    # ---- call ----
    def test_call_synchronous_tool_prints_the_result_alone(self):
        r = self.ok("call", "echo", "--text", "hi", "--count", "2")
        self.assertEqual(json.loads(r.stdout), {"echo": "hi", "count": 2})
        self.assertIn("50% step 1", r.stderr)  # progress notifications, plain lines (no tty)
        self.assertIn("100% step 2", r.stderr)
        self.assertEqual(self.gw.state.calls, [("echo", {"text": "hi", "count": 2})])

    def test_call_with_json_arguments_and_stdin(self):
        r = self.ok("call", "echo", '{"text": "j"}')
        self.assertEqual(json.loads(r.stdout)["echo"], "j")
        r = self.ok("call", "echo", "-", stdin='{"text": "from stdin"}')
        self.assertEqual(json.loads(r.stdout)["echo"], "from stdin")

    def test_call_pipeline_streams_progress_then_prints_the_result(self):
        r = self.ok("call", "pipeline", "--n", "21")
        self.assertEqual(json.loads(r.stdout), {"n": 42})
        eid = self.gw.state.envelopes and list(self.gw.state.envelopes)[0]
        self.assertIn("envelope %s" % eid, r.stderr)
        for line in ("10% a: processing", "43% b: processing", "77% c: processing",
                     "100% succeeded"):
            self.assertIn(line, r.stderr)

    def test_call_follows_a_pipeline_that_outlived_the_synchronous_wait(self):
        r = self.ok("call", "outlives", "--n", "4")
        self.assertEqual(json.loads(r.stdout), {"n": 8})
        self.assertIn("100% succeeded", r.stderr)

    def test_call_no_stream_prints_the_acknowledgement(self):
        r = self.ok("call", "--no-stream", "pipeline", "--n", "1")
        self.assertEqual(json.loads(r.stdout)["message"], "Envelope created successfully")

    def test_call_failures(self):
        r = self.run_cli("call", "pipeline", "--n", "1", "--fail")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("failed: boom in b", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.run_cli("call", "broken")
        self.assertEqual(r.returncode, 1)
        self.assertIn("broken: it broke", r.stderr)
        r = self.run_cli("call", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no tool 'nope'", r.stderr)

    def test_call_bad_arguments_are_refused_before_calling(self):
        for args, needle in (
            (("echo", "--text", "x", "--count", "two"), "--count: expected integer, got 'two'"),
            (("echo", "--count", "2"), "missing required parameter(s): --text"),
            (("echo", "--txt", "x"), "unknown parameter --txt"),
            (("echo", "{oops"), "the arguments are not valid JSON"),
            (("echo", "[1]"), "must be a JSON object, got array"),
            ((), "TOOL is required"),
            (("echo", "--text", "x", "--timeout", "5"), "options go before TOOL"),
            (("--timeout", "-1", "echo"), "--timeout must be a positive number"),
        ):
            r = self.run_cli("call", *args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(needle, r.stderr, args)
        self.assertEqual(self.gw.state.calls, [])

    def test_call_without_a_final_result_in_time(self):
        r = self.run_cli("call", "--timeout", "1", "slow")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("no result for envelope", r.stderr)
        self.assertIn("asya stream ", r.stderr)
        r = self.run_cli("call", "--timeout", "1", "hang")  # a synchronous answer too late
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("no result within 1s (--timeout)", r.stderr)

    def test_call_draws_a_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([ASYA, "call", "pipeline", "--n", "2"], stdout=subprocess.PIPE,
                                 stderr=slave, env=self.env, cwd=self.dir)
            os.close(slave)
            slave = None
            out = p.stdout.read()
            p.stdout.close()
            p.wait(timeout=60)
            tty = b""
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                tty += chunk
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        self.assertEqual(p.returncode, 0, tty)
        self.assertEqual(json.loads(out), {"n": 4})  # stdout has the result alone
        self.assertIn(b"\r\x1b[K[", tty)
        self.assertIn(b"a: processing", tty)

    # ---- status / stream ----
    def test_status_and_stream(self):
        r = self.ok("call", "pipeline", "--n", "5")
        eid = list(self.gw.state.envelopes)[0]
        env = json.loads(self.ok("status", eid).stdout)
        self.assertEqual((env["id"], env["status"], env["result"]), (eid, "succeeded", {"n": 10}))
        lines = self.ok("stream", eid).stdout.splitlines()
        updates = [json.loads(l) for l in lines]
        self.assertEqual([u["status"] for u in updates][-1], "succeeded")
        self.assertEqual(len(updates), 4)  # the replayed history, ending with the final event
        r = self.run_cli("status", "no-such-id")
        self.assertEqual(r.returncode, 1)
        self.assertIn("envelope no-such-id not found", r.stderr)
        self.assertEqual(self.run_cli("stream", "no-such-id").returncode, 1)
        self.assertEqual(self.run_cli("status").returncode, 2)

    def test_stream_of_a_failed_envelope_exits_1(self):
        self.run_cli("call", "--no-stream", "pipeline", "--n", "1", "--fail")
        eid = list(self.gw.state.envelopes)[0]
        r = self.run_cli("stream", eid)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(json.loads(r.stdout.splitlines()[-1])["status"], "failed")

    # ---- where the gateway is ----
    def test_url_from_the_state_dir_then_the_environment_then_the_flag(self):
        env = dict(self.env)
        del env["ASYA_GATEWAY_URL"]
        r = self.run_cli("list", env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no gateway: pass --url, set ASYA_GATEWAY_URL, or run `asya up`", r.stderr)
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        with open(os.path.join(state, "gateway.url"), "w") as f:
            f.write(self.gw.url + "\n")
        self.ok("list", env=dict(env, ASYA_STATE_DIR=state))
        self.ok("list", "--state-dir", state, env=env)
        self.ok("list", "--url", self.gw.url + "/mcp", env=env)
        r = self.run_cli("list", "--url", "http://127.0.0.1:1", env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach", r.stderr)
        r = self.run_cli("list", "--url", "localhost:8089", env=env)
        self.assertEqual(r.returncode, 2)


class GatewayCliWithToken(GatewayCli):
    token = "s3cret"

    def setUp(self):
        super().setUp()
        self.env["ASYA_GATEWAY_CLIENT_TOKEN"] = self.token

    def test_missing_or_wrong_token(self):
        env = dict(self.env)
        del env["ASYA_GATEWAY_CLIENT_TOKEN"]
        r = self.run_cli("list", env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)
        self.assertIn("ASYA_GATEWAY_CLIENT_TOKEN", r.stderr)
        # The callback token's variable (the sidecars') is not the client's: it is not sent.
        r = self.run_cli("list", env=dict(env, ASYA_GATEWAY_TOKEN=self.token))
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)
        self.assertEqual(self.run_cli("list", "--token", "wrong", env=env).returncode, 1)
        self.ok("list", "--token", self.token, env=env)
        self.assertEqual(self.run_cli("status", "x", env=env).returncode, 1)


if __name__ == "__main__":
    unittest.main()
