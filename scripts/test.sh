#!/usr/bin/env bash
# Runs every test suite. Expects scripts/setup.sh to have run (make test does that).
set -euo pipefail
cd "$(dirname "$0")/.."
export GPUNODE_CACHE=${GPUNODE_CACHE:-$HOME/.cache/gpunode}
echo "== lint"
make --no-print-directory lint
echo "== go test"
go test -count=1 -timeout 28m ./...
