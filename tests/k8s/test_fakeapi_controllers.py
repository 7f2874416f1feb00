"""Simulated controllers: Deployment/StatefulSet pods and status, pod fates, KEDA's HPA."""

import unittest

from fakeapi_testlib import FakeApiTestCase, deployment, wait_for

DEP = "/apis/apps/v1/namespaces/default/deployments"
STS = "/apis/apps/v1/namespaces/default/statefulsets"
PODS = "/api/v1/namespaces/default/pods"
SO = "/apis/keda.sh/v1alpha1/namespaces/default/scaledobjects"
HPA = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"


def container(pod, name):
    return next(c for c in pod["status"]["containerStatuses"] if c["name"] == name)


def cond(obj, ctype):
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == ctype), None)


class WorkloadControllerTest(FakeApiTestCase):
    def sync(self):
        self.ok(self.c.post("/fake/sync", {}))

    def pods(self, sel="app=web"):
        return self.ok(self.c.get(PODS, params={"labelSelector": sel}))["items"]

    def fates(self, *rules):
        self.ok(self.c.post("/fake/pod-fates", {"rules": list(rules)}))

    def test_deployment_gets_ready_pods_and_status(self):
        d = self.ok(self.c.post(DEP, deployment("web", replicas=2)), 201)
        # the background loop does it without a sync hook
        wait_for(lambda: self.ok(self.c.get(DEP + "/web")).get("status", {}).get(
            "readyReplicas") == 2, what="2 ready replicas")
        pods = self.pods()
        self.assertEqual(len(pods), 2)
        for p in pods:
            self.assertEqual(p["status"]["phase"], "Running")
            self.assertEqual(cond(p, "Ready")["status"], "True")
            ref = p["metadata"]["ownerReferences"][0]
            self.assertEqual((ref["kind"], ref["uid"], ref["controller"]),
                             ("Deployment", d["metadata"]["uid"], True))
            self.assertEqual(p["spec"]["nodeName"], "fake-node")
        st = self.ok(self.c.get(DEP + "/web"))["status"]
        self.assertEqual((st["replicas"], st["availableReplicas"], st["updatedReplicas"],
                          st["observedGeneration"]), (2, 2, 2, 1))
        self.assertEqual(cond({"status": st}, "Available")["status"], "True")
        # scale down
        self.ok(self.c.patch(DEP + "/web", {"spec": {"replicas": 1}}))
        self.sync()
        self.assertEqual(len(self.pods()), 1)
        st = self.ok(self.c.get(DEP + "/web"))["status"]
        self.assertEqual((st["replicas"], st["observedGeneration"]), (1, 2))
        # scale to zero: zero counts are omitted, as on a real server
        self.ok(self.c.patch(DEP + "/web", {"spec": {"replicas": 0}}))
        self.sync()
        self.assertEqual(self.pods(), [])
        st = self.ok(self.c.get(DEP + "/web"))["status"]
        self.assertNotIn("readyReplicas", st)
        self.assertNotIn("replicas", st)

    def test_crash_looping_runtime(self):
        self.fates({"match": {"image": "handler:*", "container": "asya-runtime"},
                    "fate": "crashloop", "restartCount": 7})
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.sync()
        p = self.pods()[0]
        rt = container(p, "asya-runtime")
        self.assertEqual(rt["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.assertEqual(rt["restartCount"], 7)
        self.assertEqual(rt["lastState"]["terminated"]["exitCode"], 1)
        self.assertTrue(container(p, "asya-sidecar")["ready"])
        self.assertEqual(p["status"]["phase"], "Running")
        self.assertEqual(cond(p, "Ready")["status"], "False")
        st = self.ok(self.c.get(DEP + "/web"))["status"]
        self.assertNotIn("readyReplicas", st)
        self.assertEqual(st["unavailableReplicas"], 1)
        self.assertEqual(cond({"status": st}, "Available")["status"], "False")

    def test_image_pull_failure_and_fate_changes_apply_to_running_pods(self):
        self.fates({"match": {"workload": "web", "container": "asya-runtime"},
                    "fate": "imagepull", "reason": "ErrImagePull"})
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.sync()
        p = self.pods()[0]
        w = container(p, "asya-runtime")["state"]["waiting"]
        self.assertEqual(w["reason"], "ErrImagePull")
        self.assertEqual(p["status"]["phase"], "Running")  # the sidecar runs
        self.fates({"match": {"workload": "web"}, "fate": "imagepull"})
        self.sync()
        p = self.pods()[0]
        self.assertEqual(p["status"]["phase"], "Pending")
        self.assertEqual(container(p, "asya-sidecar")["state"]["waiting"]["reason"],
                         "ImagePullBackOff")
        self.fates()
        self.sync()
        self.assertEqual(self.ok(self.c.get(DEP + "/web"))["status"]["readyReplicas"], 1)

    def test_unschedulable_pod(self):
        self.fates({"match": {"workload": "web"}, "fate": "unschedulable"})
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.sync()
        p = self.pods()[0]
        self.assertEqual(p["status"]["phase"], "Pending")
        c = cond(p, "PodScheduled")
        self.assertEqual((c["status"], c["reason"]), ("False", "Unschedulable"))
        self.assertIn("Insufficient", c["message"])
        self.assertNotIn("nodeName", p["spec"])
        self.assertNotIn("containerStatuses", p["status"])

    def test_failed_pod_and_volume_mount_failure(self):
        self.fates({"match": {"workload": "web"}, "fate": "failed"},
                   {"match": {"workload": "vol"}, "fate": "mountfail"})
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.ok(self.c.post(DEP, deployment("vol")), 201)
        self.sync()
        p = self.pods()[0]
        self.assertEqual(p["status"]["phase"], "Failed")
        self.assertEqual(container(p, "asya-runtime")["state"]["terminated"]["exitCode"], 1)
        v = self.pods("app=vol")[0]
        self.assertEqual(v["status"]["phase"], "Pending")
        self.assertIn("MountVolume.SetUp failed", cond(v, "ContainersReady")["message"])
        self.assertEqual(cond(v, "PodReadyToStartContainers")["status"], "False")

    def test_rollout_replaces_pods_and_a_failing_rollout_keeps_old_pods(self):
        self.ok(self.c.post(DEP, deployment("web", replicas=2)), 201)
        self.sync()
        old = {p["metadata"]["name"] for p in self.pods()}
        self.ok(self.c.patch(DEP + "/web", {"spec": {"template": {"metadata": {
            "annotations": {"rev": "2"}}}}}))
        self.sync()
        new = {p["metadata"]["name"] for p in self.pods()}
        self.assertEqual(len(new), 2)
        self.assertFalse(old & new)
        self.fates({"match": {"image": "broken:*"}, "fate": "crashloop"})
        self.ok(self.c.patch(DEP + "/web", [{"op": "replace", "path":
                                             "/spec/template/spec/containers/0/image",
                                             "value": "broken:1"}], "json"))
        self.sync()
        pods = self.pods()
        self.assertEqual(len(pods), 4)  # stuck: old ready pods stay next to failing new ones
        st = self.ok(self.c.get(DEP + "/web"))["status"]
        self.assertEqual((st["replicas"], st["readyReplicas"], st["updatedReplicas"]),
                         (4, 2, 2))

    def test_statefulset_pods_have_ordinal_names(self):
        sts = deployment("db", replicas=3)
        sts["kind"] = "StatefulSet"
        sts["spec"]["serviceName"] = "db"
        self.ok(self.c.post(STS, sts), 201)
        self.sync()
        names = sorted(p["metadata"]["name"] for p in self.pods("app=db"))
        self.assertEqual(names, ["db-0", "db-1", "db-2"])
        self.assertEqual(self.ok(self.c.get(STS + "/db"))["status"]["readyReplicas"], 3)
        self.ok(self.c.patch(STS + "/db", {"spec": {"replicas": 1}}))
        self.sync()
        self.assertEqual([p["metadata"]["name"] for p in self.pods("app=db")], ["db-0"])

    def test_deleting_a_deployment_removes_its_pods(self):
        self.ok(self.c.post(DEP, deployment("web", replicas=2)), 201)
        self.sync()
        self.assertEqual(len(self.pods()), 2)
        self.ok(self.c.delete(DEP + "/web"))
        self.assertEqual(self.pods(), [])

    def test_steady_state_makes_no_writes(self):
        self.fates({"match": {"workload": "bad"}, "fate": "crashloop"})
        self.ok(self.c.post(DEP, deployment("web", replicas=2)), 201)
        self.ok(self.c.post(DEP, deployment("bad", replicas=1)), 201)
        self.ok(self.c.post(SO, scaled_object("web", "web", mn=1, mx=3)), 201)
        self.sync()
        self.ok(self.c.delete("/fake/writes"))
        self.sync()  # a full resync of every controller
        self.assertEqual(self.ok(self.c.get("/fake/writes"))["count"], 0)

    def test_controllers_can_be_switched_off(self):
        self.ok(self.c.post("/fake/controllers", {"workloads": False}))
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.sync()
        self.assertEqual(self.pods(), [])
        self.ok(self.c.post("/fake/controllers", {"workloads": True}))
        self.sync()
        self.assertEqual(len(self.pods()), 1)


def scaled_object(name, target, mn=0, mx=5):
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": target}, "minReplicaCount": mn,
                     "maxReplicaCount": mx,
                     "triggers": [{"type": "rabbitmq", "metadata": {
                         "queueName": f"asya-{name}", "mode": "QueueLength", "value": "5"}}]}}


