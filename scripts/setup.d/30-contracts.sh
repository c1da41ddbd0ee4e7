#!/usr/bin/env bash
# Installs the Solidity toolchain for the contracts: solc-js and OpenZeppelin, at the
# versions pinned in contracts/package-lock.json. Runs `npm ci` only when node_modules is
# missing or older than the lock file.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../.." && pwd)/contracts"
if ! command -v npm >/dev/null; then
	echo "npm missing: install Debian's nodejs and npm packages" >&2
	exit 1
fi
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ] && [ -f "$dir/node_modules/solc/package.json" ]; then
	exit 0
fi
echo "contracts: npm ci in $dir"
cd "$dir"
npm ci --no-audit --no-fund
