// The AsyncActor CRD: valid as an API server checks it, the chart's copy identical, the examples
// admitted, and invalid manifests refused with a message naming the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./lib/tools.mjs";
import { crdFile, actorSchema, parseDocs, validateObject } from "./lib/k8s.mjs";
import { admit } from "./lib/crd.mjs";

const crdText = readFileSync(crdFile, "utf8");
const crd = parseDocs(crdText)[0];

test("the CRD passes the Kubernetes schema and the API server's CRD checks", () => {
  assert.deepEqual(validateObject(crd), []);
  assert.equal(crd.spec.group, "asya.sh");
  assert.deepEqual(crd.spec.names.shortNames.slice().sort(), ["asya", "asyas", "asyncactor"]);
  const v = crd.spec.versions[0];
  assert.equal(v.name, "v1alpha1");
  assert.deepEqual(v.subresources, { status: {} });
  assert.deepEqual(
    v.additionalPrinterColumns.filter((c) => !c.priority).map((c) => c.name),
    ["Status", "Running", "Failing", "Total", "Desired", "Min", "Max", "Last-Scale", "Age"],
  );
  assert.deepEqual(actorSchema.properties.spec.required, ["transport", "workload"]);
});

test("the asya-operator chart ships the same CRD", () => {
  const copy = readFileSync(path.join(repoRoot, "deploy/helm-charts/asya-operator/crds/asya.sh_asyncactors.yaml"), "utf8");
  assert.equal(copy, crdText, "deploy/helm-charts/asya-operator/crds/ differs from deploy/crds/: copy it");
});

const exampleManifests = [];
for (const ex of readdirSync(path.join(repoRoot, "examples"), { withFileTypes: true })) {
  const dir = path.join(repoRoot, "examples", ex.name, "manifests");
  if (!ex.isDirectory()) continue;
  let files = [];
  try {
    files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  } catch {
    continue;
  }
  for (const f of files) exampleManifests.push(path.join(dir, f));
}

test("every example manifest is admitted by the CRD (schema, strict fields, CEL)", () => {
  assert.ok(exampleManifests.length >= 5, `found ${exampleManifests.length} example manifests`);
  for (const file of exampleManifests) {
    for (const obj of parseDocs(readFileSync(file, "utf8"))) {
      assert.deepEqual(admit(actorSchema, obj).errors, [], file);
    }
  }
});

const base = () => ({
  apiVersion: "asya.sh/v1alpha1",
  kind: "AsyncActor",
  metadata: { name: "t" },
  spec: {
    transport: "rabbitmq",
    workload: { template: { spec: { containers: [{ name: "asya-runtime", image: "img", env: [{ name: "ASYA_HANDLER", value: "m.f" }] }] } } },
  },
});

test("defaults: a scaling block without enabled means scaling on, with one set of defaults", () => {
  const o = base();
  o.spec.scaling = { minReplicas: 0 };
  o.spec.timeout = {};
  o.spec.sidecar = {};
  o.spec.retry = {};
  const r = admit(actorSchema, o);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.object.spec.scaling, { minReplicas: 0, enabled: true, maxReplicas: 50, pollingInterval: 10, cooldownPeriod: 60, queueLength: 5 });
  assert.deepEqual(r.object.spec.timeout, { processing: 300, gracefulShutdown: 30 });
  assert.deepEqual(r.object.spec.sidecar, { imagePullPolicy: "IfNotPresent", concurrency: 1 });
  assert.deepEqual(r.object.spec.retry, { maxAttempts: 1 });
  assert.equal(r.object.spec.workload.kind, "Deployment");
  assert.equal(r.object.spec.workload.replicas, 1);
  assert.equal(r.object.spec.workload.pythonExecutable, "python3");
  const off = base();
  off.spec.scaling = { enabled: false };
  assert.equal(admit(actorSchema, off).object.spec.scaling.enabled, false);
  assert.equal(admit(actorSchema, base()).object.spec.scaling, undefined, "no scaling block: scaling stays off");
});

test("our additions are accepted", () => {
  const o = base();
  o.spec.sidecar = { concurrency: 8 };
  o.spec.retry = { maxAttempts: 3, backoff: "500ms", maxBackoff: "1m30s", nonRetryable: ["ValueError", "KeyError"] };
  o.spec.maxDeliveries = 5;
  o.spec.timeout = { processing: 60, visibility: 120 };
  assert.deepEqual(admit(actorSchema, o).errors, []);
});

