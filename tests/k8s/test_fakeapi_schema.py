"""Custom resources through the CRD's structural schema: defaults, pruning/strict, OpenAPI
validation and CEL rules (x-kubernetes-validations), plus the CEL-subset evaluator itself."""

import unittest

from fakeapi import cel, schema
from fakeapi_testlib import FIXTURE_CRD, FakeApiTestCase, actor


class CelTest(unittest.TestCase):
    def ev(self, src, obj=None):
        return cel.run(src, {"self": obj})

    def test_operators_and_literals(self):
        self.assertTrue(self.ev("1 + 2 * 3 == 7 && 7 / 2 == 3 && -7 / 2 == -3 && 7 % 3 == 1"))
        self.assertTrue(self.ev("'a' + \"b\" == 'ab' && [1, 2] + [3] == [1, 2, 3]"))
        self.assertEqual(self.ev("true ? 1 : 2"), 1)
        self.assertTrue(self.ev("!(1 > 2) && 2 >= 2 && 1 != 2 && 1.5 < 2"))
        self.assertTrue(self.ev("'b' in ['a', 'b'] && 'k' in {'k': 1} && !(3 in [1, 2])"))

    def test_self_fields_has_size_and_macros(self):
        s = {"min": 1, "max": 3, "name": "abc", "items": [{"n": "x"}, {"n": "y"}]}
        self.assertTrue(self.ev("self.min <= self.max", s))
        self.assertTrue(self.ev("has(self.min) && !has(self.nope)", s))
        self.assertTrue(self.ev("size(self.name) == 3 && self.name.size() == 3", s))
        self.assertTrue(self.ev("self.items.all(i, i.n != 'z')", s))
        self.assertTrue(self.ev("self.items.exists(i, i.n == 'y')", s))
        self.assertTrue(self.ev("self.items.exists_one(i, i.n == 'y')", s))
        self.assertEqual(self.ev("self.items.map(i, i.n)", s), ["x", "y"])
        self.assertEqual(self.ev("self.items.filter(i, i.n == 'x').size()", s), 1)
        self.assertTrue(self.ev("self.name.startsWith('a') && self.name.matches('^a.c$')", s))
        self.assertTrue(self.ev("self.items[1].n == 'y'", s))

    def test_errors(self):
        with self.assertRaises(cel.CelError):
            self.ev("self.missing > 1", {})
        with self.assertRaises(cel.CelError):
            self.ev("1 == 'a'")
        with self.assertRaises(cel.CelError):
            cel.compile_rule("self.x >")
        # error absorbed by the other side of || / &&, as in CEL
        self.assertTrue(self.ev("self.missing > 1 || true", {}))
        self.assertFalse(self.ev("self.missing > 1 && false", {}))

    def test_transition_rule_detection(self):
        self.assertTrue(cel.references(cel.compile_rule("self == oldSelf"), "oldSelf"))
        self.assertFalse(cel.references(cel.compile_rule("self.a == 1"), "oldSelf"))


class SchemaUnitTest(unittest.TestCase):
    S = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"x": {"type": "integer", "default": 5}}},
        "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "m": {"type": "object", "additionalProperties": {"type": "string"}}}}

    def test_nested_defaults_only_when_parent_present(self):
        self.assertEqual(schema.apply_defaults({}, self.S), {})
        self.assertEqual(schema.apply_defaults({"a": {}}, self.S), {"a": {"x": 5}})

    def test_formats_sets_and_any_of(self):
        s = {"type": "object", "properties": {
            "a": {"type": "integer", "format": "int32"},
            "t": {"type": "string", "format": "date-time"},
            "s": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "q": {"anyOf": [{"type": "integer"}, {"type": "string"}],
                  "x-kubernetes-int-or-string": True}}}
        errs = schema.validate({"a": 2 ** 40, "t": "nope", "s": ["x", "x"], "q": True}, s)
        self.assertEqual(sorted(e[0] for e in errs), ["a", "q", "s[1]", "t"])
        self.assertEqual(schema.validate({"a": 1, "t": "2026-01-01T00:00:00Z", "s": ["x"],
                                          "q": "1Gi"}, s), [])

    def test_prune_keeps_preserved_and_map_values(self):
        unknown = []
        out = schema.prune({"a": {"y": 1}, "b": {"any": 1}, "m": {"k": "v"}, "z": 1}, self.S,
                           "", unknown)
        self.assertEqual(out, {"a": {}, "b": {"any": 1}, "m": {"k": "v"}})
        self.assertEqual(sorted(unknown), ["a.y", "z"])


