"""asya-operator against the fake API server, with a real RabbitMQ and moto SQS for queues."""

import base64
import json
import os
import threading
import time
import unittest
import urllib.error
import urllib.request

from fakeapi_testlib import ACTORS, wait_for
from operator_testlib import (DEP, EVENTS, OPERATOR, PODS, SO, TA, OperatorTestCase, actor)

BROKER = None
MOTO = None


def setUpModule():
    global BROKER
    from rabbitmq_fixture import Broker
    BROKER = Broker(management=True)


def tearDownModule():
    if BROKER is not None:
        BROKER.stop()
    if MOTO is not None:
        MOTO.stop()


def rabbit_registry():
    return {"rabbitmq": {"type": "rabbitmq", "config": {
        "host": "127.0.0.1", "port": BROKER.port, "managementPort": BROKER.mgmt_port}},
        # IRSA entry: what only the operator (not the CRD) can refuse
        "irsa": {"type": "sqs", "config": {
            "region": "us-east-1", "accountId": "123456789012", "endpoint": "http://127.0.0.1:9",
            "actorRoleArn": "arn:aws:iam::123456789012:role/asya"}}}


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def rabbit_get(path):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (BROKER.mgmt_port, path),
        headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def rabbit_put(path, body):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (BROKER.mgmt_port, path), data=json.dumps(body).encode(),
        method="PUT", headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
                               "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def rabbit_queue_exists(name):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/queues/%%2F/%s" % (BROKER.mgmt_port, name),
        headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


