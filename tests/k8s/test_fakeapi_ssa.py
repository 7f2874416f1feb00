"""Server-side apply: field managers, conflicts, force, removal of fields no longer applied."""

import unittest

from fakeapi_testlib import FIXTURE_CRD, FakeApiTestCase, actor, deployment

DEP = "/apis/apps/v1/namespaces/default/deployments"


def managers(obj):
    return {(m["manager"], m["operation"]): m for m in obj["metadata"].get("managedFields", [])}


class ServerSideApplyTest(FakeApiTestCase):
    controllers = False

    def apply(self, path, body, manager, force=False):
        params = {"fieldManager": manager}
        if force:
            params["force"] = "true"
        return self.c.patch(path, body, "apply", params=params)

    def test_apply_creates_then_identical_apply_is_a_no_op(self):
        r = self.apply(DEP + "/web", deployment("web"), "asya-operator")
        self.assertEqual(r.code, 201, r)
        m = managers(r.body)
        self.assertIn(("asya-operator", "Apply"), m)
        fields = m[("asya-operator", "Apply")]["fieldsV1"]
        self.assertIn('k:{"name":"asya-runtime"}',
                      fields["f:spec"]["f:template"]["f:spec"]["f:containers"])
        again = self.ok(self.apply(DEP + "/web", deployment("web"), "asya-operator"))
        self.assertEqual(again["metadata"]["resourceVersion"],
                         r.body["metadata"]["resourceVersion"])

    def test_apply_body_in_yaml(self):
        body = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n"
                "  annotations: {when: 2026-01-01T00:00:00Z}\ndata:\n  k: v\n")
        r = self.c.request("PATCH", "/api/v1/namespaces/default/configmaps/y", body,
                           ctype="application/apply-patch+yaml",
                           params={"fieldManager": "yaml-user"})
        self.assertEqual(r.code, 201, r)
        self.assertEqual(r.body["metadata"]["annotations"], {"when": "2026-01-01T00:00:00Z"})
        self.assertEqual(r.body["data"], {"k": "v"})

    def test_apply_requires_a_field_manager(self):
        r = self.c.patch(DEP + "/web", deployment("web"), "apply",
                         params={"fieldManager": ""})
        self.assertEqual(r.code, 400, r)
        self.assertIn("fieldManager", r.body["message"])
        self.assertEqual(self.c.get(DEP + "/web").code, 404)

    def test_conflicting_manager_gets_409_naming_field_and_owner_unless_forced(self):
        self.ok(self.apply(DEP + "/web", deployment("web", replicas=2), "asya-operator"), 201)
        r = self.apply(DEP + "/web", deployment("web", replicas=5), "someone-else")
        self.assertEqual(r.code, 409, r)
        self.assertIn('conflict with "asya-operator"', r.body["message"])
        self.assertIn(".spec.replicas", r.body["message"])
        self.assertEqual(r.body["details"]["causes"][0]["field"], ".spec.replicas")
        # same values: shared ownership, no conflict
        self.ok(self.apply(DEP + "/web", deployment("web", replicas=2), "someone-else"))
        # force takes the field over
        d = self.ok(self.apply(DEP + "/web", deployment("web", replicas=5), "someone-else",
                               force=True))
        self.assertEqual(d["spec"]["replicas"], 5)
        op = managers(d)[("asya-operator", "Apply")]["fieldsV1"]
        self.assertNotIn("f:replicas", op["f:spec"])
        # now the original manager conflicts
        r = self.apply(DEP + "/web", deployment("web", replicas=2), "asya-operator")
        self.assertEqual(r.code, 409)
        self.assertIn('conflict with "someone-else"', r.body["message"])

    def test_update_by_another_client_takes_ownership(self):
        self.ok(self.apply(DEP + "/web", deployment("web", replicas=2), "asya-operator"), 201)
        self.ok(self.c.patch(DEP + "/web", {"spec": {"replicas": 7}},
                             params={"fieldManager": "hpa"}))
        got = self.ok(self.c.get(DEP + "/web"))
        self.assertIn("f:replicas", managers(got)[("hpa", "Update")]["fieldsV1"]["f:spec"])
        r = self.apply(DEP + "/web", deployment("web", replicas=2), "asya-operator")
        self.assertEqual(r.code, 409)
        self.assertIn('conflict with "hpa"', r.body["message"])
        # dropping the field from the applied config lets the other owner keep it
        body = deployment("web")
        del body["spec"]["replicas"]
        d = self.ok(self.apply(DEP + "/web", body, "asya-operator"))
        self.assertEqual(d["spec"]["replicas"], 7)

    def test_fields_no_longer_applied_are_removed_unless_someone_else_owns_them(self):
        body = deployment("web")
        cs = body["spec"]["template"]["spec"]["containers"]
        cs[0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        body["metadata"]["labels"] = {"keep": "1", "drop": "1"}
        self.ok(self.apply(DEP + "/web", body, "asya-operator"), 201)
        self.ok(self.apply(DEP + "/web", {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "metadata": {"name": "web", "labels": {"keep": "1"}}},
                           "other"))
        cs[0]["env"] = [{"name": "A", "value": "1"}]
        body["metadata"]["labels"] = {}
        del cs[1]
        d = self.ok(self.apply(DEP + "/web", body, "asya-operator"))
        self.assertEqual(d["metadata"]["labels"], {"keep": "1"})
        c = d["spec"]["template"]["spec"]["containers"]
        self.assertEqual([x["name"] for x in c], ["asya-runtime"])
        self.assertEqual(c[0]["env"], [{"name": "A", "value": "1"}])

    def test_container_ports_are_keyed_by_container_port(self):
        body = deployment("web")
        body["spec"]["template"]["spec"]["containers"][1]["ports"] = [
            {"name": "metrics", "containerPort": 8080}]
        d = self.ok(self.apply(DEP + "/web", body, "asya-operator"), 201)
        f = managers(d)[("asya-operator", "Apply")]["fieldsV1"]["f:spec"]["f:template"][
            "f:spec"]["f:containers"]['k:{"name":"asya-sidecar"}']["f:ports"]
        self.assertEqual(list(f), ['k:{"containerPort":8080}'])

    def test_managers_own_separate_containers_without_conflict(self):
        self.ok(self.apply(DEP + "/web", deployment("web"), "asya-operator"), 201)
        side = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "injected", "image": "x:1"}]}}}}
        d = self.ok(self.apply(DEP + "/web", side, "injector"))
        self.assertEqual([c["name"] for c in d["spec"]["template"]["spec"]["containers"]],
                         ["asya-runtime", "asya-sidecar", "injected"])
        side["spec"]["template"]["spec"]["containers"][0]["image"] = "x:2"
        self.ok(self.apply(DEP + "/web", side, "injector"))
        clash = dict(side)
        r = self.apply(DEP + "/web", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "web"},
                                      "spec": {"template": {"spec": {"containers": [
                                          {"name": "asya-runtime", "image": "other:9"}]}}}},
                       "injector")
        self.assertEqual(r.code, 409)
        self.assertIn('.spec.template.spec.containers[name="asya-runtime"].image',
                      r.body["message"])
        del clash

    def test_status_apply_goes_through_the_status_subresource_only(self):
        self.ok(self.c.post(self.actors(), actor("a")), 201)
        st = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor", "metadata": {"name": "a"},
              "status": {"status": "Running", "replicas": 1}}
        main = self.ok(self.apply(self.actors() + "/a", st, "asya-operator"))
        self.assertNotIn("status", main)
        got = self.ok(self.apply(self.actors() + "/a/status", st, "asya-operator"))
        self.assertEqual(got["status"], {"status": "Running", "replicas": 1})
        self.assertEqual(got["metadata"]["generation"], 1)
        sub = [m for m in got["metadata"]["managedFields"] if m.get("subresource") == "status"]
        self.assertEqual(sub[0]["manager"], "asya-operator")
        # the applier's status fields it stops applying go away
        st["status"] = {"status": "Napping"}
        got = self.ok(self.apply(self.actors() + "/a/status", st, "asya-operator"))
        self.assertEqual(got["status"], {"status": "Napping"})

    def test_apply_of_a_custom_resource_runs_the_schema(self):
        bad = actor("a")
        bad["spec"]["scaling"] = {"minReplicas": 5, "maxReplicas": 2}
        r = self.c.patch(self.actors() + "/a", bad, "apply",
                         params={"fieldManager": "kubectl", "fieldValidation": "Strict"})
        self.assertEqual(r.code, 422, r)
        typo = actor("a")
        typo["spec"]["trasnport"] = "x"
        r = self.c.patch(self.actors() + "/a", typo, "apply",
                         params={"fieldManager": "kubectl", "fieldValidation": "Strict"})
        self.assertEqual(r.code, 400, r)
        self.assertIn('unknown field "spec.trasnport"', r.body["message"])