class CustomResourceSchemaTest(FakeApiTestCase):
    """Runs with the fake's own CRD fixture, whose rules these tests know."""
    controllers = False
    crd = FIXTURE_CRD

    def post(self, body, strict=False):
        params = {"fieldValidation": "Strict"} if strict else None
        return self.c.post(self.actors(), body, params=params)

    def test_defaults_applied_and_nested_defaults_need_their_parent(self):
        a = self.ok(self.post(actor("a")), 201)
        self.assertEqual(a["spec"]["workload"]["kind"], "Deployment")
        self.assertEqual(a["spec"]["workload"]["replicas"], 1)
        self.assertNotIn("scaling", a["spec"])
        self.assertNotIn("timeout", a["spec"])
        b = self.ok(self.post(actor("b", scaling={}, timeout={"processing": 10})), 201)
        self.assertEqual(b["spec"]["scaling"], {"enabled": True, "minReplicas": 0,
                                                "maxReplicas": 50, "queueLength": 5})
        self.assertEqual(b["spec"]["timeout"], {"processing": 10, "gracefulShutdown": 30})

    def test_unknown_fields_pruned_with_warning_or_refused_when_strict(self):
        body = actor("a")
        body["spec"]["scalling"] = {"minReplicas": 0}
        body["spec"]["workload"]["template"]["spec"]["anything"] = 1  # preserved
        r = self.post(body)
        self.assertEqual(r.code, 201, r)
        self.assertNotIn("scalling", r.body["spec"])
        self.assertEqual(r.body["spec"]["workload"]["template"]["spec"]["anything"], 1)
        self.assertIn('unknown field \\"spec.scalling\\"', r.headers.get("Warning", ""))
        body["metadata"]["name"] = "b"
        r = self.post(body, strict=True)
        self.assertEqual(r.code, 400, r)
        self.assertIn('strict decoding error: unknown field "spec.scalling"', r.body["message"])
        self.assertEqual(self.c.get(self.actors() + "/b").code, 404)
        # Ignore: silently pruned
        body["metadata"]["name"] = "c"
        r = self.c.post(self.actors(), body, params={"fieldValidation": "Ignore"})
        self.assertEqual(r.code, 201)
        self.assertNotIn("Warning", r.headers)

    def test_openapi_keywords(self):
        cases = [
            (actor("t1", transport=""), "spec.transport", "at least 1 chars long"),
            (actor("t2", scaling={"minReplicas": -1}), "spec.scaling.minReplicas",
             "greater than or equal to 0"),
            (actor("t3", scaling={"minReplicas": "two"}), "spec.scaling.minReplicas",
             "must be of type integer"),
            (actor("t4", workload={"kind": "Job", "template": {}}), "spec.workload.kind",
             'Unsupported value: "Job"'),
            (actor("t5", workload={}), "spec.workload.template", "Required value"),
        ]
        for body, field, text in cases:
            r = self.post(body)
            self.assertEqual(r.code, 422, (body, r))
            self.assertEqual(r.body["reason"], "Invalid")
            self.assertIn(field, r.body["message"])
            self.assertIn(text, r.body["message"])
            self.assertIn(field, [c["field"] for c in r.body["details"]["causes"]])
        missing = actor("t6")
        del missing["spec"]["transport"]
        r = self.post(missing)
        self.assertEqual(r.code, 422)
        self.assertIn("spec.transport: Required value", r.body["message"])

    def test_cel_rules_reject_with_message_and_field_path(self):
        r = self.post(actor("c1", scaling={"minReplicas": 5, "maxReplicas": 2}))
        self.assertEqual(r.code, 422, r)
        self.assertIn('AsyncActor.asya.sh "c1" is invalid', r.body["message"])
        self.assertIn("spec: Invalid value", r.body["message"])
        self.assertIn("scaling.minReplicas must be <= scaling.maxReplicas", r.body["message"])
        r = self.post(actor("c2", scaling={"queueLength": 0}))
        self.assertEqual(r.code, 422)
        self.assertIn("spec.scaling.queueLength", r.body["message"])
        self.assertIn("queueLength must be >= 1 when scaling is enabled", r.body["message"])
        self.ok(self.post(actor("c3", scaling={"enabled": False, "queueLength": 0})), 201)

    def test_transition_rule_uses_old_self_on_update_only(self):
        self.ok(self.post(actor("a")), 201)
        r = self.c.patch(self.actors() + "/a", {"spec": {"transport": "sqs"}})
        self.assertEqual(r.code, 422, r)
        self.assertIn("transport is immutable", r.body["message"])
        self.ok(self.c.patch(self.actors() + "/a", {"spec": {"workload": {"replicas": 2}}}))

    def test_validation_also_runs_on_update_and_status_writes(self):
        self.ok(self.post(actor("a")), 201)
        r = self.c.patch(self.actors() + "/a", {"spec": {"scaling": {"maxReplicas": 0}}})
        self.assertEqual(r.code, 422)
        got = self.ok(self.c.get(self.actors() + "/a"))
        self.assertNotIn("scaling", got["spec"])


if __name__ == "__main__":
    unittest.main()
