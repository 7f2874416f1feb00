"""Server-side Table output: CRD printer columns and built-in default columns."""

import unittest

from fakeapi import table
from fakeapi_testlib import FIXTURE_CRD, TABLE, FakeApiTestCase, actor, deployment


class JsonPathTest(unittest.TestCase):
    def test_subset(self):
        o = {"a": {"b": [{"t": "X", "s": "1"}, {"t": "Y", "s": "2"}]}, "n": 3}
        self.assertEqual(table.jsonpath(o, ".n"), [3])
        self.assertEqual(table.jsonpath(o, "{.a.b[1].s}"), ["2"])
        self.assertEqual(table.jsonpath(o, ".a.b[*].t"), ["X", "Y"])
        self.assertEqual(table.jsonpath(o, '.a.b[?(@.t=="Y")].s'), ["2"])
        self.assertEqual(table.jsonpath(o, ".missing.x"), [])


class TableTest(FakeApiTestCase):
    crd = FIXTURE_CRD  # its printer columns are asserted below

    def test_custom_resource_table_uses_printer_columns(self):
        self.ok(self.c.post(self.actors(), actor("echo", scaling={"minReplicas": 0,
                                                                  "maxReplicas": 5})), 201)
        self.ok(self.c.patch(self.actors() + "/echo/status", {"status": {
            "status": "Running", "replicas": 2, "failingPods": 0, "totalReplicas": 2,
            "desiredReplicas": 2, "lastScaleFormatted": "5m ago (up)",
            "conditions": [{"type": "WorkloadReady", "status": "True"}]}}))
        self.ok(self.c.post(self.actors(), actor("bare")), 201)
        t = self.ok(self.c.get(self.actors(), accept=TABLE))
        self.assertEqual(t["kind"], "Table")
        cols = [(c["name"], c["type"], c["priority"]) for c in t["columnDefinitions"]]
        self.assertEqual(cols[:10], [
            ("Name", "string", 0), ("Status", "string", 0), ("Running", "integer", 0),
            ("Failing", "integer", 0), ("Total", "integer", 0), ("Desired", "integer", 0),
            ("Min", "integer", 0), ("Max", "integer", 0), ("Last-Scale", "string", 0),
            ("Age", "date", 0)])
        self.assertEqual(cols[10], ("Workload", "string", 1))
        rows = {r["cells"][0]: r for r in t["rows"]}
        echo = rows["echo"]["cells"]
        self.assertEqual(echo[1:9], ["Running", 2, 0, 2, 2, 0, 5, "5m ago (up)"])
        self.assertRegex(echo[9], r"^\d+s$")
        self.assertEqual(echo[10:], ["Deployment", "True"])
        self.assertEqual(rows["bare"]["cells"][1:9], [None] * 8)
        self.assertEqual(rows["echo"]["object"]["kind"], "PartialObjectMetadata")
        one = self.ok(self.c.get(self.actors() + "/echo", accept=TABLE))
        self.assertEqual(len(one["rows"]), 1)

    def test_builtin_tables(self):
        self.ok(self.c.post("/apis/apps/v1/namespaces/default/deployments",
                            deployment("web", replicas=2)), 201)
        self.ok(self.c.post("/fake/sync", {}))
        t = self.ok(self.c.get("/apis/apps/v1/namespaces/default/deployments", accept=TABLE))
        self.assertEqual([c["name"] for c in t["columnDefinitions"]],
                         ["Name", "Ready", "Up-to-date", "Available", "Age"])
        self.assertEqual(t["rows"][0]["cells"][:4], ["web", "2/2", 2, 2])
        t = self.ok(self.c.get("/api/v1/namespaces/default/pods", accept=TABLE))
        self.assertEqual([c["name"] for c in t["columnDefinitions"]][:5],
                         ["Name", "Ready", "Status", "Restarts", "Age"])
        self.assertEqual([r["cells"][1:4] for r in t["rows"]], [["2/2", "Running", "0"]] * 2)


if __name__ == "__main__":
    unittest.main()
