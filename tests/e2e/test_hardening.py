"""Hardening under `asya up` (issue 12 item 5, docs/reliability.md "Hardening"):

- each replica's socket directory is private (0700); ASYA_SOCKET_CHMOD sets the socket's mode;
- the sidecar's metrics server binds to loopback whatever the manifest asks;
- no secret reaches any log, output, error envelope, `asya describe`, status file, store or
  /metrics: a mesh (sqlite queues, crew on S3 in moto, the embedded gateway with client tokens)
  runs with known secret strings in its environment and manifests, a handler that prints its
  token and fails with it in the message; then sidecars are pointed at RabbitMQ (password in the
  URL) and SQS (AWS keys) endpoints that refuse them, and every byte written is searched.

Cost: about 30 s (15 s of it the RabbitMQ connect budget, in parallel with the rest) (one mesh of 3 actors + crew, two short-lived sidecars, one moto_server).
"""

import json
import os
import socket
import subprocess
import sys
import unittest
import urllib.request

from mesh import ASYA, BUILD_DIR, Mesh, actor_yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault", "sqs"))
from moto_fixture import Moto  # noqa: E402

SIDECAR = os.path.join(BUILD_DIR, "bin", "asya-sidecar")

# Every one of these must never appear anywhere the mesh writes.
ENV_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAHARDENTEST000123",
    "AWS_SECRET_ACCESS_KEY": "awsSecretKEY-0f9e8d7c6b5a",
    "AWS_SESSION_TOKEN": "sessTOKEN-77aa88bb99cc",
    "ASYA_S3_ACCESS_KEY": "s3AccessKey-1a2b3c4d",
    "ASYA_S3_SECRET_KEY": "s3SecretKey-4d5e6f7a",
    "ASYA_GATEWAY_TOKENS": "clientTOKEN-abcdef123456",
}
RMQ_PASSWORD = "rmqPASS-5566778899"
HANDLER_TOKEN = "handlerSECRET-3141592653"
SECRETS = list(ENV_SECRETS.values()) + [RMQ_PASSWORD, HANDLER_TOKEN]

