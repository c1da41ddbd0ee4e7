#!/usr/bin/env bash
# Starts a node on embedded defaults for trying gpunode out: state under RUN_DIR,
# the control socket beside it, metrics on 127.0.0.1:9400, and an in-process dev chain
# (`gpunode devchain`) on 127.0.0.1:8545 whose deployment file is RUN_DIR/devchain.json.
set -euo pipefail
bin=$1 dir=$2
mkdir -p "$dir"
rm -f "$dir/devchain.json"
"$bin" devchain --listen 127.0.0.1:8545 --out "$dir/devchain.json" >"$dir/devchain.log" 2>&1 &
chain=$!
trap 'kill "$chain" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
	[ -s "$dir/devchain.json" ] && break
	kill -0 "$chain" 2>/dev/null || { echo "devchain failed; see $dir/devchain.log" >&2; tail -20 "$dir/devchain.log" >&2; exit 1; }
	sleep 0.5
done
[ -s "$dir/devchain.json" ] || { echo "devchain did not start within 60s; see $dir/devchain.log" >&2; exit 1; }
echo "gpunode: dev chain at http://127.0.0.1:8545 (deployment: $dir/devchain.json)"
echo "gpunode: data in $dir; try: $bin status --api-socket $dir/api.sock"
"$bin" daemon --data-dir "$dir" --api-socket "$dir/api.sock" --metrics-listen 127.0.0.1:9400
