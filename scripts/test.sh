#!/usr/bin/env bash
# Runs every test suite, the integration tier included (build tag integration). Expects
# scripts/setup.sh to have run (make test does that, and runs the unit tier before).
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
# The unit tier (make test-unit) ran first; this is every test, both tiers.
go test -tags integration -count=1 -timeout 28m ./... || status=$?
echo "== security"
bash scripts/attacks.sh "$GPUNODE_ATTACK_LOG" || status=1
exit $status
