#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need, only when something is missing.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config clang lld
  libexpected-dev nlohmann-json3-dev libsimdjson-dev libyaml-cpp-dev libfmt-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev librabbitmq-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev
  rabbitmq-server amqp-tools python3
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
