// Locates the pinned deploy test tools (installed by tools/install-deps.sh from
// tests/deploy/package-lock.json) and loads their modules.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const toolsDir = process.env.ASYA_DEPLOY_TOOLS || path.join(repoRoot, "build/deploy-tools");
export const helmBin = path.join(toolsDir, "bin/helm");

if (!existsSync(path.join(toolsDir, "node_modules")) || !existsSync(helmBin)) {
  console.error(
    `deploy tests: tools missing in ${toolsDir}; run tools/install-deps.sh (or set ASYA_DEPLOY_TOOLS)`,
  );
  process.exit(1);
}

export const requireTool = createRequire(path.join(toolsDir, "package.json"));
export const YAML = requireTool("yaml");
export const cel = requireTool("@bufbuild/cel");
