#!/usr/bin/env bash
# Builds kubo (the reference IPFS implementation) for the node/ipfs interop tests and
# benchmarks, into $GPUNODE_CACHE/bin/ipfs. Skipped when the cached binary already has
# the pinned version. kubo v0.39.0 needs the Go 1.25 toolchain (one dependency does not
# build on 1.26); GOTOOLCHAIN fetches it through the module proxy. Only the tests use it.
# profiles: test
set -euo pipefail
want=0.39.0
if [ "${GPUNODE_SETUP_PLAN:-0}" = 1 ]; then
	echo "build kubo v$want into \$GPUNODE_CACHE/bin/ipfs"
	exit 0
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${GPUNODE_CACHE:-$HOME/.cache/gpunode}
bin=$cache/bin/ipfs
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "ipfs version $want\$"; then
	exit 0
fi
mkdir -p "$cache/bin"
echo "building kubo v$want into $bin (several minutes the first time)"
cd "$here/tools/kubo"
[ -f go.sum ] || GOTOOLCHAIN=go1.25.4 GOFLAGS=-mod=mod go mod tidy
GOTOOLCHAIN=go1.25.4 GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" github.com/ipfs/kubo/cmd/ipfs
mv "$bin.tmp" "$bin"
"$bin" version
