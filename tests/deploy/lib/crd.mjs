// What a Kubernetes API server does with a custom resource of a structural-schema CRD, for
// tests: prune (and, with strict field validation as kubectl uses by default, refuse) unknown
// fields, apply defaults, validate the OpenAPI v3 schema and evaluate the x-kubernetes-validations
// CEL rules. Also checks the CRD itself the way the API server does at creation (structural
// schema, defaults valid, rules compile, printer columns point at declared fields).
//
// Simulation of the documented semantics, not the API server's code. Messages name the field:
//   unknown field "spec.scaling.maxReplicaz"
//   spec.scaling.queueLength: Invalid value: 0: should be greater than or equal to 1
//   spec.scaling.minReplicas: Invalid value: "object": minReplicas must be less than or equal to maxReplicas
import { readFileSync } from "node:fs";
import { YAML, cel } from "./tools.mjs";

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const join = (p, k) => (p ? `${p}.${k}` : k);

export function loadCrd(file) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJSON()).filter(Boolean);
  const crd = docs.find((d) => d.kind === "CustomResourceDefinition");
  if (!crd) throw new Error(`${file}: no CustomResourceDefinition`);
  const version = crd.spec.versions.find((v) => v.storage) || crd.spec.versions[0];
  return { crd, version, schema: version.schema.openAPIV3Schema };
}

const preserves = (s) => s["x-kubernetes-preserve-unknown-fields"] === true;
const intOrString = (s) => s["x-kubernetes-int-or-string"] === true;