class CustomResourceListTypesTest(FakeApiTestCase):
    """Field ownership in custom resources follows the CRD's x-kubernetes-list-type."""
    controllers = False
    crd = FIXTURE_CRD

    def apply(self, body, manager, sub=""):
        return self.c.patch(self.actors() + "/a" + sub, body, "apply",
                            params={"fieldManager": manager})

    def test_list_type_map_is_merged_by_key_and_other_lists_are_atomic(self):
        a = actor("a")
        a["spec"]["sidecar"] = {"env": [{"name": "X", "value": "1"}]}
        self.ok(self.apply(a, "one"), 201)
        b = actor("a")
        b["spec"]["sidecar"] = {"env": [{"name": "Y", "value": "2"}]}
        got = self.ok(self.apply(b, "two"))
        self.assertEqual(got["spec"]["sidecar"]["env"], [{"name": "X", "value": "1"},
                                                         {"name": "Y", "value": "2"}])
        # template.spec is schemaless (preserve-unknown-fields): its lists are atomic
        b["spec"]["workload"]["template"]["spec"]["containers"] = [
            {"name": "other", "image": "x:1"}]
        r = self.apply(b, "two")
        self.assertEqual(r.code, 409, r)
        self.assertIn(".spec.workload.template.spec.containers", r.body["message"])
        self.assertNotIn("[name=", r.body["message"])

    def test_status_conditions_keyed_by_type(self):
        self.ok(self.c.post(self.actors(), actor("a")), 201)
        st = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor", "metadata": {"name": "a"},
              "status": {"conditions": [{"type": "WorkloadReady", "status": "True"}]}}
        self.ok(self.apply(st, "operator", "/status"))
        other = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
                 "metadata": {"name": "a"},
                 "status": {"conditions": [{"type": "External", "status": "False"}]}}
        got = self.ok(self.apply(other, "someone", "/status"))
        self.assertEqual([c["type"] for c in got["status"]["conditions"]],
                         ["WorkloadReady", "External"])


