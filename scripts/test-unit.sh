#!/usr/bin/env bash
# Runs the unit tier: every test that needs no external component (no dockerd,
# registry, kubo, Prometheus, chromium, network namespaces, root or compiled harness
# images). It skips nothing: the tests that need such a component, and the few that
# take tens of seconds, are in files built only with the `integration` tag, which
# scripts/test.sh passes. Budget: under a minute on a 2-core machine with a warm build
# cache; the time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Packages with test files in this tier (the others hold only integration tests).
mapfile -t pkgs < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...)
# A few tests need no external component but take ten seconds or more each on two
# cores (whole dev-chain lifecycles, many libp2p hosts): the unit tier leaves them out
# by name to stay under a minute, and make test's integration tier runs them.
slow=(
	TestV2SealedJobEndToEnd             # node/provider: a sealed job through a dev chain
	TestV2Lifecycle                     # contracts, node/market: every JobMarketV2 path
	TestV2NoFundsStuck                  # contracts: every timeout exit of JobMarketV2
	TestConcurrentAttestations          # node/market: attestations racing on a dev chain
	TestInvalidRecordsRejectedAndScored # node/p2p: a cluster learning and scoring records
	TestChainJobPaid                    # node: a job through the dev chain to payment
	TestValidatorDeclinesDuty           # node: a validator duty through the dev chain
)
skip=$(IFS='|'; echo "^(${slow[*]})\$")
# Most of these tests wait on timers and sockets, not the CPU: four packages at once.
status=0
go test -count=1 -p 4 -timeout 5m -skip "$skip" "$@" "${pkgs[@]}" || status=$?
# The machine's load says how far the time is from the budget's (an idle 2-core machine).
echo "unit tier: ${#pkgs[@]} packages in $(($(date +%s) - start))s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit $status