@unittest.skipUnless(os.path.exists(OPERATOR), "asya-operator not built")
class OperatorScenarios(OperatorTestCase):
    def setUp(self):
        self.transports = rabbit_registry()
        super().setUp()

    def wait_event(self, name, pred):
        """Waits for an Event about actor `name` matching pred (Events follow status writes)."""
        def found():
            return any(e["involvedObject"]["name"] == name and pred(e)
                       for e in self.ok(self.c.get(EVENTS))["items"])
        wait_for(found, what=f"an Event about {name}")

    def test_create_runs_then_naps_then_delete_finalizes(self):
        op = self.start_operator()
        self.create(actor("echo", scaling={"minReplicas": 1, "maxReplicas": 3}))
        a = self.wait_status("echo", "Running")
        self.assertIn("asya.sh/finalizer", a["metadata"]["finalizers"])
        for t in ("TransportReady", "WorkloadReady", "ScalingReady"):
            self.assertEqual(self.cond(a, t)["status"], "True", t)
        st = a["status"]
        self.assertEqual((st["replicas"], st["desiredReplicas"], st["totalReplicas"]), (1, 1, 1))
        self.assertEqual((st["queuedMessages"], st["transportStatus"]), (0, "Ready"))
        self.assertEqual(st["observedGeneration"], a["metadata"]["generation"])
        dep = self.ok(self.c.get(DEP + "/echo"))
        ref = dep["metadata"]["ownerReferences"][0]
        self.assertEqual((ref["kind"], ref["uid"]), ("AsyncActor", a["metadata"]["uid"]))
        names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
        self.assertEqual(names[-1], "asya-sidecar")
        managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
        self.assertIn("asya-operator", managers)
        self.ok(self.c.get(SO + "/echo"))
        self.assertTrue(rabbit_queue_exists("asya-echo"))
        # bound the way the sidecar and gateway publish: exchange asya, key <actor> (W2)
        keys = {(b["source"], b["routing_key"]) for b in rabbit_get(
            "/api/queues/%2F/asya-echo/bindings")}
        self.assertIn(("asya", "echo"), keys)
        # an Event for the transition (recorded just after the status write)
        self.wait_event("echo", lambda e: e["reason"] == "Running")
        # KEDA scales it to zero -> Napping
        self.ok(self.c.post("/fake/hpa/default/echo", {"desiredReplicas": 0}))
        a = self.wait_status("echo", "Napping")
        self.assertEqual(a["status"]["desiredReplicas"], 0)
        # delete: the finalizer removes the queue and the KEDA objects, then the actor goes
        self.ok(self.c.delete(ACTORS.format(ns="default") + "/echo"))
        wait_for(lambda: self.get_actor("echo") is None, what="actor gone")
        self.assertFalse(rabbit_queue_exists("asya-echo"))
        self.assertEqual(self.c.get(SO + "/echo").code, 404)
        self.assertEqual(self.c.get(TA + "/echo-trigger-auth").code, 404)
        self.assertEqual(self.c.get(DEP + "/echo").code, 404)

    def test_crashloop_and_image_pull_failures(self):
        self.ok(self.c.post("/fake/pod-fates", {"rules": [
            {"match": {"workload": "crashy", "container": "asya-runtime"}, "fate": "crashloop"},
            {"match": {"workload": "nopull", "container": "asya-runtime"}, "fate": "imagepull"}]}))
        self.start_operator()
        self.create(actor("crashy", scaling={"enabled": False}))
        self.create(actor("nopull", scaling={"enabled": False}))
        a = self.wait_status("crashy", "RuntimeError")
        c = self.cond(a, "WorkloadReady")
        self.assertEqual((c["status"], c["reason"]), ("False", "PodsNotHealthy"))
        self.assertIn("CrashLoopBackOff", c["message"])
        self.assertGreaterEqual(a["status"]["failingPods"], 1)
        a = self.wait_status("nopull", "ImagePullError")
        self.assertIn("ImagePullBackOff", self.cond(a, "WorkloadReady")["message"])
        # the pods heal: the condition flips back and its transition time moves
        self.ok(self.c.post("/fake/pod-fates", {"rules": []}))
        a = self.wait_status("crashy", "Running")
        self.assertEqual(self.cond(a, "WorkloadReady")["reason"], "WorkloadCreated")
        self.wait_event("crashy", lambda e: e["reason"] == "RuntimeError" and
                        e["type"] == "Warning")

    def test_spec_update_propagates_and_deleted_deployment_is_recreated(self):
        self.start_operator()
        self.create(actor("upd", scaling={"enabled": False}))
        self.wait_status("upd", "Running")
        self.update_actor("upd", lambda a: a["spec"]["workload"]["template"]["spec"]["containers"][0]
                          .update(image="handler:2"))

        def image():
            d = self.c.get(DEP + "/upd").body
            return d["spec"]["template"]["spec"]["containers"][0]["image"]
        wait_for(lambda: image() == "handler:2", what="new image applied")
        a = self.wait_status("upd", "Running")
        wait_for(lambda: self.get_actor("upd")["status"]["observedGeneration"] ==
                 self.get_actor("upd")["metadata"]["generation"], what="observedGeneration")
        uid = self.ok(self.c.get(DEP + "/upd"))["metadata"]["uid"]
        self.ok(self.c.delete(DEP + "/upd"))
        wait_for(lambda: self.c.get(DEP + "/upd").code == 200 and
                 self.c.get(DEP + "/upd").body["metadata"]["uid"] != uid,
                 what="deployment recreated")
        self.wait_status("upd", "Running")

    def test_adopts_a_deployment_made_by_the_original_operator(self):
        # The original selects on app / asya.sh/asya / asya.sh/workload; a selector is immutable,
        # so the new operator must keep it (a real API server refuses the change) and add
        # asya.sh/actor to the pod template: one rolling update, the Deployment is not recreated.
        old_sel = {"app": "legacy", "asya.sh/asya": "legacy", "asya.sh/workload": "deployment"}
        self.ok(self.c.post(DEP, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "legacy", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": old_sel},
                     "template": {"metadata": {"labels": old_sel},
                                  "spec": {"containers": [{"name": "asya-runtime",
                                                           "image": "handler:0"}]}}}}))
        uid = self.ok(self.c.get(DEP + "/legacy"))["metadata"]["uid"]
        self.start_operator()
        self.create(actor("legacy", scaling={"enabled": False}))
        self.wait_status("legacy", "Running")
        dep = self.ok(self.c.get(DEP + "/legacy"))
        self.assertEqual(dep["metadata"]["uid"], uid)  # adopted, not recreated
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], old_sel)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(labels["asya.sh/actor"], "legacy")
        for k, v in old_sel.items():
            self.assertEqual(labels[k], v)
        names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
        self.assertEqual(names[-1], "asya-sidecar")

    def test_restart_is_idempotent_no_writes(self):
        op = self.start_operator()
        for n in ("idem-a", "idem-b"):
            self.create(actor(n, scaling={"minReplicas": 1, "maxReplicas": 2}))
        self.create(actor("idem-c", scaling={"enabled": False}))
        for n in ("idem-a", "idem-b", "idem-c"):
            self.wait_status(n, "Running")
        time.sleep(1.5)  # let the last events settle before stopping
        self.first_applies = len([w for w in self.ok(self.c.get("/fake/writes"))["writes"]
                                  if w.get("manager", "").startswith("asya-operator")])
        op.stop()
        self.sync()
        self.ok(self.c.delete("/fake/writes"))
        op2 = self.start_operator(name="op2")
        wait_for(lambda: "asya_operator_reconciles_total" in self._metrics(op2) and
                 self._reconciles(op2) >= 3, what="restart reconciled every actor")
        time.sleep(2)
        writes = self.ok(self.c.get("/fake/writes"))
        # not even no-op requests: an identical apply is still a write on a real server
        mine = [w for w in writes["writes"] if w.get("manager", "").startswith("asya-operator")]
        self.assertEqual(mine, [], writes)
        # ... while the first run did write (so the filter above can match)
        self.assertGreater(self.first_applies, 0)

    def _health_port(self, op):
        for line in op.output().splitlines():
            if "health on port" in line:
                return int(line.rsplit(" ", 1)[1].strip().strip('"'))
        return None

    def _metrics(self, op):
        port = wait_for(lambda: self._health_port(op), what="health port")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()

    def _reconciles(self, op):
        for line in self._metrics(op).splitlines():
            if line.startswith("asya_operator_reconciles_total "):
                return int(line.split()[1])
        return 0

    def test_health_and_readiness(self):
        op = self.start_operator()
        port = wait_for(lambda: self._health_port(op), what="health port")
        for path in ("/healthz", "/readyz"):
            wait_for(lambda: http_ok("http://127.0.0.1:%d%s" % (port, path)), what=path)
        self.assertIn("asya_operator_leader 1", self._metrics(op))

    def test_unknown_transport_and_invalid_spec(self):
        self.start_operator()
        self.create(actor("lost", transport="nowhere"))
        a = self.wait_status("lost", "TransportError")
        c = self.cond(a, "TransportReady")
        self.assertEqual((c["status"], c["reason"]), ("False", "InvalidTransport"))
        self.assertIn("'nowhere'", c["message"])
        self.assertEqual(self.c.get(DEP + "/lost").code, 404)
        # the CRD refuses what its schema/CEL can express ...
        bad = actor("bad")
        bad["spec"]["workload"]["template"]["spec"]["containers"][0]["name"] = "main"
        r = self.c.post(ACTORS.format(ns="default"), bad)
        self.assertEqual(r.code, 422, r)
        self.assertIn("spec.workload.template.spec.containers", r.body["message"])
        # ... the operator what depends on its registry: a custom service account with IRSA
        bad = actor("bad", transport="irsa", scaling={"enabled": False})
        bad["spec"]["workload"]["template"]["spec"]["serviceAccountName"] = "custom"
        self.create(bad)
        a = self.wait_status("bad", "ValidationError")
        c = self.cond(a, "WorkloadReady")
        self.assertEqual((c["status"], c["reason"]), ("False", "ValidationError"))
        self.assertIn('actor "bad"', c["message"])
        self.assertIn("spec.workload.template.spec.serviceAccountName", c["message"])
        self.wait_event("bad", lambda e: e["reason"] == "ValidationError")
        self.assertEqual(self.c.get(DEP + "/bad").code, 404)

    def test_rabbitmq_credentials_from_secrets(self):
        # A broker user whose name and password need percent-encoding in amqp:// and http:// URLs.
        user, password = "asya op", "p@ss:w/rd%41"
        rabbit_put("/api/users/asya%20op", {"password": password, "tags": "management"})
        rabbit_put("/api/permissions/%2F/asya%20op",
                   {"configure": ".*", "write": ".*", "read": ".*"})
        b64 = lambda t: base64.b64encode(t.encode()).decode()
        self.ok(self.c.post("/api/v1/namespaces/default/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rabbit-creds"},
            "data": {"user": b64(user), "pass": b64(password), "junk": "not base64!"}}), 201)
        base = rabbit_registry()["rabbitmq"]["config"]

        def entry(user_key):
            return {"type": "rabbitmq", "config": dict(
                base, usernameSecretRef={"name": "rabbit-creds", "key": user_key},
                passwordSecretRef={"name": "rabbit-creds", "key": "pass"})}
        self.transports = dict(rabbit_registry(), secret=entry("user"),
                               nouser=entry("missing"), baduser=entry("junk"))
        with open(self.config_path, "w") as f:
            json.dump({"transports": self.transports}, f)
        self.start_operator()
        self.create(actor("sec", transport="secret", scaling={"enabled": False}))
        a = self.wait_status("sec", "Running")
        self.assertEqual(self.cond(a, "TransportReady")["status"], "True")
        self.assertTrue(rabbit_queue_exists("asya-sec"))
        # the operator's connection is that user's, not guest's (the broker's connection list
        # lags its statistics interval)
        wait_for(lambda: user in [c.get("user") for c in rabbit_get("/api/connections")],
                 what="a broker connection as %r" % user)
        # a username Secret key that is missing or not Base64 is an error, not a silent fallback
        for name, key, text in (("nouser", "missing", "has no key missing"),
                                ("baduser", "junk", "key junk: data is not valid Base64")):
            self.create(actor(name, scaling={"enabled": False}, transport=name))
            a = self.wait_status(name, "TransportError")
            c = self.cond(a, "TransportReady")
            self.assertEqual((c["status"], c["reason"]), ("False", "QueueError"))
            self.assertIn("secret default/rabbit-creds", c["message"])
            self.assertIn(text, c["message"])
            self.assertFalse(rabbit_queue_exists("asya-" + name))

    def test_relist_after_410_and_status_conflict_retry(self):
        op = self.start_operator()
        self.create(actor("first", scaling={"enabled": False}))
        self.wait_status("first", "Running")
        # every running watch ends with 410 Gone and old resourceVersions are forgotten: the
        # informers must relist, or the next actor would never be seen
        self.ok(self.c.post("/fake/compact", {"expireWatches": True}))
        # and the next status writes conflict twice: re-read and retry
        self.ok(self.c.post("/fake/faults", {"rules": [
            {"method": "PUT", "path": ".*/asyncactors/second/status", "code": 409,
             "count": 2, "reason": "Conflict", "message": "the object has been modified"}]}))
        self.create(actor("second", scaling={"enabled": False}))
        self.wait_status("second", "Running")
        self.assertEqual(self.ok(self.c.get("/fake/faults"))["rules"][0].get("count", 0), 0)
        relists = [int(l.split()[1]) for l in self._metrics(op).splitlines()
                   if l.startswith("asya_operator_relists_total ")]
        self.assertGreater(relists[0], 6)  # 6 informers listed once each at start

    def test_parallel_cycles_leak_nothing(self):
        self.start_operator()

        def cycle(i):
            name = "cyc-%d" % i
            self.create(actor(name, scaling={"minReplicas": 1, "maxReplicas": 2}))
            wait_for(lambda: self.status_of(name) == "Running", timeout=120,
                     what=name + " running")
            self.update_actor(name, lambda a: a["spec"]["scaling"].update(maxReplicas=4))
            wait_for(lambda: self.c.get(SO + "/" + name).body["spec"]["maxReplicaCount"] == 4,
                     timeout=120, what=name + " updated")
            self.ok(self.c.delete(ACTORS.format(ns="default") + "/" + name))
            wait_for(lambda: self.get_actor(name) is None, timeout=120, what=name + " gone")

        errors = []

        def run(i):
            try:
                cycle(i)
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.sync()
        for path in (DEP, SO, TA, PODS, "/apis/asya.sh/v1alpha1/namespaces/default/asyncactors"):
            items = [o["metadata"]["name"] for o in self.ok(self.c.get(path))["items"]]
            self.assertEqual([n for n in items if n.startswith("cyc-")], [], path)
        hpas = self.ok(self.c.get(
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"))["items"]
        self.assertEqual(hpas, [])
        for i in range(10):
            self.assertFalse(rabbit_queue_exists("asya-cyc-%d" % i))


@unittest.skipUnless(os.path.exists(OPERATOR), "asya-operator not built")
class LeaderElection(OperatorTestCase):
    def setUp(self):
        self.transports = rabbit_registry()
        super().setUp()

    def lease(self):
        r = self.c.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/"
                       "asya-operator.asya.sh")
        return r.body if r.code == 200 else None

    def test_failover(self):
        env = {"ASYA_LEADER_ELECT": "true", "ASYA_LEASE_DURATION": "3s",
               "ASYA_LEASE_RENEW_INTERVAL": "1s", "ASYA_LEASE_RETRY_INTERVAL": "500ms"}
        first = self.start_operator(env, name="first")
        wait_for(lambda: (self.lease() or {}).get("spec", {}).get("holderIdentity") == "first",
                 what="first leads")
        second = self.start_operator(env, name="second")
        self.create(actor("ha", scaling={"enabled": False}))
        self.wait_status("ha", "Running")
        time.sleep(1)
        self.assertEqual(self.lease()["spec"]["holderIdentity"], "first")
        self.assertNotIn("leading as second", second.output())
        first.stop(sig=9)  # gone without releasing: the lease must expire
        wait_for(lambda: self.lease()["spec"]["holderIdentity"] == "second", timeout=60,
                 what="second takes over")
        # the new leader works: a new actor gets reconciled
        self.create(actor("ha2", scaling={"enabled": False}))
        self.wait_status("ha2", "Running")


@unittest.skipUnless(os.path.exists(OPERATOR), "asya-operator not built")
class SqsQueues(OperatorTestCase):
    def setUp(self):
        global MOTO
        from moto_fixture import Moto
        if MOTO is None:
            MOTO = Moto()
        self.transports = {"sqs": {"type": "sqs", "config": {
            "region": "us-east-1", "accountId": "123456789012", "endpoint": MOTO.endpoint}}}
        super().setUp()

    def sqs_queues(self):
        import urllib.parse
        body = urllib.parse.urlencode({"Action": "ListQueues", "Version": "2012-11-05"}).encode()
        req = urllib.request.Request(MOTO.endpoint + "/", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/sqs/aws4_request,"
                             " SignedHeaders=host, Signature=x"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def test_queue_created_and_deleted_on_sqs(self):
        self.start_operator({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        self.create(actor("sqsy", transport="sqs", scaling={"enabled": False}))
        self.wait_status("sqsy", "Running")
        self.assertIn("asya-sqsy", self.sqs_queues())
        self.ok(self.c.delete(ACTORS.format(ns="default") + "/sqsy"))
        wait_for(lambda: self.get_actor("sqsy") is None, what="actor gone")
        wait_for(lambda: "asya-sqsy<" not in self.sqs_queues() and
                 "asya-sqsy" not in self.sqs_queues(), what="queue deleted")


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(os.path.exists(OPERATOR), "asya-operator not built")
class TlsAndToken(unittest.TestCase):
    """HTTPS with the CA from the kubeconfig's certificate-authority-data and a bearer token."""

    def test_operator_over_https_with_token(self):
        import shutil
        import ssl
        import subprocess
        import tempfile
        from fakeapi import FakeApiServer
        from fakeapi_testlib import CRD_PATH
        from operator_testlib import Operator
        tmp = tempfile.mkdtemp(prefix="optest-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        api = FakeApiServer(crd_files=[CRD_PATH], tls_cert=cert, tls_key=key,
                            token="s3cret").start()
        self.addCleanup(api.stop)
        kubeconfig = api.kubeconfig(os.path.join(tmp, "kubeconfig"))
        config = os.path.join(tmp, "operator.json")
        with open(config, "w") as f:
            json.dump({"transports": {"rabbitmq": {"type": "rabbitmq",
                                                   "config": {"host": "127.0.0.1"}}}}, f)
        op = Operator(kubeconfig, config, tmp, {"ASYA_DISABLE_QUEUE_MANAGEMENT": "true"})
        self.addCleanup(op.stop)
        ctx = ssl.create_default_context(cafile=cert)

        def call(method, path, body=None):
            req = urllib.request.Request(
                api.url + path, method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return json.loads(r.read())

        call("POST", ACTORS.format(ns="default"), actor("secure", scaling={"enabled": False}))

        def running():
            self.assertIsNone(op.proc.poll(), op.output())
            a = call("GET", ACTORS.format(ns="default") + "/secure")
            return a.get("status", {}).get("status") == "Running"
        wait_for(running, what="secure Running over HTTPS")

    def test_a_server_signed_by_another_ca_is_refused(self):
        """The kubeconfig's CA is not the one that signed the server's certificate: the operator
        refuses the connection with an error naming the certificate problem and changes
        nothing. Cost: ~3 s."""
        import base64
        import shutil
        import subprocess
        import tempfile
        import time
        from fakeapi import FakeApiServer
        from fakeapi_testlib import CRD_PATH
        from operator_testlib import Operator
        tmp = tempfile.mkdtemp(prefix="optest-wrongca-")
        self.addCleanup(shutil.rmtree, tmp, True)
        paths = {}
        for name in ("server", "other"):
            paths[name] = (os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key"))
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1", "-keyout", paths[name][1], "-out",
                            paths[name][0]], check=True, capture_output=True)
        api = FakeApiServer(crd_files=[CRD_PATH], tls_cert=paths["server"][0],
                            tls_key=paths["server"][1], token="s3cret").start()
        self.addCleanup(api.stop)
        kubeconfig = api.kubeconfig(os.path.join(tmp, "kubeconfig"))
        with open(paths["server"][0], "rb") as f:
            right = base64.b64encode(f.read()).decode()
        with open(paths["other"][0], "rb") as f:
            wrong = base64.b64encode(f.read()).decode()
        with open(kubeconfig) as f:
            text = f.read()
        self.assertIn(right, text)
        with open(kubeconfig, "w") as f:
            f.write(text.replace(right, wrong))
        config = os.path.join(tmp, "operator.json")
        with open(config, "w") as f:
            json.dump({"transports": {"rabbitmq": {"type": "rabbitmq",
                                                   "config": {"host": "127.0.0.1"}}}}, f)
        op = Operator(kubeconfig, config, tmp, {"ASYA_DISABLE_QUEUE_MANAGEMENT": "true"})
        self.addCleanup(op.stop)
        deadline = time.monotonic() + 60
        while "certificate" not in op.output() and op.proc.poll() is None:
            self.assertLess(time.monotonic(), deadline, op.output()[-3000:])
            time.sleep(0.1)
        out = op.output()
        self.assertRegex(out, r"https://127\.0\.0\.1:\d+.*certificate", out[-3000:])
        self.assertNotIn("s3cret", out)

    def test_operator_keeps_working_after_the_token_is_rotated(self):
        """A projected service-account token as kubelet writes it: `token` -> `..data/token`,
        `..data` -> a timestamped directory. Rotation writes a new directory and swaps `..data`
        atomically (the new file keeps the old mtime here, so only its inode tells), and then
        the file is rewritten in place with its mtime put back; each time the API server
        accepts only the new token."""
        import shutil
        import ssl
        import subprocess
        import tempfile
        from fakeapi import FakeApiServer
        from fakeapi_testlib import CRD_PATH
        from operator_testlib import Operator
        tmp = tempfile.mkdtemp(prefix="optest-rotate-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        api = FakeApiServer(crd_files=[CRD_PATH], tls_cert=cert, tls_key=key,
                            token="token-one").start()
        self.addCleanup(api.stop)
        sa = os.path.join(tmp, "serviceaccount")
        os.makedirs(sa)
        stamp = [1_700_000_000, 0]

        def project(n, token):  # kubelet's AtomicWriter: new dir, then swap ..data
            d = os.path.join(sa, "..2026_12_06_00_00_0%d.000000000" % n)
            os.makedirs(d)
            shutil.copy(cert, os.path.join(d, "ca.crt"))
            for name, text in (("token", token), ("namespace", "default")):
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
                os.utime(os.path.join(d, name), ns=(stamp[0] * 10**9, stamp[0] * 10**9))
            old = os.path.realpath(os.path.join(sa, "..data")) if n else None
            os.symlink(os.path.basename(d), os.path.join(sa, "..data_tmp"))
            os.rename(os.path.join(sa, "..data_tmp"), os.path.join(sa, "..data"))
            for name in ("token", "ca.crt", "namespace"):
                if not os.path.islink(os.path.join(sa, name)):
                    os.symlink(os.path.join("..data", name), os.path.join(sa, name))
            if old:
                shutil.rmtree(old)

        project(0, "token-one")
        kubeconfig = os.path.join(tmp, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                    f"    server: {api.url}\n    certificate-authority: {sa}/ca.crt\n"
                    f"users:\n- name: u\n  user:\n    tokenFile: {sa}/token\n"
                    "contexts:\n- name: c\n  context: {cluster: c, user: u}\n"
                    "current-context: c\n")
        config = os.path.join(tmp, "operator.json")
        with open(config, "w") as f:
            json.dump({"transports": {"rabbitmq": {"type": "rabbitmq",
                                                   "config": {"host": "127.0.0.1"}}}}, f)
        op = Operator(kubeconfig, config, tmp, {"ASYA_DISABLE_QUEUE_MANAGEMENT": "true"})
        self.addCleanup(op.stop)
        ctx = ssl.create_default_context(cafile=cert)

        def call(method, path, body=None):
            req = urllib.request.Request(
                api.url + path, method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={"Authorization": "Bearer " + api.token,
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return json.loads(r.read())

        def running(name):
            def check():
                self.assertIsNone(op.proc.poll(), op.output())
                a = call("GET", ACTORS.format(ns="default") + "/" + name)
                return a.get("status", {}).get("status") == "Running"
            wait_for(check, what=name + " Running")

        call("POST", ACTORS.format(ns="default"), actor("before", scaling={"enabled": False}))
        running("before")
        self.assertNotIn("HTTP 401", op.output())  # the k8s client names the status so

        # 1. The atomic ..data swap; the new token file has the old one's mtime and size.
        api.token = "token-two"
        project(1, "token-two")
        call("POST", ACTORS.format(ns="default"), actor("swapped", scaling={"enabled": False}))
        running("swapped")

        # 2. Rewritten in place (same inode, same size, mtime put back).
        path = os.path.realpath(os.path.join(sa, "token"))
        ino = os.stat(path).st_ino
        api.token = "token-thr"
        with open(path, "r+") as f:
            f.write("token-thr")
        os.utime(path, ns=(stamp[0] * 10**9, stamp[0] * 10**9))
        self.assertEqual(os.stat(path).st_ino, ino)
        call("POST", ACTORS.format(ns="default"), actor("inplace", scaling={"enabled": False}))
        running("inplace")
        # The watches still run: a spec change of the first actor is seen.
        a = call("GET", ACTORS.format(ns="default") + "/before")
        a["spec"]["workload"]["template"]["spec"]["containers"][0]["image"] = "handler:2"
        call("PUT", ACTORS.format(ns="default") + "/before", a)

        def rolled():
            d = call("GET", "/apis/apps/v1/namespaces/default/deployments/before")
            return any(c["image"] == "handler:2"
                       for c in d["spec"]["template"]["spec"]["containers"])
        wait_for(rolled, what="the spec change reaches the Deployment after two rotations")
        self.assertNotIn("HTTP 401", op.output())  # the k8s client names the status so
