#!/usr/bin/env bash
# Debian packages: container engine and local registry, Prometheus (server and promtool),
# PyTorch for CPU runs of the benchmark harness, scikit-learn for the digits data set of the
# example job, OpenBLAS for the CPU benchmark backend,
# systemd-analyze for the unit check.
set -euo pipefail
pkgs=(docker.io docker-registry prometheus python3-torch python3-sklearn libopenblas-dev pkg-config
	iproute2 systemd ca-certificates git make gcc)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
