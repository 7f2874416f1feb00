"""`asya render` through the built binary: output formats, exit codes, errors naming file, actor
and field, and parity with `asya up` (the same invalid manifest is refused by both with the same
lines)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

try:
    import yaml  # PyYAML (Debian python3-yaml); only to read the YAML stream back
except ImportError:  # pragma: no cover
    yaml = None

BUILD_DIR = os.environ.get(
    "ASYA_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "release"))
ASYA = os.path.abspath(os.path.join(BUILD_DIR, "bin", "asya"))
SOURCE_DIR = os.path.abspath(os.environ.get(
    "ASYA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))


def actor(name, transport="rabbitmq", extra="", container_extra="", meta=""):
    text = ("apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: %s\n%s"
            "spec:\n" % (name, meta))
    if transport is not None:
        text += "  transport: %s\n" % transport
    return text + extra + (
        "  workload:\n    template:\n      spec:\n        containers:\n"
        "          - name: asya-runtime\n            image: img:1\n            env:\n"
        "              - name: ASYA_HANDLER\n                value: mod.fn\n") + container_extra


CONFIG = """
transports:
  rabbitmq:
    type: rabbitmq
    config:
      host: rabbitmq.asya-system
      passwordSecretRef: {name: rabbitmq, key: password}
  sqs:
    type: sqs
    config:
      region: eu-west-1
      accountId: "123456789012"
      actorRoleArn: arn:aws:iam::123456789012:role/actors
