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
export GPUNODE_ATTACK_LOG=${GPUNODE_ATTACK_LOG:-$(mktemp -t gpunode-attacks.XXXXXX)}
: >"$GPUNODE_ATTACK_LOG"
status=0
go test -count=1 -timeout 28m ./... || status=$?
echo "== security"
bash scripts/attacks.sh "$GPUNODE_ATTACK_LOG" || status=1
exit $status