class KedaTest(FakeApiTestCase):
    def sync(self):
        self.ok(self.c.post("/fake/sync", {}))

    def test_scaled_object_gets_an_owned_hpa_and_scales_its_target(self):
        self.ok(self.c.post(DEP, deployment("web", replicas=1)), 201)
        so = self.ok(self.c.post(SO, scaled_object("web", "web", mn=0, mx=4)), 201)
        self.sync()
        hpa = self.ok(self.c.get(HPA + "/keda-hpa-web"))
        ref = hpa["metadata"]["ownerReferences"][0]
        self.assertEqual((ref["kind"], ref["uid"]), ("ScaledObject", so["metadata"]["uid"]))
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (1, 4))
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "web")
        # idle queue, minReplicaCount 0: scaled to zero
        self.assertEqual(hpa["status"]["desiredReplicas"], 0)
        self.assertEqual(self.ok(self.c.get(DEP + "/web"))["spec"]["replicas"], 0)
        # the test hook scales up, as KEDA would on queue depth
        self.ok(self.c.post("/fake/hpa/default/web", {"desiredReplicas": 3}))
        self.sync()
        self.assertEqual(self.ok(self.c.get(DEP + "/web"))["spec"]["replicas"], 3)
        self.sync()
        hpa = self.ok(self.c.get(HPA + "/keda-hpa-web"))
        self.assertEqual((hpa["status"]["desiredReplicas"], hpa["status"]["currentReplicas"]),
                         (3, 3))
        st = self.ok(self.c.get(SO + "/web"))["status"]
        self.assertEqual(st["hpaName"], "keda-hpa-web")
        self.assertEqual(cond({"status": st}, "Active")["status"], "True")
        # max is enforced; back to zero
        self.ok(self.c.post("/fake/hpa/default/web", {"desiredReplicas": 0}))
        self.sync()
        self.assertEqual(self.ok(self.c.get(DEP + "/web"))["spec"]["replicas"], 0)
        self.assertEqual(self.ok(self.c.get(PODS))["items"], [])

    def test_min_max_follow_the_scaled_object_and_deletion_collects_the_hpa(self):
        self.ok(self.c.post(DEP, deployment("web")), 201)
        self.ok(self.c.post(SO, scaled_object("web", "web", mn=2, mx=6)), 201)
        self.sync()
        self.assertEqual(self.ok(self.c.get(DEP + "/web"))["spec"]["replicas"], 2)
        self.ok(self.c.patch(SO + "/web", {"spec": {"maxReplicaCount": 9}}))
        self.sync()
        self.assertEqual(self.ok(self.c.get(HPA + "/keda-hpa-web"))["spec"]["maxReplicas"], 9)
        # a deleted HPA comes back
        self.ok(self.c.delete(HPA + "/keda-hpa-web"))
        self.sync()
        self.ok(self.c.get(HPA + "/keda-hpa-web"))
        self.ok(self.c.delete(SO + "/web"))
        self.assertEqual(self.c.get(HPA + "/keda-hpa-web").code, 404)


if __name__ == "__main__":
    unittest.main()
