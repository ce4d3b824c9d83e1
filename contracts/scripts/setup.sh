#!/usr/bin/env bash
# Install the offline contracts toolchain and build: pinned forge, anvil and solc-js from npm
# into contracts/node_modules (versions from package-lock.json), check the solc wrapper forge
# uses (contracts/scripts/solc), then `forge build`. Safe to run again: it reinstalls only
# when package-lock.json changed since the last install.
set -euo pipefail
contracts="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$contracts"

stamp="node_modules/.pox-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -x node_modules/.bin/forge || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  # Not `npm ci`: the registry here lacks some other platforms' optional binary packages, which
  # npm ci insists on seeing in the lock file. `install --no-save` still installs the locked
  # versions and never rewrites the lock. Postinstall scripts only print hints: skip them.
  npm install --no-audit --no-fund --ignore-scripts --no-save
  echo "$want" >"$stamp"
fi

chmod +x scripts/solc
version="$(scripts/solc --version | sed -n 's/^Version: //p')"
pinned="$(node -p "require('./node_modules/solc/package.json').version")"
if [[ "$version" != "$pinned+"* ]]; then
  echo "setup.sh: solc wrapper reports '$version', expected solc-js $pinned" >&2
  exit 1
fi

node_modules/.bin/forge --version | head -1
node_modules/.bin/anvil --version | head -1
echo "solc $version (solc-js behind scripts/solc)"
node_modules/.bin/forge build