STEPS = '''
import os

def ok(p):
    return {"n": p["n"] + 1}

def leak(p):
    token = os.environ["API_TOKEN"]
    print("calling upstream with token", token, flush=True)
    raise RuntimeError("upstream https://svc:%s@api.example/v1?token=%s refused (Bearer %s)"
                       % (token, token, token))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port):
    """Local addresses (hex, as /proc/net/tcp{,6} shows them) of sockets listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                addr, hexport = cols[1].split(":")
                if cols[3] == "0A" and int(hexport, 16) == port:
                    out.append(addr)
    return out


def files_under(root):
    for d, _, files in os.walk(root):
        for name in files:
            yield os.path.join(d, name)


@unittest.skipUnless(os.path.exists(SIDECAR), "asya-sidecar is not built")
class HardeningTest(unittest.TestCase):
    def setUp(self):
        self.moto = Moto()
        self.addCleanup(self.moto.stop)
        self.mesh = Mesh({"steps.py": STEPS})
        self.rmq_url = "amqp://asya:%s@127.0.0.1:%d/" % (RMQ_PASSWORD, free_port())

    def tearDown(self):
        if self.mesh.proc is not None:
            self.mesh.stop()

    def find_leaks(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        return ["%s: %s" % (name, s) for s in SECRETS if s.encode() in data]

    def start_sidecar(self, env):
        """A sidecar whose broker refuses it (or whose queue is missing)."""
        sock_dir = os.path.join(self.mesh.dir, "sc-" + env["ASYA_TRANSPORT"])
        os.makedirs(sock_dir)
        full = dict(os.environ, **ENV_SECRETS, ASYA_ACTOR_NAME="probe", ASYA_SOCKET_DIR=sock_dir,
                    ASYA_QUEUE_RETRY_MAX_ATTEMPTS="2", ASYA_QUEUE_RETRY_BACKOFF="100ms",
                    ASYA_METRICS_ADDR="127.0.0.1:0", **env)
        return subprocess.Popen([SIDECAR], env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

    @staticmethod
    def output_of(p, grace=3):
        """What `p` prints within `grace` seconds, then after SIGTERM."""
        try:
            out, _ = p.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            p.terminate()
            out, _ = p.communicate(timeout=60)
        return out

    def test_private_sockets_loopback_metrics_and_no_secret_anywhere(self):
        m = self.mesh
        metrics_port = free_port()
        m.write("ok.yaml", actor_yaml(
            "ok", "steps.ok",
            sidecar_env={"ASYA_METRICS_ENABLED": "true",
                         # a manifest asking for all interfaces still gets loopback
                         "ASYA_METRICS_ADDR": "0.0.0.0:%d" % metrics_port,
                         "ASYA_RABBITMQ_URL": self.rmq_url}))
        m.write("leak.yaml", actor_yaml("leak", "steps.leak",
                                        env={"API_TOKEN": HANDLER_TOKEN,
                                             "ASYA_SOCKET_CHMOD": "0o600"}))
        m.up(env=dict(ENV_SECRETS, ASYA_S3_BUCKET="harden", ASYA_S3_ENDPOINT=self.moto.endpoint,
                      ASYA_GATEWAY_CLIENT_TOKEN=ENV_SECRETS["ASYA_GATEWAY_TOKENS"]))

        # 1. Private socket directories; the socket's own mode follows ASYA_SOCKET_CHMOD.
        for actor, mode in (("ok", 0o666), ("leak", 0o600)):
            d = os.path.join(m.state, "run", actor + "-0")
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o700, d)
            self.assertEqual(os.stat(os.path.join(d, "asya-runtime.sock")).st_mode & 0o777, mode)

        ok_id = m.asya("send", "ok", '{"n": 1}').stdout.strip()
        bad_id = m.asya("send", "leak", '{"n": 1}').stdout.strip()
        m.wait_for(lambda: ok_id in m.stored("results") and bad_id in m.stored("errors"), 60,
                   "both envelopes stored")
        error = m.stored("errors")[bad_id][0]["payload"]
        self.assertIn("https://***@api.example", error["error"] + json.dumps(error["details"]))

        # 5. The metrics server listens on loopback only, on the manifest's port.
        self.assertEqual(listening_addresses(metrics_port), ["0100007F"])
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=10) as r:
            metrics = r.read()
        self.assertIn(b"asya_", metrics)

        outputs = {"metrics": metrics}
        for args in (("describe", "actor", "ok"), ("describe", "actor", "leak"),
                     ("get", "actors", "-o", "json"), ("logs", "ok"), ("logs", "leak")):
            r = m.asya(*args)
            outputs["asya " + " ".join(args)] = r.stdout + r.stderr
        # The gateway, asked with a wrong token and with the right one.
        with open(os.path.join(m.state, "gateway.url")) as f:
            url = f.read().strip()
        for token in ("wrong-token-000000", ENV_SECRETS["ASYA_GATEWAY_TOKENS"]):
            req = urllib.request.Request(url + "/tools", headers={"Authorization": "Bearer " + token})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    outputs["gateway " + token[:5]] = r.read()
            except urllib.error.HTTPError as e:
                outputs["gateway " + token[:5]] = e.read()
        # What crew stored in S3 (moto does not check signatures but wants one).
        req = urllib.request.Request(self.moto.endpoint + "/harden?list-type=2", headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/s3/aws4_request, "
                             "SignedHeaders=host, Signature=0"})
        with urllib.request.urlopen(req, timeout=10) as r:
            listing = r.read()
        self.assertIn(bad_id.encode(), listing)
        for key in [k.split(b"</Key>")[0].decode() for k in listing.split(b"<Key>")[1:]]:
            req.full_url = self.moto.endpoint + "/harden/" + urllib.request.quote(key)
            with urllib.request.urlopen(req, timeout=10) as r:
                outputs["s3 " + key] = r.read()
        self.assertEqual(m.stop(), 0)

        # 2. Sidecars whose brokers refuse them: RabbitMQ (password in the URL, nothing listens;
        # it tries for 15 s whatever happens), SQS on moto (the keys sign real requests; the
        # queue is missing), and the queue tool with the URL on its command line: all at once.
        rmq = self.start_sidecar({"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_URL": self.rmq_url})
        sqs = self.start_sidecar({"ASYA_TRANSPORT": "sqs", "ASYA_SQS_ENDPOINT": self.moto.endpoint})
        depth = subprocess.Popen([ASYA, "queue", "depth", "asya-x", "--transport",
                                  "rabbitmq", "--rabbitmq-url", self.rmq_url],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sqs_env = dict(os.environ, **ENV_SECRETS)
        sqs_args = ["--transport", "sqs", "--sqs-endpoint", self.moto.endpoint]
        for args in (["publish", "asya-probe", "{}"], ["depth", "asya-missing"]):
            r = subprocess.run([ASYA, "queue", *args, *sqs_args], env=sqs_env,
                               capture_output=True, timeout=60)
            outputs["asya queue sqs " + args[0]] = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0)  # the missing queue
        outputs["sidecar sqs"] = self.output_of(sqs)
        outputs["asya queue depth"] = self.output_of(depth, grace=60)
        self.assertNotEqual(depth.returncode, 0)
        outputs["sidecar rabbitmq"] = self.output_of(rmq, grace=60)

        leaks = []
        for name, data in outputs.items():
            leaks += self.find_leaks(name, data)
        for path in files_under(m.dir):
            if not path.startswith(m.code + os.sep):  # the manifests we wrote hold them
                with open(path, "rb") as f:
                    leaks += self.find_leaks(os.path.relpath(path, m.dir), f.read())
        self.assertEqual(leaks, [])
        # The output still says what went wrong.
        self.assertIn(b"cannot connect to RabbitMQ at 127.0.0.1", outputs["sidecar rabbitmq"])
        self.assertIn(b"asya-missing", outputs["asya queue sqs depth"])
        self.assertIn(b"calling upstream with token ***", outputs["asya logs leak"].encode())


if __name__ == "__main__":
    unittest.main()
