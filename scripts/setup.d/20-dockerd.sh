#!/usr/bin/env bash
# Starts dockerd in the background when no engine answers on the default socket.
# Under systemd the package's own unit does this; on machines without systemd as PID 1
# (containers, CI sandboxes) we start it ourselves.
# profiles: run test
set -euo pipefail
if [ "${GPUNODE_SETUP_PLAN:-0}" = 1 ]; then
	echo "start dockerd unless an engine answers on the default socket"
	exit 0
fi
if docker version >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	echo "no Docker engine answers on the default socket (docker version: $(docker version 2>&1 | tail -1))." >&2
	echo "start it as root (systemctl start docker), and add yourself to the docker group (usermod -aG docker $(id -un)), then log in again" >&2
	exit 1
fi
log=/var/log/gpunode-dockerd.log
echo "starting dockerd (log: $log)"
setsid nohup dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
	docker version >/dev/null 2>&1 && exit 0
	sleep 1
done
echo "dockerd did not start within 60s; see $log" >&2
tail -20 "$log" >&2
exit 1
