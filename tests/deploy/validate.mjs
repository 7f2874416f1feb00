// usage: node tests/deploy/validate.mjs FILE.yaml... (multi-document; exit 1 on any problem)
// Kubernetes/KEDA objects against the official schemas, AsyncActors against our CRD (schema and
// CEL rules, strict field validation), CRDs as an API server checks them on create.
import { readFileSync } from "node:fs";
import { parseDocs, validateObject, describe } from "./lib/k8s.mjs";

let bad = 0;
for (const file of process.argv.slice(2)) {
  for (const obj of parseDocs(readFileSync(file, "utf8"))) {
    const problems = validateObject(obj);
    if (problems.length) {
      bad++;
      console.log(`FAIL ${file}: ${describe(obj)}\n  ${problems.join("\n  ")}`);
    } else {
      console.log(`OK   ${file}: ${describe(obj)}`);
    }
  }
}
process.exit(bad ? 1 : 0);
