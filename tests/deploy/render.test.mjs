// Parity of the two ways into `asya render` (issue 9, item 7): `asya render` of the asya-actor
// chart's `helm template` output (AsyncActor documents) equals `asya render` of the same values
// file, for every example's values and the original chart's example values. Both run through the
// built binary (ASYA_BIN, set by ctest) with the same operator configuration and namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot, YAML } from "./lib/tools.mjs";
import { template } from "./lib/helm.mjs";
import { validateObject } from "./lib/k8s.mjs";

const asya = process.env.ASYA_BIN || path.join(repoRoot, "build/bin/asya");
const namespace = "asya-test"; // lib/helm.mjs templates into this namespace too

// Both transport types, so every example renders (the same registry for both sides).
const operatorConfig = `transports:
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
`;

const valuesFiles = [
  ...readdirSync(path.join(repoRoot, "examples"))
    .map((d) => path.join(repoRoot, "examples", d, "values.yaml"))
    .filter((f) => existsSync(f)),
  ...readdirSync(path.join(repoRoot, "tests/deploy/testdata/upstream/values")).map((f) =>
    path.join(repoRoot, "tests/deploy/testdata/upstream/values", f),
  ),
  // Every merge/shorthand rule of deploy/README.md at least once.
  path.join(repoRoot, "tests/deploy/testdata/render/edge-values.yaml"),
];

const work = mkdtempSync(path.join(os.tmpdir(), "asya-render-parity-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const configFile = path.join(work, "operator.yaml");
writeFileSync(configFile, operatorConfig);

// asya render FILE -o json -> the v1 List (throws with asya's stderr when it refuses).
// nsArgs: ["--namespace", NS] or [] (a manifest's own namespace must match the flag).
function render(file, nsArgs) {
  const r = spawnSync(asya, ["render", file, ...nsArgs, "--operator-config", configFile, "-o", "json"], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`asya render ${file} (exit ${r.status}): ${r.stderr}`);
  const list = JSON.parse(r.stdout);
  assert.equal(list.apiVersion, "v1");
  assert.equal(list.kind, "List");
  return list;
}

test("asya binary is built", () => {
  assert.ok(existsSync(asya), `${asya} missing: build the project first (or set ASYA_BIN)`);
});

for (const values of valuesFiles) {
  const rel = path.relative(repoRoot, values);
  test(`asya render of helm template ${rel} equals asya render of ${rel}`, () => {
    const actors = template("asya-actor", ["-f", values]).filter(
      (o) => o.apiVersion === "asya.sh/v1alpha1" && o.kind === "AsyncActor",
    );
    assert.ok(actors.length > 0, `${rel}: the chart rendered no AsyncActor`);
    if (rel.startsWith("tests/deploy/testdata/render/")) {
      // Our own edge cases are AsyncActors a cluster admits (the upstream ones are not: upstream.test.mjs).
      for (const a of actors) assert.deepEqual(validateObject(a), [], `${rel}: ${a.metadata.name}`);
    }
    const manifests = path.join(work, path.basename(path.dirname(values)) + "-" + path.basename(values));
    writeFileSync(manifests, actors.map((a) => "---\n" + YAML.stringify(a)).join(""));

    // The release namespace (`helm template --namespace`) is what `asya render --namespace` is;
    // a values file that names its namespace renders into that one on both sides, no flag.
    const ownNamespace = YAML.parse(readFileSync(values, "utf8"))?.namespace;
    const nsArgs = ownNamespace ? [] : ["--namespace", namespace];
    // A field the AsyncActor model does not know (the upstream examples carry some, e.g.
    // `scaling.advanced.triggers`) is refused on both sides, naming the same actor and field.
    const refusal = (file) => {
      try {
        render(file, nsArgs);
        return null;
      } catch (e) {
        return [...String(e.message).matchAll(/actor "[^"]+": [^\n]*/g)].map((m) => m[0]);
      }
    };
    const refusedValues = refusal(values);
    if (refusedValues) {
      assert.ok(refusedValues.length > 0, `${rel}: refused without naming actor and field`);
      assert.deepEqual(refusal(manifests), refusedValues, `${rel}: both sides refuse alike`);
      return;
    }
    const fromChart = render(manifests, nsArgs);
    const fromValues = render(values, nsArgs);
    for (const o of fromValues.items) assert.equal(o.metadata.namespace, ownNamespace || namespace);
    // One workload per actor on both sides, then the whole lists, object by object.
    const workloads = (l) => l.items.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet").map((o) => o.metadata.name);
    assert.deepEqual(workloads(fromValues), actors.map((a) => a.metadata.name));
    assert.equal(fromChart.items.length, fromValues.items.length, `${rel}: number of objects`);
    for (let i = 0; i < fromValues.items.length; i++) {
      const o = fromValues.items[i];
      assert.deepEqual(fromChart.items[i], o, `${rel}: ${o.kind} ${o.metadata.name}`);
    }
  });
}
