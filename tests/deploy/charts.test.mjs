// The Helm charts: `helm lint` and `helm template` with a real helm, default values and the
// examples' values; every rendered object validated against the Kubernetes/KEDA schemas, every
// AsyncActor against our CRD (schema, strict fields, CEL).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./lib/tools.mjs";
import { validateObject, describe } from "./lib/k8s.mjs";
import { helm, chartDir, template } from "./lib/helm.mjs";

const charts = ["asya-operator", "asya-actor", "asya-crew", "asya-gateway"];
// Values a chart needs beyond its defaults to render (a required setting).
const required = { "asya-crew": ["--set", "transport=rabbitmq"], "asya-actor": ["--set", "name=a,transport=sqs"] };
const exampleValues = readdirSync(path.join(repoRoot, "examples"))
  .map((d) => path.join(repoRoot, "examples", d, "values.yaml"))
  .filter((f) => existsSync(f));

function assertValid(objects, what) {
  assert.ok(objects.length > 0, `${what}: rendered nothing`);
  for (const o of objects) assert.deepEqual(validateObject(o), [], `${what}: ${describe(o)}`);
}

for (const chart of charts) {
  test(`${chart}: helm lint`, () => {
    const r = helm("lint", "--strict", chartDir(chart), ...(required[chart] || []));
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  test(`${chart}: helm template objects are valid`, () => {
    assertValid(template(chart, required[chart] || [], { includeCrds: true }), chart);
  });
}

test("asya-crew: without a transport the chart refuses with a clear message", () => {
  const r = helm("template", "t", chartDir("asya-crew"));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /transport is required/);
});

test("asya-actor: default values render no actor", () => {
  assert.deepEqual(template("asya-actor").filter((o) => o.kind === "AsyncActor"), []);
});

for (const values of exampleValues) {
  const rel = path.relative(repoRoot, values);
  test(`asya-actor: helm lint with ${rel}`, () => {
    const r = helm("lint", "--strict", chartDir("asya-actor"), "-f", values);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  test(`asya-actor: ${rel} renders valid AsyncActors, one per actor`, () => {
    const objs = template("asya-actor", ["-f", values]);
    assertValid(objs, rel);
    const actors = objs.filter((o) => o.kind === "AsyncActor");
    assert.ok(actors.length >= 3, `${rel}: ${actors.length} actors`);
    for (const a of actors) {
      assert.equal(a.metadata.namespace, "asya-test");
      assert.equal(a.metadata.labels["app.kubernetes.io/name"], a.metadata.name);
    }
  });
}

test("asya-actor: seed shorthand and deep-merged defaults", () => {
  const objs = template("asya-actor", [
    "--set", "transport=sqs",
    "--set-json", `actors=[{"name":"text-processor","scaling":{"minReplicas":0,"maxReplicas":50},"image":"my-processor:v1","handler":"processor.TextProcessor.process","env":[{"name":"MODE","value":"fast"}],"resources":{"limits":{"cpu":"1"}}},{"name":"other","transport":"rabbitmq","scaling":{"enabled":false}}]`,
  ]);
  const [tp, other] = objs.filter((o) => o.kind === "AsyncActor");
  assert.equal(tp.spec.transport, "sqs");
  assert.deepEqual(tp.spec.scaling, { enabled: true, minReplicas: 0, maxReplicas: 50, pollingInterval: 10, cooldownPeriod: 60, queueLength: 5 });
  const c = tp.spec.workload.template.spec.containers.find((x) => x.name === "asya-runtime");
  assert.equal(c.image, "my-processor:v1");
  assert.deepEqual(c.env, [{ name: "MODE", value: "fast" }, { name: "ASYA_HANDLER", value: "processor.TextProcessor.process" }]);
  assert.deepEqual(c.resources, { limits: { cpu: "1" } });
  assert.equal(other.spec.transport, "rabbitmq");
  assert.deepEqual(other.spec.scaling, { enabled: false });
  assertValid(objs, "shorthand");
});

test("asya-actor: single mode and our spec additions", () => {
  const objs = template("asya-actor", [
    "--set", "name=one,transport=sqs,handler=m.f,image=i:1,maxDeliveries=4",
    "--set-json", `retry={"maxAttempts":3,"backoff":"2s","nonRetryable":["ValueError"]}`,
    "--set-json", `sidecar={"concurrency":4}`,
    "--set-json", `timeout={"processing":30,"visibility":90}`,
  ]);
  const [a] = objs.filter((o) => o.kind === "AsyncActor");
  assert.equal(a.metadata.name, "one");
  assert.equal(a.spec.maxDeliveries, 4);
  assert.deepEqual(a.spec.retry, { maxAttempts: 3, backoff: "2s", nonRetryable: ["ValueError"] });
  assert.deepEqual(a.spec.sidecar, { concurrency: 4 });
  assertValid(objs, "single");
});

test("asya-actor: a misspelt key in an actor is refused by the CRD", () => {
  const objs = template("asya-actor", ["--set", "transport=sqs", "--set-json", `actors=[{"name":"a","scaling":{"maxReplicaz":3}}]`]);
  const [a] = objs.filter((o) => o.kind === "AsyncActor");
  assert.ok(validateObject(a).some((e) => e.includes('unknown field "spec.scaling.maxReplicaz"')), JSON.stringify(validateObject(a)));
});

test("asya-actor: errors name the actor", () => {
  let r = helm("template", "t", chartDir("asya-actor"), "--set-json", `actors=[{"name":"a"}]`);
  assert.match(r.stderr, /actor "a": transport is required/);
  r = helm("template", "t", chartDir("asya-actor"), "--set", "transport=sqs", "--set-json", `actors=[{"name":"a"},{"name":"a"}]`);
  assert.match(r.stderr, /actors\[1\]: actor "a" is declared twice/);
});

test("asya-operator: transport registry entries by name with a type", () => {
  const objs = template("asya-operator", [
    "--set-json", `transports={"rmq-main":{"type":"rabbitmq","enabled":true,"config":{"host":"a"}},"rmq-batch":{"type":"rabbitmq","enabled":true,"config":{"host":"b"}},"sqs":{"type":"sqs","enabled":true,"config":{"region":"eu-west-1","accountId":"1"}}}`,
  ]);
  const cm = objs.find((o) => o.kind === "ConfigMap");
  const reg = JSON.parse(cm.data["transports.json"]);
  assert.deepEqual(Object.keys(reg.transports).sort(), ["rmq-batch", "rmq-main", "sqs"]);
  const dep = objs.find((o) => o.kind === "Deployment");
  const env = dep.spec.template.spec.containers[0].env.find((e) => e.name === "ASYA_TRANSPORT_CONFIG");
  assert.equal(env.valueFrom.configMapKeyRef.name, cm.metadata.name);
  let r = helm("template", "t", chartDir("asya-operator"), "--set", "transports.x.type=kafka");
  assert.match(r.stderr, /transports\.x\.type.*must be .*rabbitmq.*sqs/);
  r = helm("template", "t", chartDir("asya-operator"), "--set", "transports.x.type=sqs,transports.x.confg.region=a");
  assert.match(r.stderr, /transports\.x: Additional property confg is not allowed/);
});

test("asya-operator: RBAC is least privilege (no wildcard, no write to secrets, Lease only in its namespace)", () => {
  const objs = template("asya-operator");
  const cr = objs.find((o) => o.kind === "ClusterRole" && o.metadata.name.endsWith("-manager-role"));
  for (const rule of cr.rules) {
    assert.ok(!rule.verbs.includes("*") && !rule.resources.includes("*") && !rule.apiGroups.includes("*"), JSON.stringify(rule));
    if (rule.resources.includes("secrets")) assert.deepEqual(rule.verbs, ["get"]);
    assert.ok(!rule.apiGroups.includes("coordination.k8s.io"));
  }
  const role = objs.find((o) => o.kind === "Role" && o.metadata.name.endsWith("-leader-election"));
  assert.ok(role.rules.some((r) => r.resources.includes("leases")));
});

test("asya-gateway: defaults start without a database; a database comes from a Secret", () => {
  let objs = template("asya-gateway");
  let dep = objs.find((o) => o.kind === "Deployment");
  let env = dep.spec.template.spec.containers[0].env;
  const byName = (n) => env.find((e) => e.name === n);
  assert.ok(!byName("ASYA_CONFIG_PATH"), env.map((e) => e.name).join(","));
  // Defaults the binary starts with: SQLite on an emptyDir, an explicit address and transport,
  // and a generated client token (a gateway without client tokens stays on loopback).
  assert.equal(byName("ASYA_DATABASE_URL").value, "sqlite:///var/lib/asya-gateway/gateway.db");
  assert.ok(dep.spec.template.spec.volumes.some((v) => v.name === "data" && v.emptyDir));
  assert.equal(byName("ASYA_GATEWAY_ADDR").value, "0.0.0.0");
  assert.equal(byName("ASYA_TRANSPORT").value, "sqs");
  assert.equal(byName("ASYA_GATEWAY_TOKENS").valueFrom.secretKeyRef.key, "client-tokens");
  const secret = objs.find((o) => o.kind === "Secret");
  assert.match(secret.stringData["client-tokens"], /^[A-Za-z0-9]{40}$/);
  assert.ok(!byName("ASYA_GATEWAY_TOKEN"));
  dep = template("asya-gateway", ["--set", "auth.allowUnauthenticated=true,auth.callbackToken=cb"]).find((o) => o.kind === "Deployment");
  env = dep.spec.template.spec.containers[0].env;
  assert.ok(!byName("ASYA_GATEWAY_TOKENS"));
  assert.equal(byName("ASYA_GATEWAY_ALLOW_NO_AUTH").value, "true");
  assert.equal(byName("ASYA_GATEWAY_TOKEN").valueFrom.secretKeyRef.key, "callback-token");
  dep = template("asya-gateway", ["--set", "database.existingSecret=pg,database.existingSecretKey=dsn"]).find((o) => o.kind === "Deployment");
  const db = dep.spec.template.spec.containers[0].env.find((e) => e.name === "ASYA_DATABASE_URL");
  assert.deepEqual(db.valueFrom.secretKeyRef, { name: "pg", key: "dsn" });
  const r = helm("template", "t", chartDir("asya-gateway"), "--set", "replicaCount=2");
  assert.match(r.stderr, /replicaCount > 1 needs database/);
});

test("asya-actor: a misspelt values key is refused by values.schema.json, naming it", () => {
  let r = helm("template", "t", chartDir("asya-actor"), "--set", "transport=sqs", "--set-json", `actors=[{"name":"a","handelr":"m.f"}]`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /actors\.0: Additional property handelr is not allowed/);
  r = helm("template", "t", chartDir("asya-actor"), "--set", "transport=sqs,defualt.image=x");
  assert.match(r.stderr, /Additional property defualt is not allowed/);
});

test("every chart refuses a misspelt values key, naming it (values.schema.json)", () => {
  const cases = [
    ["asya-operator", ["--set", "controler.maxConcurrentReconciles=3"], /Additional property controler is not allowed/],
    ["asya-operator", ["--set", "leaderElection.enable=false"], /leaderElection: Additional property enable is not allowed/],
    ["asya-crew", ["--set", "transport=a,happy-end.prefx=x"], /happy-end: Additional property prefx is not allowed/],
    ["asya-gateway", ["--set", "databse.url=x"], /Additional property databse is not allowed/],
  ];
  for (const [chart, args, re] of cases) {
    const r = helm("template", "t", chartDir(chart), ...args);
    assert.notEqual(r.code, 0, `${chart} ${args.join(" ")}`);
    assert.match(r.stderr, re);
  }
});