sidecarImage: registry.example/asya-sidecar:1.0
"""


class RenderCli(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(ASYA):
            raise RuntimeError("asya is not built (run make build first)")
        self.dir = tempfile.mkdtemp(prefix="asya-render-")
        self.config = self.write("operator.yaml", CONFIG)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def render(self, *args):
        return subprocess.run([ASYA, "render", *args], capture_output=True, text=True,
                              timeout=60, cwd=self.dir)

    def ok(self, *args):
        r = self.render(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    # ---- output ----

    def test_yaml_stream_and_json_list_carry_the_same_objects(self):
        path = self.write("a.yaml", actor("one", extra="  scaling:\n    maxReplicas: 5\n")
                          + "---\n" + actor("two", "sqs"))
        out_yaml = self.ok(path, "--operator-config", self.config)
        out_json = self.ok(path, "--operator-config", self.config, "-o", "json")
        lst = json.loads(out_json)
        self.assertEqual((lst["apiVersion"], lst["kind"]), ("v1", "List"))
        kinds = [(o["kind"], o["metadata"]["name"]) for o in lst["items"]]
        self.assertEqual(kinds, [
            ("ConfigMap", "asya-runtime"),
            ("Deployment", "one"), ("TriggerAuthentication", "one-trigger-auth"),
            ("ScaledObject", "one"),
            ("ServiceAccount", "asya-two"), ("Deployment", "two")])
        self.assertTrue(out_yaml.startswith("---\n"))
        self.assertEqual(out_yaml.count("\n---\n") + 1, len(lst["items"]))
        if yaml is not None:
            self.assertEqual(list(yaml.safe_load_all(out_yaml)), lst["items"])
        with open(os.path.join(SOURCE_DIR, "src/runtime/python/asya_runtime.py")) as f:
            self.assertEqual(lst["items"][0]["data"]["asya_runtime.py"], f.read())
        # Deterministic: byte-identical on a second run.
        self.assertEqual(self.ok(path, "--operator-config", self.config), out_yaml)

    def test_namespace_flag_and_default_registry(self):
        path = self.write("a.yaml", actor("one"))
        lst = json.loads(self.ok(path, "--namespace", "team-x", "-o", "json"))
        self.assertEqual({o["metadata"]["namespace"] for o in lst["items"]}, {"team-x"})
        dep = lst["items"][1]
        sidecar = dep["spec"]["template"]["spec"]["containers"][-1]
        env = {e["name"]: e.get("value") for e in sidecar["env"]}
        self.assertEqual(env["ASYA_RABBITMQ_HOST"], "rabbitmq")  # the built-in registry
        self.assertEqual(dep["spec"]["replicas"], 1)  # no scaling block: manual

    def test_values_file_and_directory(self):
        values = self.write("values.yaml", "transport: rabbitmq\nactors:\n"
                            "  - name: text-processor\n    scaling:\n"
                            "      minReplicas: 0\n      maxReplicas: 50\n")
        lst = json.loads(self.ok(values, "-o", "json"))
        so = [o for o in lst["items"] if o["kind"] == "ScaledObject"]
        self.assertEqual(len(so), 1)  # scaling without `enabled` is on
        self.assertEqual(so[0]["spec"]["maxReplicaCount"], 50)
        examples = os.path.join(SOURCE_DIR, "examples", "text-pipeline", "manifests")
        lst = json.loads(self.ok(examples, "--operator-config", self.config, "-o", "json"))
        self.assertGreater(len([o for o in lst["items"] if o["kind"] == "Deployment"]), 1)

    # ---- refusals ----

    def test_exit_2_naming_file_actor_and_field(self):
        cases = [
            (actor("a", transport=None), 'actor "a": spec.transport: is required'),
            (actor("a", "kafka"), "actor \"a\": spec.transport: transport 'kafka' is not in"),
            (actor("a", extra="  sidecar:\n    concurrency: 0\n"),
             'actor "a": spec.sidecar.concurrency: must be >= 1, got 0'),
            (actor("a", extra="  retry:\n    backoff: soon\n"),
             "actor \"a\": spec.retry.backoff: invalid duration 'soon'"),
            (actor("a", "sqs", container_extra="        serviceAccountName: x\n"),
             'actor "a": spec.workload.template.spec.serviceAccountName: cannot be set'),
        ]
        for text, want in cases:
            path = self.write("bad.yaml", text)
            r = self.render(path, "--operator-config", self.config)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertIn("asya render: refusing invalid manifests:", r.stderr)
            self.assertIn(path + ": " + want, r.stderr)

    def test_usage_and_input_errors_exit_2(self):
        self.assertEqual(self.render().returncode, 2)
        path = self.write("a.yaml", actor("a"))
        self.assertEqual(self.render(path, "-o", "xml").returncode, 2)
        r = self.render(os.path.join(self.dir, "missing.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such file or directory", r.stderr)
        bad_cfg = self.write("cfg.yaml", "transports:\n  r:\n    type: rabbitmq\n"
                             "    config: {hots: x}\n")
        r = self.render(path, "--operator-config", bad_cfg)
        self.assertEqual(r.returncode, 2)
        self.assertIn(bad_cfg + ": transports.r.config.hots: unknown field", r.stderr)
        r = self.render(path, "--namespace", "Bad_NS")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--namespace", r.stderr)

    # ---- parity with asya up ----

    def up_refusal(self, path):
        state = os.path.join(self.dir, "state")
        r = subprocess.run([ASYA, "up", path, "--state-dir", state], capture_output=True,
                           text=True, timeout=60, cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(state, "status.json")))
        return r.stderr

    @staticmethod
    def refusal_lines(stderr, command):
        lines = stderr.splitlines()
        start = lines.index("asya %s: refusing invalid manifests:" % command)
        return [l for l in lines[start + 1:] if l.startswith("  ")]

    def test_up_and_render_refuse_the_same_manifest_with_the_same_lines(self):
        cases = [
            actor("Bad_Name"),
            actor("a", extra="  scaling:\n    minReplicas: 5\n    maxReplicas: 2\n"),
            actor("a", extra="  retry:\n    maxAttempts: 0\n  maxDeliveries: 0\n"),
            actor("a", extra="  timeout:\n    processing: -1\n    visibility: -1\n"),
            actor("a", container_extra="            command: [python3]\n"),
            actor("a", container_extra="          - name: asya-sidecar\n            image: x\n"),
            "kind: [AsyncActor\n",
        ]
        for text in cases:
            path = self.write("bad.yaml", text)
            up = self.refusal_lines(self.up_refusal(path), "up")
            r = self.render(path)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertTrue(up)
            self.assertEqual(self.refusal_lines(r.stderr, "render"), up)
            self.assertTrue(all(path in l for l in up), up)

    def test_only_transport_may_be_omitted_for_up(self):
        path = self.write("a.yaml", actor("a", transport=None, extra="  retry:\n    maxAttempts: 0\n"))
        up = self.refusal_lines(self.up_refusal(path), "up")
        self.assertEqual(up, ['  %s: actor "a": spec.retry.maxAttempts: must be >= 1, got 0' % path])
        r = self.render(path)
        lines = self.refusal_lines(r.stderr, "render")
        self.assertIn('  %s: actor "a": spec.transport: is required' % path + (
            " (the cluster's transport name, e.g. rabbitmq)"), lines)
        self.assertIn(up[0], lines)


if __name__ == "__main__":
    unittest.main()
