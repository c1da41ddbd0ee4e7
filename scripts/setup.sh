#!/usr/bin/env bash
# Installs and starts everything gpunode's build, run and tests need on Debian 12.
# Idempotent: every step checks before it acts. Runs as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "setup: run as root (the steps install Debian packages and start dockerd)" >&2
	exit 1
fi
for step in "$here"/setup.d/*.sh; do
	echo "setup: $(basename "$step")"
	bash "$step"
done
