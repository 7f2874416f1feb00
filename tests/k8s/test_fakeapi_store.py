"""CRUD, discovery, resourceVersion/409, generation, status subresource, patches, finalizers,
garbage collection and namespaces of the fake API server."""

import copy
import unittest

from fakeapi_testlib import FakeApiTestCase, actor, deployment

CM = "/api/v1/namespaces/default/configmaps"
DEP = "/apis/apps/v1/namespaces/default/deployments"


class DiscoveryTest(FakeApiTestCase):
    controllers = False

    def test_core_groups_and_crd_resources_are_discoverable(self):
        self.assertEqual(self.ok(self.c.get("/api"))["versions"], ["v1"])
        groups = {g["name"] for g in self.ok(self.c.get("/apis"))["groups"]}
        for g in ("apps", "coordination.k8s.io", "autoscaling", "keda.sh",
                  "apiextensions.k8s.io", "asya.sh"):
            self.assertIn(g, groups)
        res = {r["name"]: r for r in self.ok(self.c.get("/apis/asya.sh/v1alpha1"))["resources"]}
        self.assertEqual(res["asyncactors"]["kind"], "AsyncActor")
        self.assertIn("asyas", res["asyncactors"]["shortNames"])
        self.assertTrue(res["asyncactors"]["namespaced"])
        self.assertIn("asyncactors/status", res)
        core = {r["name"] for r in self.ok(self.c.get("/api/v1"))["resources"]}
        self.assertTrue({"pods", "configmaps", "secrets", "serviceaccounts", "events",
                         "namespaces"} <= core)
        self.assertEqual(self.ok(self.c.get("/version"))["major"], "1")

    def test_crd_created_through_the_api_registers_its_resource(self):
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": {"type": "object",
                                                 "properties": {"spec": {
                                                     "type": "object", "properties": {
                                                         "size": {"type": "integer"}}}}}}}]}}
        path = "/apis/example.com/v1/namespaces/default/widgets"
        self.assertEqual(self.c.get(path).code, 404)
        got = self.ok(self.c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                  crd), 201)
        est = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        self.assertEqual(est["Established"], "True")
        w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
             "spec": {"size": 3, "colour": "red"}}
        made = self.ok(self.c.post(path, w), 201)
        self.assertNotIn("colour", made["spec"])  # pruned
        self.ok(self.c.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                              "widgets.example.com"))
        self.assertEqual(self.c.get(path).code, 404)


