#!/usr/bin/env bash
# Prints the security tally of a test run: the attacks that tests played against the
# node (internal/testenv.Attack) and how many were blocked, per area.
#
#   scripts/attacks.sh LOG
set -euo pipefail
log=$1
[ -s "$log" ] || { echo "security: no attacks recorded (run the tests with GPUNODE_ATTACK_LOG=$log)"; exit 0; }
awk -F'\t' '
	{ tried[$2]++; total++ }
	$1 == "blocked" { blocked[$2]++; ok++ }
	$1 == "LOST" { lost[++nl] = $2 ": " $3 " (" $4 ")" }
	END {
		printf "security: %d attacks tried, %d blocked\n", total, ok
		for (a in tried) printf "  %-10s %4d tried %4d blocked\n", a, tried[a], blocked[a]
		for (i = 1; i <= nl; i++) printf "  NOT BLOCKED: %s\n", lost[i]
		exit (ok == total ? 0 : 1)
	}' "$log"
