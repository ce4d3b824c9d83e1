#!/usr/bin/env bash
# Install the IPFS node the test suite starts (tests/storage/ipfs_daemon.py): js-ipfs 0.66.1,
# whose daemon serves Kubo's RPC API (/api/v0), under Node 22 from npm (`node@22`), into
# scripts/ipfs-node/node_modules (versions from package-lock.json). js-ipfs is unmaintained and
# its dependency ranges drifted: a newer @libp2p/tcp (multiaddr 12) cannot read the multiaddr 11
# addresses libp2p 0.42 hands it, so its daemon died with "no valid addresses were provided for
# transports". package.json pins the transports and mafmt's multiaddr back (npm `overrides`).
# Safe to run again: it reinstalls only when package-lock.json changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
stamp="node_modules/.pox-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -x node_modules/.bin/node || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm install --no-audit --no-fund --ignore-scripts --no-save
  echo "$want" >"$stamp"
fi
echo "js-ipfs $(node_modules/.bin/node -p "require('./node_modules/ipfs/package.json').version") under node $(node_modules/.bin/node --version)"