class CrudTest(FakeApiTestCase):
    controllers = False

    def test_create_get_list_delete_with_uid_timestamps_and_global_rv(self):
        a = self.ok(self.c.post(CM, {"metadata": {"name": "a"}, "data": {"k": "v"}}), 201)
        b = self.ok(self.c.post(CM, {"metadata": {"name": "b"}}), 201)
        self.assertTrue(a["metadata"]["uid"])
        self.assertTrue(a["metadata"]["creationTimestamp"].endswith("Z"))
        self.assertGreater(int(b["metadata"]["resourceVersion"]),
                           int(a["metadata"]["resourceVersion"]))
        self.assertEqual(self.c.post(CM, {"metadata": {"name": "a"}}).code, 409)
        lst = self.ok(self.c.get(CM))
        self.assertEqual([i["metadata"]["name"] for i in lst["items"]], ["a", "b"])
        self.assertGreaterEqual(int(lst["metadata"]["resourceVersion"]),
                                int(b["metadata"]["resourceVersion"]))
        self.ok(self.c.delete(CM + "/a"))
        r = self.c.get(CM + "/a")
        self.assertEqual(r.code, 404)
        self.assertEqual(r.body["reason"], "NotFound")

    def test_paging_with_limit_and_continue(self):
        for i in range(5):
            self.ok(self.c.post(CM, {"metadata": {"name": f"c{i}"}}), 201)
        first = self.ok(self.c.get(CM, params={"limit": 2}))
        self.assertEqual(len(first["items"]), 2)
        names = [i["metadata"]["name"] for i in first["items"]]
        cont = first["metadata"]["continue"]
        while cont:
            page = self.ok(self.c.get(CM, params={"limit": 2, "continue": cont}))
            names += [i["metadata"]["name"] for i in page["items"]]
            cont = page["metadata"].get("continue")
        self.assertEqual(names, [f"c{i}" for i in range(5)])

    def test_label_and_field_selectors(self):
        for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}),
                             ("c", {"tier": "db"})):
            self.ok(self.c.post(CM, {"metadata": {"name": name, "labels": labels}}), 201)

        def names(sel=None, fsel=None):
            p = {}
            if sel is not None:
                p["labelSelector"] = sel
            if fsel is not None:
                p["fieldSelector"] = fsel
            return [i["metadata"]["name"] for i in self.ok(self.c.get(CM, params=p))["items"]]

        self.assertEqual(names("app=x"), ["a"])
        self.assertEqual(names("app!=x"), ["b", "c"])
        self.assertEqual(names("app in (x,y)"), ["a", "b"])
        self.assertEqual(names("app notin (x)"), ["b", "c"])
        self.assertEqual(names("tier"), ["a", "c"])
        self.assertEqual(names("!tier"), ["b"])
        self.assertEqual(names("app=x,tier=web"), ["a"])
        self.assertEqual(names(fsel="metadata.name=b"), ["b"])
        self.assertEqual(names(fsel="metadata.name!=b"), ["a", "c"])
        self.assertEqual(self.c.get(CM, params={"labelSelector": "a b c"}).code, 400)

    def test_missing_namespace_is_404_and_bad_names_are_422(self):
        r = self.c.post("/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "a"}})
        self.assertEqual(r.code, 404)
        self.assertIn('namespaces "nope" not found', r.body["message"])
        r = self.c.post(CM, {"metadata": {"name": "Bad_Name"}})
        self.assertEqual(r.code, 422)
        self.assertIn("metadata.name", r.body["message"])


class ConcurrencyAndGenerationTest(FakeApiTestCase):
    controllers = False

    def test_stale_update_gets_409_and_fresh_one_succeeds(self):
        a = self.ok(self.c.post(CM, {"metadata": {"name": "a"}, "data": {"k": "1"}}), 201)
        first = copy.deepcopy(a)
        first["data"]["k"] = "2"
        self.ok(self.c.put(CM + "/a", first))
        stale = copy.deepcopy(a)
        stale["data"]["k"] = "3"
        r = self.c.put(CM + "/a", stale)
        self.assertEqual(r.code, 409)
        self.assertEqual(r.body["reason"], "Conflict")
        self.assertIn("the object has been modified", r.body["message"])
        # a merge patch carrying a stale resourceVersion is a precondition, too
        r = self.c.patch(CM + "/a", {"metadata": {"resourceVersion": a["metadata"][
            "resourceVersion"]}, "data": {"k": "4"}})
        self.assertEqual(r.code, 409)
        # an update without resourceVersion is refused
        nov = copy.deepcopy(a)
        del nov["metadata"]["resourceVersion"]
        self.assertEqual(self.c.put(CM + "/a", nov).code, 422)

    def test_generation_bumps_on_spec_changes_only(self):
        path = self.actors()
        a = self.ok(self.c.post(path, actor("g")), 201)
        self.assertEqual(a["metadata"]["generation"], 1)
        # labels only: no bump
        b = self.ok(self.c.patch(path + "/g", {"metadata": {"labels": {"x": "y"}}}))
        self.assertEqual(b["metadata"]["generation"], 1)
        self.assertGreater(int(b["metadata"]["resourceVersion"]),
                           int(a["metadata"]["resourceVersion"]))
        # status through the status subresource: no bump, status stored
        c = self.ok(self.c.patch(path + "/g/status", {"status": {"status": "Running"}}))
        self.assertEqual(c["metadata"]["generation"], 1)
        self.assertEqual(c["status"]["status"], "Running")
        # spec change: bump
        d = self.ok(self.c.patch(path + "/g", {"spec": {"workload": {"replicas": 3}}}))
        self.assertEqual(d["metadata"]["generation"], 2)

    def test_status_subresource_separates_spec_and_status(self):
        path = self.actors()
        a = self.ok(self.c.post(path, dict(actor("s"), status={"status": "Bogus"})), 201)
        self.assertNotIn("status", a)  # status dropped on create
        # main endpoint ignores status
        b = self.ok(self.c.patch(path + "/s", {"status": {"status": "Hacked"},
                                               "spec": {"workload": {"replicas": 2}}}))
        self.assertNotIn("status", b)
        self.assertEqual(b["spec"]["workload"]["replicas"], 2)
        # /status ignores spec
        full = copy.deepcopy(b)
        full["status"] = {"status": "Running"}
        full["spec"]["workload"]["replicas"] = 9
        c = self.ok(self.c.put(path + "/s/status", full))
        self.assertEqual(c["status"]["status"], "Running")
        self.assertEqual(c["spec"]["workload"]["replicas"], 2)
        # stale status write: 409
        r = self.c.put(path + "/s/status", full)
        self.assertEqual(r.code, 409)

    def test_no_op_writes_keep_resource_version(self):
        a = self.ok(self.c.post(CM, {"metadata": {"name": "a"}, "data": {"k": "1"}}), 201)
        b = self.ok(self.c.patch(CM + "/a", {"data": {"k": "1"}}))
        self.assertEqual(b["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"])
        c = self.ok(self.c.put(CM + "/a", a))
        self.assertEqual(c["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"])
        writes = self.ok(self.c.get("/fake/writes"))
        self.assertEqual([w["noop"] for w in writes["writes"] if w["name"] == "a"],
                         [False, True, True])


class LeaseAndFaultTest(FakeApiTestCase):
    controllers = False
    LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"

    def test_leader_election_lease_is_guarded_by_resource_version(self):
        lease = {"metadata": {"name": "asya-operator.asya.sh"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                          "renewTime": "2026-01-01T00:00:00.000000Z"}}
        got = self.ok(self.c.post(self.LEASES, lease), 201)
        self.assertEqual(self.c.post(self.LEASES, lease).code, 409)  # AlreadyExists
        mine = dict(got, spec=dict(got["spec"], holderIdentity="b"))
        theirs = dict(got, spec=dict(got["spec"], holderIdentity="c"))
        self.ok(self.c.put(self.LEASES + "/asya-operator.asya.sh", mine))
        self.assertEqual(self.c.put(self.LEASES + "/asya-operator.asya.sh", theirs).code, 409)
        self.assertEqual(self.ok(self.c.get(self.LEASES + "/asya-operator.asya.sh"))["spec"][
            "holderIdentity"], "b")

    def test_injected_faults_answer_matching_requests_count_times(self):
        self.ok(self.c.post("/fake/faults", {"rules": [
            {"method": "POST", "path": "/configmaps$", "code": 500, "count": 2}]}))
        body = {"metadata": {"name": "a"}}
        self.assertEqual(self.c.post(CM, body).code, 500)
        self.assertEqual(self.c.get(CM).code, 200)
        r = self.c.post(CM, body)
        self.assertEqual((r.code, r.body["reason"]), (500, "InternalError"))
        self.ok(self.c.post(CM, body), 201)
        self.assertEqual(self.ok(self.c.get("/fake/faults"))["rules"][0]["count"], 0)

    def test_crd_update_changes_the_schema_served(self):
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        crd = self.ok(self.c.get(crds + "/asyncactors.asya.sh"))
        spec_props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
            "spec"]["properties"]
        body = actor("a")
        body["spec"]["newField"] = "x"
        r = self.c.post(self.actors(), body, params={"fieldValidation": "Strict"})
        self.assertEqual(r.code, 400)
        spec_props["newField"] = {"type": "string"}
        self.ok(self.c.put(crds + "/asyncactors.asya.sh", crd))
        got = self.ok(self.c.post(self.actors(), body, params={"fieldValidation": "Strict"}),
                      201)
        self.assertEqual(got["spec"]["newField"], "x")