if __name__ == "__main__":
    unittest.main()


class ChangedPathsTest(unittest.TestCase):
    """Managed.record_update finds the fields an Update changed by descending only where the two
    objects differ; it must give what comparing every leaf path of both objects gives."""

    @staticmethod
    def naive(old, new, scope):
        from fakeapi import patch as P
        old_p = P.field_paths(old, scope) if old else set()
        new_p = P.field_paths(new, scope)
        return ({p for p in new_p if p not in old_p or P.get_at(old, p) != P.get_at(new, p)},
                old_p - new_p)

    def test_matches_the_leaf_by_leaf_comparison(self):
        import copy
        from fakeapi import patch as P
        base = deployment("web")
        base["metadata"]["labels"] = {"a": "1", "b": "2"}
        base["spec"]["template"]["spec"]["containers"].append(
            {"name": "side", "image": "s:1", "ports": [{"containerPort": 80}],
             "env": [{"name": "X", "value": "1"}]})
        base["status"] = {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
        edits = [
            lambda o: None,
            lambda o: o["metadata"]["labels"].pop("a"),
            lambda o: o["metadata"].setdefault("annotations", {}).update(x="y"),
            lambda o: o["spec"].update(replicas=3),
            lambda o: o["spec"]["template"]["spec"]["containers"][1].update(image="s:2"),
            lambda o: o["spec"]["template"]["spec"]["containers"][1]["env"].append(
                {"name": "Y", "value": "2"}),
            lambda o: o["spec"]["template"]["spec"]["containers"].pop(0),
            lambda o: o["spec"]["template"]["spec"]["containers"][1].update(ports=[]),
            lambda o: o["spec"].update(template={}),
            lambda o: o.pop("spec"),
            lambda o: o["status"].update(replicas=2),
            lambda o: o["status"]["conditions"][0].update(status="False"),
            lambda o: o.update(status={}),
            lambda o: o["spec"]["template"]["spec"]["containers"].append(  # a duplicate key
                {"name": "side", "image": "dup", "args": ["x"]}),
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(args=["a", "b"]),
        ]
        cases = 0
        for i, edit in enumerate(edits):
            for j, edit2 in enumerate(edits):
                new = copy.deepcopy(base)
                try:
                    edit(new)
                    edit2(new)
                except (KeyError, IndexError):  # the first edit removed what the second edits
                    continue
                for old, nw in ((base, new), (new, base), (None, new)):
                    for scope in ("main", "status", "all"):
                        with self.subTest(i=i, j=j, scope=scope, create=old is None):
                            self.assertEqual(P.changed_paths(old, nw, scope),
                                             self.naive(old, nw, scope))
                            cases += 1
        self.assertGreater(cases, 1000)
