#!/usr/bin/env bash
# Debian packages. Running a node needs a container engine, a C compiler for cgo (go-nvml)
# and OpenBLAS for the CPU benchmark backend. The tests also use the local registry,
# Prometheus (server and promtool), PyTorch for CPU runs of the benchmark harness,
# scikit-learn for the example job's digits data set, iproute2, systemd-analyze, and
# chromium for the dashboard's browser test.
# profiles: run test
set -euo pipefail
pkgs=(docker.io ca-certificates git make gcc libopenblas0)
if [ "$GPUNODE_SETUP_PROFILE" = test ]; then
	pkgs+=(docker-registry prometheus python3-torch python3-sklearn libopenblas-dev pkg-config iproute2 systemd chromium fonts-dejavu-core)
fi
if [ "${GPUNODE_SETUP_PLAN:-0}" = 1 ]; then
	echo "install Debian packages: ${pkgs[*]}"
	exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages: ${missing[*]}; install them as root (sudo make setup, or sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
