// The original chart's own example values give the same AsyncActor objects through our chart as
// through the original's (testdata/upstream/README.md): compared as an API server stores them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocs, actorSchema, validateObject } from "./lib/k8s.mjs";
import { stored } from "./lib/crd.mjs";
import { template } from "./lib/helm.mjs";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "testdata/upstream");
const asStored = (o) => {
  const s = stored(actorSchema, o);
  return { apiVersion: s.apiVersion, kind: s.kind, name: s.metadata.name, namespace: s.metadata.namespace, spec: s.spec };
};

for (const file of readdirSync(path.join(dir, "values"))) {
  const name = file.replace(/\.yaml$/, "");
  test(`original example ${file}: same AsyncActors through our chart`, () => {
    const golden = parseDocs(readFileSync(path.join(dir, "golden", `${name}.asyncactors.yaml`), "utf8"));
    const ours = template("asya-actor", ["-f", path.join(dir, "values", file)]).filter((o) => o.kind === "AsyncActor");
    assert.ok(golden.length > 0);
    assert.deepEqual(ours.map(asStored), golden.map(asStored));
  });
}

test("finding: the original's sqs-actor example sets a field no CRD declares", () => {
  const golden = parseDocs(readFileSync(path.join(dir, "golden", "sqs-actor.asyncactors.yaml"), "utf8"));
  assert.ok(validateObject(golden[0]).some((e) => e.includes('unknown field "spec.scaling.advanced.triggers"')));
});