class PatchTest(FakeApiTestCase):
    controllers = False

    def test_json_merge_and_json_patch(self):
        self.ok(self.c.post(CM, {"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}),
                201)
        b = self.ok(self.c.patch(CM + "/a", {"data": {"x": None, "z": "3"}}))
        self.assertEqual(b["data"], {"y": "2", "z": "3"})
        c = self.ok(self.c.patch(CM + "/a", [{"op": "replace", "path": "/data/y", "value": "9"},
                                             {"op": "add", "path": "/data/w", "value": "0"},
                                             {"op": "remove", "path": "/data/z"}], "json"))
        self.assertEqual(c["data"], {"y": "9", "w": "0"})
        r = self.c.patch(CM + "/a", [{"op": "test", "path": "/data/y", "value": "1"}], "json")
        self.assertEqual(r.code, 422)

    def test_strategic_merge_merges_containers_and_env_by_name(self):
        self.ok(self.c.post(DEP, deployment("web")), 201)
        p = {"spec": {"template": {"spec": {"containers": [
            {"name": "asya-runtime", "env": [{"name": "A", "value": "1"}]},
            {"name": "extra", "image": "x:1"}]}}}}
        d = self.ok(self.c.patch(DEP + "/web", p, "strategic"))
        cs = {c["name"]: c for c in d["spec"]["template"]["spec"]["containers"]}
        self.assertEqual(set(cs), {"asya-runtime", "asya-sidecar", "extra"})
        self.assertEqual(cs["asya-runtime"]["image"], "handler:1")
        self.assertEqual(cs["asya-runtime"]["env"], [{"name": "A", "value": "1"}])
        p = {"spec": {"template": {"spec": {"containers": [
            {"name": "extra", "$patch": "delete"}]}}}}
        d = self.ok(self.c.patch(DEP + "/web", p, "strategic"))
        self.assertEqual([c["name"] for c in d["spec"]["template"]["spec"]["containers"]],
                         ["asya-runtime", "asya-sidecar"])

    def test_strategic_merge_is_refused_for_custom_resources(self):
        self.ok(self.c.post(self.actors(), actor("a")), 201)
        r = self.c.patch(self.actors() + "/a", {"spec": {"transport": "sqs"}}, "strategic")
        self.assertEqual(r.code, 415)

    def test_deployment_selector_must_match_template_and_is_immutable(self):
        bad = deployment("web")
        bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        r = self.c.post(DEP, bad)
        self.assertEqual(r.code, 422)
        self.assertIn("selector", r.body["message"])
        self.ok(self.c.post(DEP, deployment("web")), 201)
        r = self.c.patch(DEP + "/web", {"spec": {"selector": {"matchLabels": {"app": "web",
                                                                            "x": "y"}},
                                                 "template": {"metadata": {"labels": {
                                                     "x": "y"}}}}})
        self.assertEqual(r.code, 422)
        self.assertIn("immutable", r.body["message"])


class FinalizerAndGcTest(FakeApiTestCase):
    controllers = False

    def test_delete_with_finalizer_sets_deletion_timestamp_until_last_one_is_removed(self):
        path = self.actors()
        a = actor("f")
        a["metadata"]["finalizers"] = ["asya.sh/finalizer", "other/f"]
        self.ok(self.c.post(path, a), 201)
        r = self.c.delete(path + "/f")
        self.assertEqual(r.code, 202)
        got = self.ok(self.c.get(path + "/f"))
        self.assertTrue(got["metadata"]["deletionTimestamp"])
        # no new finalizers while deleting
        r = self.c.patch(path + "/f", {"metadata": {"finalizers": ["asya.sh/finalizer",
                                                                  "other/f", "new/f"]}})
        self.assertEqual(r.code, 422)
        self.ok(self.c.patch(path + "/f", {"metadata": {"finalizers": ["other/f"]}}))
        self.ok(self.c.get(path + "/f"))
        self.ok(self.c.patch(path + "/f", [{"op": "remove", "path": "/metadata/finalizers"}],
                             "json"))
        self.assertEqual(self.c.get(path + "/f").code, 404)

    def _owned_cm(self, name, owner, kind="AsyncActor", api="asya.sh/v1alpha1"):
        return {"metadata": {"name": name, "ownerReferences": [{
            "apiVersion": api, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]}}

    def test_deleting_an_owner_deletes_dependents_recursively(self):
        owner = self.ok(self.c.post(self.actors(), actor("o")), 201)
        dep = deployment("o")
        dep["metadata"]["ownerReferences"] = self._owned_cm("x", owner)["metadata"][
            "ownerReferences"]
        d = self.ok(self.c.post(DEP, dep), 201)
        self.ok(self.c.post(CM, self._owned_cm("leaf", d, "Deployment", "apps/v1")), 201)
        self.ok(self.c.post(CM, {"metadata": {"name": "free"}}), 201)
        self.ok(self.c.delete(self.actors() + "/o"))
        self.assertEqual(self.c.get(DEP + "/o").code, 404)
        self.assertEqual(self.c.get(CM + "/leaf").code, 404)
        self.ok(self.c.get(CM + "/free"))

    def test_a_dependent_created_after_its_owner_is_gone_is_collected(self):
        owner = self.ok(self.c.post(self.actors(), actor("gone")), 201)
        self.ok(self.c.delete(self.actors() + "/gone"))
        self.ok(self.c.post(CM, self._owned_cm("late", owner)), 201)
        self.assertEqual(self.c.get(CM + "/late").code, 404)
        other = self.ok(self.c.post(self.actors(), actor("here")), 201)
        both = self._owned_cm("half", owner)
        both["metadata"]["ownerReferences"] += self._owned_cm("x", other)["metadata"][
            "ownerReferences"]
        both["metadata"]["ownerReferences"][1]["controller"] = False
        self.ok(self.c.post(CM, both), 201)
        self.ok(self.c.get(CM + "/half"))  # one owner still exists

    def test_gc_waits_for_the_owner_finalizer_and_orphan_policy_keeps_dependents(self):
        a = actor("o")
        a["metadata"]["finalizers"] = ["asya.sh/finalizer"]
        owner = self.ok(self.c.post(self.actors(), a), 201)
        self.ok(self.c.post(CM, self._owned_cm("dep", owner)), 201)
        self.c.delete(self.actors() + "/o")
        self.ok(self.c.get(CM + "/dep"))  # owner still exists (terminating)
        self.ok(self.c.patch(self.actors() + "/o", {"metadata": {"finalizers": None}}))
        self.assertEqual(self.c.get(CM + "/dep").code, 404)
        owner2 = self.ok(self.c.post(self.actors(), actor("p")), 201)
        self.ok(self.c.post(CM, self._owned_cm("kept", owner2)), 201)
        self.ok(self.c.delete(self.actors() + "/p", {"propagationPolicy": "Orphan"}))
        kept = self.ok(self.c.get(CM + "/kept"))
        self.assertNotIn("ownerReferences", kept["metadata"])

    def test_namespace_deletion_removes_its_objects_then_itself(self):
        self.ok(self.c.post("/api/v1/namespaces", {"metadata": {"name": "tmp"}}), 201)
        path = "/api/v1/namespaces/tmp/configmaps"
        self.ok(self.c.post(path, {"metadata": {"name": "a"}}), 201)
        fin = {"metadata": {"name": "b", "finalizers": ["x/y"]}}
        self.ok(self.c.post(path, fin), 201)
        self.c.delete("/api/v1/namespaces/tmp")
        ns = self.ok(self.c.get("/api/v1/namespaces/tmp"))
        self.assertEqual(ns["status"]["phase"], "Terminating")
        self.assertEqual(self.c.get(path + "/a").code, 404)
        self.assertEqual(self.c.post(path, {"metadata": {"name": "c"}}).code, 403)
        self.ok(self.c.patch(path + "/b", {"metadata": {"finalizers": None}}))
        self.assertEqual(self.c.get("/api/v1/namespaces/tmp").code, 404)


if __name__ == "__main__":
    unittest.main()
