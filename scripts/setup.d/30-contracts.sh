#!/usr/bin/env bash
# Installs the Solidity toolchain for the contracts: solc-js and OpenZeppelin, at the
# versions pinned in contracts/package-lock.json. Runs `npm ci` only when node_modules is
# missing or older than the lock file. Running a node needs none of this: the compiled
# contracts and their Go bindings are committed. Installs Debian's nodejs and npm where no
# npm is on the PATH (a plain Debian 12 has none).
# profiles: test
set -euo pipefail
dir="$(cd "$(dirname "$0")/../.." && pwd)/contracts"
if [ "${GPUNODE_SETUP_PLAN:-0}" = 1 ]; then
	echo "install nodejs and npm unless npm is on the PATH; npm ci in contracts/ (solc-js, OpenZeppelin)"
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "installing Debian's nodejs and npm (the contracts step needs npm)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends nodejs npm
fi
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ] && [ -f "$dir/node_modules/solc/package.json" ]; then
	exit 0
fi
echo "contracts: npm ci in $dir"
cd "$dir"
npm ci --no-audit --no-fund
