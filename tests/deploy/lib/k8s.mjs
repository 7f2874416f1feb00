// Validates Kubernetes and KEDA objects against the official schemas shipped by the npm packages
// kubernetes-models and @kubernetes-models/keda (pinned in tests/deploy/package.json), and
// AsyncActor objects against our CRD (lib/crd.mjs).
import path from "node:path";
import { requireTool, YAML, repoRoot } from "./tools.mjs";
import { loadCrd, admit, checkCrd } from "./crd.mjs";

export const crdFile = path.join(repoRoot, "deploy/crds/asya.sh_asyncactors.yaml");
const ours = loadCrd(crdFile);
export const actorSchema = ours.schema;

function modelFor(apiVersion, kind) {
  const pkg = apiVersion.startsWith("keda.sh/") ? "@kubernetes-models/keda" : "kubernetes-models";
  try {
    return requireTool(`${pkg}/${apiVersion}/${kind}`)[kind];
  } catch {
    return null;
  }
}

export function parseDocs(text) {
  const out = [];
  for (const d of YAML.parseAllDocuments(text)) {
    if (d.errors.length) throw new Error(d.errors.map((e) => e.message).join("; "));
    const obj = d.toJSON();
    if (obj) out.push(obj);
  }
  return out;
}

// Returns [string] problems of one object (empty when valid).
export function validateObject(obj) {
  if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) return ["not a Kubernetes object (apiVersion/kind missing)"];
  if (obj.apiVersion === "asya.sh/v1alpha1" && obj.kind === "AsyncActor") return admit(actorSchema, obj).errors;
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) return [`no schema known for ${obj.apiVersion}/${obj.kind}`];
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(...String(e.message).split("\n").slice(0, 8));
  }
  if (obj.kind === "CustomResourceDefinition") problems.push(...checkCrd(obj));
  return problems;
}

export const describe = (obj) => `${obj?.apiVersion}/${obj?.kind} ${obj?.metadata?.namespace ? obj.metadata.namespace + "/" : ""}${obj?.metadata?.name}`;
