#!/usr/bin/env bash
# Starts a node on embedded defaults for trying gpunode out: state under RUN_DIR,
# the control socket beside it, metrics on 127.0.0.1:9835, and an in-process dev chain
# (`gpunode devchain`) on 127.0.0.1:8545 whose deployment file is RUN_DIR/devchain.json.
# The node's account is the dev chain's funded account 1, in RUN_DIR/keystore under the
# password "dev" — a development key, never for a real chain.
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
if [ ! -d "$dir/keystore" ] || [ -z "$(ls -A "$dir/keystore")" ]; then
	umask 077
	printf 'dev\n' >"$dir/dev-password"
	# Account 1's key from the deployment file (account 0 deploys the contracts).
	sed -n 's/.*"private_key": *"\(0x[0-9a-fA-F]*\)".*/\1/p' "$dir/devchain.json" | sed -n 2p >"$dir/dev-account.hex"
	GPUNODE_IMPORT_PASSWORD=dev "$bin" wallet import --hex --keystore "$dir/keystore" --password-file "$dir/dev-password" "$dir/dev-account.hex"
	rm -f "$dir/dev-account.hex"
fi
cat >"$dir/gpunode.toml" <<EOF
data_dir = "$dir"
[api]
socket = "$dir/api.sock"
[market]
deployment = "$dir/devchain.json"
keystore = "$dir/keystore"
password_file = "$dir/dev-password"
EOF
"$bin" daemon --config "$dir/gpunode.toml"
