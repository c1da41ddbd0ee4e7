#!/usr/bin/env bash
# Installs and starts what gpunode needs on Debian 12, for one profile:
#   run    what running a node needs: a Go build and a Docker engine (`make run`)
#   test   everything the test suites use as well: a local registry, Prometheus, PyTorch,
#          scikit-learn, systemd-analyze, the Solidity toolchain, kubo (`make setup`,
#          `make test`)
# Each step in setup.d/ names the profiles it serves on its "# profiles:" line. Steps are
# idempotent: each checks before it acts, so a step with nothing to do needs no root
# (a member of the docker group runs `make run` once the packages are there).
# With --plan, every step of the profile says what it would install, start or build on a
# machine that has none of it, and nothing is done.
# Usage: setup.sh [run|test] [--plan]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
profile=test plan=0
for arg in "$@"; do
	case $arg in
	run | test) profile=$arg ;;
	--plan) plan=1 ;;
	*)
		echo "usage: setup.sh [run|test] [--plan]" >&2
		exit 2
		;;
	esac
done
export GPUNODE_SETUP_PROFILE=$profile GPUNODE_SETUP_PLAN=$plan
for step in "$here"/setup.d/*.sh; do
	profiles=$(sed -n 's/^# profiles: *//p' "$step" | head -1)
	case " $profiles " in
	*" $profile "*) ;;
	*) continue ;;
	esac
	name=$(basename "$step")
	if [ "$plan" = 1 ]; then
		bash "$step" | sed "s/^/$name: /"
		continue
	fi
	echo "setup ($profile): $name"
	start=$SECONDS
	bash "$step"
	if [ $((SECONDS - start)) -ge 5 ]; then
		echo "setup ($profile): $name took $((SECONDS - start))s"
	fi
done
