#!/usr/bin/env bash
# Runs every test suite. Expects scripts/setup.sh to have run (make test does that).
set -euo pipefail
cd "$(dirname "$0")/.."
export GPUNODE_CACHE=${GPUNODE_CACHE:-$HOME/.cache/gpunode}
echo "== lint"
make --no-print-directory lint
echo "== gpu suite (compiled, not run: it needs a GPU rig, see make gpu-check)"
go vet -tags gpu ./runtime/gpu/rigcheck/
go test -tags gpu -count=1 -run '^$' ./runtime/gpu/rigcheck/
echo "== go test"
go test -count=1 -timeout 28m ./...