// Each case: a change, and the field the error must name.
const negatives = [
  ["misspelt key", (o) => (o.spec.scaling = { maxReplicaz: 3 }), 'unknown field "spec.scaling.maxReplicaz"'],
  ["misspelt top-level spec key", (o) => (o.spec.transprot = "sqs"), 'unknown field "spec.transprot"'],
  ["minReplicas > maxReplicas", (o) => (o.spec.scaling = { minReplicas: 5, maxReplicas: 2 }), "spec.scaling.minReplicas: Invalid value"],
  ["queueLength 0", (o) => (o.spec.scaling = { queueLength: 0 }), "spec.scaling.queueLength: Invalid value: 0"],
  ["negative processing timeout", (o) => (o.spec.timeout = { processing: -1 }), "spec.timeout.processing: Invalid value: -1"],
  ["negative graceful shutdown", (o) => (o.spec.timeout = { gracefulShutdown: -5 }), "spec.timeout.gracefulShutdown: Invalid value: -5"],
  ["negative visibility", (o) => (o.spec.timeout = { visibility: -1 }), "spec.timeout.visibility: Invalid value: -1"],
  ["missing transport", (o) => delete o.spec.transport, "spec.transport: Required value"],
  ["empty transport", (o) => (o.spec.transport = ""), "spec.transport: Invalid value"],
  ["unknown workload kind", (o) => (o.spec.workload.kind = "Job"), "spec.workload.kind: Unsupported value"],
  ["concurrency 0", (o) => (o.spec.sidecar = { concurrency: 0 }), "spec.sidecar.concurrency: Invalid value: 0"],
  ["maxAttempts 0", (o) => (o.spec.retry = { maxAttempts: 0 }), "spec.retry.maxAttempts: Invalid value: 0"],
  ["bad backoff", (o) => (o.spec.retry = { backoff: "soon" }), "spec.retry.backoff: Invalid value"],
  ["maxDeliveries 0", (o) => (o.spec.maxDeliveries = 0), "spec.maxDeliveries: Invalid value: 0"],
  ["string where an integer goes", (o) => (o.spec.scaling = { maxReplicas: "ten" }), "spec.scaling.maxReplicas: Invalid value"],
  ["formula without target", (o) => (o.spec.scaling = { advanced: { formula: "queue / 2" } }), "spec.scaling.advanced.target: Invalid value"],
  ["no asya-runtime container", (o) => (o.spec.workload.template.spec.containers[0].name = "main"), "spec.workload.template.spec.containers: Invalid value"],
  ["sidecar container declared", (o) => o.spec.workload.template.spec.containers.push({ name: "asya-sidecar", image: "x" }), "asya-sidecar is reserved"],
  ["command on asya-runtime", (o) => (o.spec.workload.template.spec.containers[0].command = ["python"]), "must not set command"],
  ["duplicate container names", (o) => o.spec.workload.template.spec.containers.push({ name: "asya-runtime", image: "x" }), "spec.workload.template.spec.containers: Invalid value"],
  ["container without image", (o) => delete o.spec.workload.template.spec.containers[0].image, "spec.workload.template.spec.containers[0].image: Required value"],
  ["reserved env", (o) => o.spec.workload.template.spec.containers[0].env.push({ name: "ASYA_SOCKET_DIR", value: "/x" }), "ASYA_SOCKET_DIR"],
  ["reserved volume", (o) => (o.spec.workload.template.spec.volumes = [{ name: "socket-dir", emptyDir: {} }]), "spec.workload.template.spec.volumes: Invalid value"],
  ["reserved mount", (o) => (o.spec.workload.template.spec.containers[0].volumeMounts = [{ name: "v", mountPath: "/var/run/asya" }]), "/var/run/asya"],
  ["name not a DNS label", (o) => (o.metadata.name = "Bad_Name"), "metadata.name must be a DNS-1123 label"],
  ["name longer than a label", (o) => (o.metadata.name = "a".repeat(64)), "metadata.name must be a DNS-1123 label"],
];
for (const [what, change, expected] of negatives) {
  test(`refused: ${what}`, () => {
    const o = base();
    change(o);
    const { errors } = admit(actorSchema, o);
    assert.ok(errors.some((e) => e.includes(expected)), `expected an error containing ${JSON.stringify(expected)}, got ${JSON.stringify(errors)}`);
  });
}

test("pod template keys we do not type are kept (preserve-unknown-fields)", () => {
  const o = base();
  o.spec.workload.template.spec.nodeSelector = { gpu: "true" };
  o.spec.workload.template.spec.containers[0].args = ["--x"];
  o.spec.workload.template.metadata = { labels: { team: "a" } };
  const r = admit(actorSchema, o);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.object.spec.workload.template.spec.nodeSelector, { gpu: "true" });
  assert.deepEqual(r.object.spec.workload.template.spec.containers[0].args, ["--x"]);
});
