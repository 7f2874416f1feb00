// Runs the pinned helm binary with private, throw-away home directories.
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { helmBin, repoRoot } from "./tools.mjs";
import { parseDocs } from "./k8s.mjs";

const home = mkdtempSync(path.join(os.tmpdir(), "asya-helm-"));
const env = { ...process.env, HELM_CACHE_HOME: home, HELM_CONFIG_HOME: home, HELM_DATA_HOME: home };

export const chartDir = (name) => path.join(repoRoot, "deploy/helm-charts", name);

// helm ARGS... -> {code, stdout, stderr}
export function helm(...args) {
  const r = spawnSync(helmBin, args, { env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// helm template of a chart; returns the objects (throws with helm's message on failure).
export function template(chart, args = [], { includeCrds = false } = {}) {
  const r = helm("template", "t", chartDir(chart), "--namespace", "asya-test", ...(includeCrds ? ["--include-crds"] : []), ...args);
  if (r.code !== 0) throw new Error(`helm template ${chart} ${args.join(" ")}: ${r.stderr}`);
  return parseDocs(r.stdout);
}
