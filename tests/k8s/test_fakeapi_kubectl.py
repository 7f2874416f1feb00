"""The real kubectl against the fake API server: apply (client- and server-side), get with
printer columns, describe with events, get hpa, delete, strict field validation."""

import glob
import os
import shutil
import subprocess
import unittest

from fakeapi_testlib import (CRD_PATH, FIXTURE_CRD, KUBECTL, SOURCE_DIR, TESTDATA,
                             FakeApiTestCase, deployment)

def setUpModule():
    if not os.access(KUBECTL, os.X_OK):
        raise RuntimeError("kubectl is not installed (tools/install-deps.sh puts one into "
                           "build/deploy-tools/bin)")


class KubectlTest(FakeApiTestCase):
    def setUp(self):
        super().setUp()
        self.kc = self.api.kubeconfig(os.path.join(self.tmp, "kubeconfig"))

    def kubectl(self, *args, ok=True):
        env = dict(os.environ, HOME=self.tmp, KUBECONFIG=self.kc)
        p = subprocess.run([KUBECTL, "--cache-dir", os.path.join(self.tmp, "cache"), *args],
                           capture_output=True, text=True, env=env, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0, f"kubectl {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p

    def test_apply_get_describe_delete_asyncactor(self):
        manifest = os.path.join(TESTDATA, "actor.yaml")
        out = self.kubectl("apply", "-f", manifest).stdout
        self.assertIn("asyncactor.asya.sh/echo created", out)
        self.assertIn("unchanged", self.kubectl("apply", "-f", manifest).stdout)
        self.ok(self.c.patch(self.actors() + "/echo/status", {"status": {
            "status": "Napping", "replicas": 0, "failingPods": 0, "totalReplicas": 0,
            "desiredReplicas": 0, "lastScaleFormatted": "-"}}))
        lines = self.kubectl("get", "asyas").stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATUS", "RUNNING", "FAILING", "TOTAL",
                                            "DESIRED", "MIN", "MAX", "LAST-SCALE", "AGE"])
        self.assertEqual(lines[1].split()[:9], ["echo", "Napping", "0", "0", "0", "0", "0",
                                                "5", "-"])
        wide = self.kubectl("get", "asya", "echo", "-o", "wide").stdout
        self.assertIn("WORKLOAD", wide)
        self.assertIn("Deployment", wide)
        uid = self.ok(self.c.get(self.actors() + "/echo"))["metadata"]["uid"]
        self.ok(self.c.post("/api/v1/namespaces/default/events", {
            "metadata": {"name": "echo.1"}, "type": "Warning", "reason": "TransportError",
            "message": "queue asya-echo unreachable", "source": {"component": "asya-operator"},
            "involvedObject": {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
                               "name": "echo", "namespace": "default", "uid": uid},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "count": 1}), 201)
        self.ok(self.c.post("/api/v1/namespaces/default/events", {
            "metadata": {"name": "other.1"}, "type": "Normal", "reason": "Unrelated",
            "message": "not mine", "involvedObject": {"kind": "Pod", "name": "x",
                                                      "namespace": "default"}}), 201)
        desc = self.kubectl("describe", "asya", "echo").stdout
        self.assertIn("Name:         echo", desc)
        self.assertIn("Transport:", desc)
        self.assertIn("TransportError", desc)
        self.assertIn("queue asya-echo unreachable", desc)
        self.assertNotIn("not mine", desc)
        self.assertIn('"echo" deleted', self.kubectl("delete", "asya", "echo").stdout)
        self.assertEqual(self.c.get(self.actors() + "/echo").code, 404)

    def test_get_watch_prints_rows_as_they_change(self):
        self.kubectl("apply", "-f", os.path.join(TESTDATA, "actor.yaml"))
        env = dict(os.environ, HOME=self.tmp, KUBECONFIG=self.kc)
        p = subprocess.Popen([KUBECTL, "--cache-dir", os.path.join(self.tmp, "cache"), "get",
                              "asyas", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().split()[:2], ["NAME", "STATUS"])
        self.assertEqual(p.stdout.readline().split()[0], "echo")
        self.ok(self.c.patch(self.actors() + "/echo/status", {"status": {
            "status": "Running", "replicas": 3}}))
        self.assertEqual(p.stdout.readline().split()[:3], ["echo", "Running", "3"])

    @unittest.skipIf(CRD_PATH == FIXTURE_CRD, "the examples need the product CRD "
                     "(deploy/crds/asya.sh_asyncactors.yaml or FAKEAPI_TEST_CRD)")
    def test_examples_apply(self):
        manifests = sorted(glob.glob(os.path.join(SOURCE_DIR, "examples", "*", "manifests",
                                                  "*.yaml")))
        self.assertTrue(manifests)
        args = []
        for m in manifests:
            args += ["-f", m]
        self.kubectl("apply", *args)
        names = self.kubectl("get", "asyas", "-o", "name").stdout.split()
        self.assertEqual(len(names), len(manifests))

    def test_imperative_create_of_core_objects(self):
        # these kubectl commands send protobuf bodies
        self.kubectl("create", "namespace", "asya-system")
        self.kubectl("create", "secret", "generic", "rmq", "-n", "asya-system",
                     "--from-literal=username=guest", "--from-literal=password=pw")
        self.kubectl("create", "configmap", "cfg", "-n", "asya-system", "--from-literal=a=b")
        self.kubectl("create", "serviceaccount", "bot", "-n", "asya-system")
        sec = self.ok(self.c.get("/api/v1/namespaces/asya-system/secrets/rmq"))
        self.assertEqual((sec["type"], sec["data"]["password"]), ("Opaque", "cHc="))
        cm = self.ok(self.c.get("/api/v1/namespaces/asya-system/configmaps/cfg"))
        self.assertEqual(cm["data"], {"a": "b"})
        self.ok(self.c.get("/api/v1/namespaces/asya-system/serviceaccounts/bot"))

    def test_server_side_apply_and_conflict(self):
        manifest = os.path.join(TESTDATA, "actor.yaml")
        self.assertIn("serverside-applied",
                      self.kubectl("apply", "--server-side", "-f", manifest).stdout)
        got = self.ok(self.c.get(self.actors() + "/echo"))
        self.assertIn("kubectl", [m["manager"] for m in got["metadata"]["managedFields"]])
        self.ok(self.c.patch(self.actors() + "/echo", {"spec": {"scaling": {"maxReplicas": 9}}},
                             params={"fieldManager": "someone"}))
        p = self.kubectl("apply", "--server-side", "-f", manifest, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("conflict", p.stderr)
        self.assertIn(".spec.scaling.maxReplicas", p.stderr)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", manifest)
        got = self.ok(self.c.get(self.actors() + "/echo"))
        self.assertEqual(got["spec"]["scaling"]["maxReplicas"], 5)

    def test_misspelt_key_fails_naming_the_field(self):
        for extra in ([], ["--server-side"]):
            p = self.kubectl("apply", *extra, "-f", os.path.join(TESTDATA,
                                                                 "actor-misspelt.yaml"),
                             ok=False)
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn('unknown field "spec.scalling"', p.stderr)
        self.assertEqual(self.c.get(self.actors() + "/typo").code, 404)

    def test_cel_rule_violation_is_reported(self):
        path = os.path.join(self.tmp, "bad.yaml")
        with open(os.path.join(TESTDATA, "actor.yaml")) as f:
            text = f.read().replace("minReplicas: 0", "minReplicas: 9")
        with open(path, "w") as f:
            f.write(text)
        p = self.kubectl("apply", "-f", path, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('The AsyncActor "echo" is invalid: spec', p.stderr)
        self.assertIn("minReplicas", p.stderr)
        self.assertEqual(self.c.get(self.actors() + "/echo").code, 404)

    def test_get_hpa_and_deployment_apply(self):
        import json as _json
        dpath = os.path.join(self.tmp, "dep.json")
        with open(dpath, "w") as f:
            _json.dump(deployment("web", replicas=1), f)
        self.kubectl("apply", "-f", dpath)
        self.kubectl("scale", "deployment", "web", "--replicas=2")  # the /scale subresource
        self.assertEqual(self.ok(self.c.get(
            "/apis/apps/v1/namespaces/default/deployments/web"))["spec"]["replicas"], 2)
        so = os.path.join(self.tmp, "so.yaml")
        with open(so, "w") as f:
            f.write("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\n"
                    "spec:\n  scaleTargetRef: {name: web}\n  minReplicaCount: 1\n"
                    "  maxReplicaCount: 4\n  triggers:\n  - type: rabbitmq\n"
                    "    metadata: {queueName: asya-web, mode: QueueLength, value: \"5\"}\n")
        self.kubectl("apply", "-f", so)
        self.ok(self.c.post("/fake/sync", {}))
        lines = self.kubectl("get", "hpa").stdout.splitlines()
        self.assertEqual(lines[0].split()[:6], ["NAME", "REFERENCE", "TARGETS", "MINPODS",
                                                "MAXPODS", "REPLICAS"])
        self.assertEqual(lines[1].split()[:2], ["keda-hpa-web", "Deployment/web"])
        self.assertIn("1", lines[1].split()[4:6])
        pods = self.kubectl("get", "pods").stdout
        self.assertIn("Running", pods)
        self.kubectl("delete", "-f", so)
        self.ok(self.c.post("/fake/sync", {}))
        self.assertIn("No resources found", self.kubectl("get", "hpa").stderr)


if __name__ == "__main__":
    unittest.main()