// 1. prune unknown fields (reported), drop nulls of non-nullable fields.
function prune(schema, value, path, errors, isRoot) {
  if (isObj(value)) {
    if (isRoot) {
      for (const k of Object.keys(value)) {
        if (["apiVersion", "kind", "metadata"].includes(k)) continue;
        if (!schema.properties || !(k in schema.properties)) {
          errors.push(`unknown field "${k}"`);
          delete value[k];
        }
      }
    }
    for (const [k, v] of Object.entries(value)) {
      if (isRoot && k === "metadata") continue;
      const sub = schema.properties?.[k] ?? (isObj(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (v === null && !(sub && sub.nullable)) {
        delete value[k];
        continue;
      }
      if (sub) {
        prune(sub, v, join(path, k), errors, false);
      } else if (!preserves(schema) && !isRoot) {
        errors.push(`unknown field "${join(path, k)}"`);
        delete value[k];
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) => prune(schema.items, v, `${path}[${i}]`, errors, false));
  }
}

// 2. defaults: a default applies when the field is absent and its parent object exists.
function applyDefaults(schema, value) {
  if (isObj(value) && schema.properties) {
    for (const [k, sub] of Object.entries(schema.properties)) {
      if (value[k] === undefined && sub.default !== undefined) value[k] = clone(sub.default);
      if (value[k] !== undefined) applyDefaults(sub, value[k]);
    }
  } else if (isObj(value) && isObj(schema.additionalProperties)) {
    for (const v of Object.values(value)) applyDefaults(schema.additionalProperties, v);
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((v) => applyDefaults(schema.items, v));
  }
}

const typeOf = (v) =>
  v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v === "number" ? "number" : typeof v;
const show = (v) => (isObj(v) ? '"object"' : Array.isArray(v) ? '"array"' : JSON.stringify(v));

// 3. OpenAPI v3 schema validation. Returns false when the value has the wrong type.
function validate(schema, value, path, errors) {
  const t = typeOf(value);
  if (intOrString(schema)) {
    if (t !== "integer" && t !== "string") {
      errors.push(`${path}: Invalid value: ${show(value)}: must be an integer or a string`);
      errors.typeErrors = (errors.typeErrors || 0) + 1;
      return false;
    }
  } else if (schema.type) {
    const ok = schema.type === t || (schema.type === "number" && t === "integer");
    if (!ok) {
      errors.push(`${path}: Invalid value: ${show(value)}: must be of type ${schema.type}`);
      errors.typeErrors = (errors.typeErrors || 0) + 1;
      return false;
    }
  }
  if (schema.enum && !schema.enum.includes(value)) {
    errors.push(`${path}: Unsupported value: ${show(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum)
      errors.push(`${path}: Invalid value: ${value}: should be greater than or equal to ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum)
      errors.push(`${path}: Invalid value: ${value}: should be less than or equal to ${schema.maximum}`);
    if (schema.format === "int32" && (value < -(2 ** 31) || value > 2 ** 31 - 1))
      errors.push(`${path}: Invalid value: ${value}: out of range for int32`);
  }
  if (typeof value === "string") {
    const len = [...value].length;
    if (schema.minLength !== undefined && len < schema.minLength)
      errors.push(`${path}: Invalid value: ${show(value)}: should be at least ${schema.minLength} chars long`);
    if (schema.maxLength !== undefined && len > schema.maxLength)
      errors.push(`${path}: Too long: may not be more than ${schema.maxLength} chars`);
    if (schema.pattern && !new RegExp(schema.pattern, "u").test(value))
      errors.push(`${path}: Invalid value: ${show(value)}: should match '${schema.pattern}'`);
  }
  if (isObj(value)) {
    for (const r of schema.required || []) {
      if (value[r] === undefined) errors.push(`${join(path, r)}: Required value`);
    }
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k] ?? (isObj(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (sub && !(path === "" && k === "metadata")) validate(sub, v, join(path, k), errors);
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      errors.push(`${path}: Invalid value: ${value.length}: should have at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      errors.push(`${path}: Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    const lt = schema["x-kubernetes-list-type"];
    if (lt === "set") {
      const seen = new Set();
      value.forEach((v, i) => {
        const key = JSON.stringify(v);
        if (seen.has(key)) errors.push(`${path}[${i}]: Duplicate value: ${key}`);
        seen.add(key);
      });
    } else if (lt === "map") {
      const keys = schema["x-kubernetes-list-map-keys"] || [];
      const seen = new Set();
      value.forEach((v, i) => {
        const key = JSON.stringify(keys.map((k) => v?.[k]));
        if (seen.has(key)) errors.push(`${path}[${i}]: Duplicate value: ${key}`);
        seen.add(key);
      });
    }
    if (schema.items) value.forEach((v, i) => validate(schema.items, v, `${path}[${i}]`, errors));
  }
  return true;
}

// CEL view of a value: only declared properties are visible (as on an API server);
// integers are CEL ints (bigint).
function toCel(schema, value, isRoot) {
  if (value === undefined || value === null) return null;
  if (Number.isInteger(value) && (schema?.type === "integer" || intOrString(schema || {}) || !schema)) return BigInt(value);
  if (Array.isArray(value)) return value.map((v) => toCel(schema?.items, v, false));
  if (isObj(value)) {
    const m = new Map();
    if (isRoot) {
      const meta = new Map();
      for (const k of ["name", "generateName"]) if (value.metadata?.[k] !== undefined) meta.set(k, value.metadata[k]);
      m.set("metadata", meta);
    }
    for (const [k, v] of Object.entries(value)) {
      if (isRoot && k === "metadata") continue;
      const sub = schema?.properties?.[k] ?? (isObj(schema?.additionalProperties) ? schema.additionalProperties : undefined);
      if (sub || !schema) m.set(k, toCel(sub, v, false));
    }
    return m;
  }
  return value;
}

// 4. CEL rules, deepest first; runs on values that passed the type checks.
function evalRules(schema, value, path, errors, isRoot) {
  if (isObj(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (isRoot && k === "metadata") continue;
      const sub = schema.properties?.[k] ?? (isObj(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (sub) evalRules(sub, v, join(path, k), errors, false);
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) => evalRules(schema.items, v, `${path}[${i}]`, errors, false));
  }
  for (const rule of schema["x-kubernetes-validations"] || []) {
    let ok;
    try {
      ok = cel.run(rule.rule, { self: toCel(schema, value, isRoot) });
    } catch (e) {
      errors.push(`${path || "<root>"}: Invalid value: rule "${rule.rule}" could not be evaluated: ${e.message}`);
      continue;
    }
    if (ok !== true) {
      const where = rule.fieldPath ? join(path, rule.fieldPath.replace(/^\./, "")) : path || "<root>";
      errors.push(`${where}: Invalid value: ${show(value)}: ${rule.message || `failed rule: ${rule.rule}`}`);
    }
  }
}

// Admits one object as `kubectl apply` (strict field validation) would on create.
// Returns { object: the stored object (pruned, defaulted), errors: [string] }.
export function admit(schema, input) {
  const obj = clone(input);
  const errors = [];
  prune(schema, obj, "", errors, true);
  applyDefaults(schema, obj);
  const schemaErrors = [];
  validate(schema, obj, "", schemaErrors);
  errors.push(...schemaErrors);
  // Like the API server, CEL rules see only well-typed values.
  if (!schemaErrors.typeErrors) evalRules(schema, obj, "", errors, true);
  return { object: obj, errors };
}

// What the API server stores for an object it accepts (prune without refusing, then default);
// used to compare objects "as stored".
export function stored(schema, input) {
  const obj = clone(input);
  prune(schema, obj, "", [], true);
  applyDefaults(schema, obj);
  return obj;
}

// Checks the CRD as the API server does on create. Returns [string] problems.
export function checkCrd(crd) {
  const problems = [];
  const { names, group, versions } = crd.spec;
  if (crd.metadata.name !== `${names.plural}.${group}`) problems.push(`metadata.name must be ${names.plural}.${group}`);
  if (versions.filter((v) => v.storage).length !== 1) problems.push("exactly one version must be the storage version");
  for (const v of versions) {
    const root = v.schema?.openAPIV3Schema;
    if (!root) {
      problems.push(`${v.name}: no openAPIV3Schema`);
      continue;
    }
    const walk = (s, path, underPreserve) => {
      if (!s.type && !intOrString(s) && !(preserves(s) && !s.properties)) problems.push(`${path}: structural schema needs a type`);
      if (s.properties && isObj(s.additionalProperties)) problems.push(`${path}: properties and additionalProperties are exclusive`);
      if (s.default !== undefined) {
        const errs = [];
        validate(s, clone(s.default), path, errs);
        problems.push(...errs.map((e) => `default of ${e}`));
      }
      for (const rule of s["x-kubernetes-validations"] || []) {
        try {
          cel.parse(rule.rule);
        } catch (e) {
          problems.push(`${path}: rule "${rule.rule}" does not compile: ${e.message}`);
        }
        if (rule.fieldPath) {
          let t = s;
          for (const part of rule.fieldPath.replace(/^\./, "").split(".")) t = t?.properties?.[part];
          if (!t) problems.push(`${path}: fieldPath ${rule.fieldPath} names no declared field`);
        }
      }
      for (const [k, sub] of Object.entries(s.properties || {})) walk(sub, join(path, k), underPreserve || preserves(s));
      if (isObj(s.additionalProperties)) walk(s.additionalProperties, `${path}[*]`, underPreserve);
      if (s.items) walk(s.items, `${path}[*]`, underPreserve);
      if (s.type === "array" && !s.items) problems.push(`${path}: array needs items`);
    };
    walk(root, "", false);
    for (const col of v.additionalPrinterColumns || []) {
      if (col.jsonPath === ".metadata.creationTimestamp") continue;
      let t = root;
      for (const part of col.jsonPath.replace(/^\./, "").split(".")) t = t?.properties?.[part];
      if (!t) problems.push(`printer column ${col.name}: ${col.jsonPath} names no declared field`);
      else if (col.type === "integer" && t.type !== "integer") problems.push(`printer column ${col.name}: ${col.jsonPath} is ${t.type}, not integer`);
    }
  }
  return problems;
}
