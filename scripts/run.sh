#!/usr/bin/env bash
# Starts a node on embedded defaults for trying gpunode out: state under RUN_DIR,
# the control socket beside it, metrics on 127.0.0.1:9835, and an in-process dev chain
# (`gpunode devchain`) on 127.0.0.1:8545 whose deployment file is RUN_DIR/devchain.json.
# The node's account is the dev chain's funded account 1, in RUN_DIR/keystore under the
# password "dev" — a development key, never for a real chain.
# GPUNODE_RUN_CHAIN, GPUNODE_RUN_METRICS and GPUNODE_RUN_P2P_PORT move the dev chain, the
# metrics endpoint and the p2p port (defaults above and 4011). It prints "node ready" once
# the node answers on its control socket, with the time since GPUNODE_RUN_START when set.
# Ctrl-C stops the node and the dev chain.
set -euo pipefail
bin=$1 dir=$2
chain_addr=${GPUNODE_RUN_CHAIN:-127.0.0.1:8545}
metrics_addr=${GPUNODE_RUN_METRICS:-127.0.0.1:9835}
p2p_port=${GPUNODE_RUN_P2P_PORT:-4011}
start=${GPUNODE_RUN_START:-$(date +%s)}
mkdir -p "$dir"
rm -f "$dir/devchain.json"
echo "gpunode: starting the dev chain on $chain_addr"
"$bin" devchain --listen "$chain_addr" --out "$dir/devchain.json" >"$dir/devchain.log" 2>&1 &
chain=$!
node=
cleanup() {
	[ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null
	kill "$chain" 2>/dev/null || true
	wait "$chain" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 120); do
	[ -s "$dir/devchain.json" ] && break
	kill -0 "$chain" 2>/dev/null || { echo "devchain failed; see $dir/devchain.log" >&2; tail -20 "$dir/devchain.log" >&2; exit 1; }
	sleep 0.5
done
[ -s "$dir/devchain.json" ] || { echo "devchain did not start within 60s; see $dir/devchain.log" >&2; exit 1; }
echo "gpunode: dev chain at http://$chain_addr (deployment: $dir/devchain.json)"
if [ ! -d "$dir/keystore" ] || [ -z "$(ls -A "$dir/keystore")" ]; then
	echo "gpunode: importing dev account 1 as the node's wallet"
	umask 077
	printf 'dev\n' >"$dir/dev-password"
	# Account 1's key from the deployment file (account 0 deploys the contracts).
	sed -n 's/.*"private_key": *"\(0x[0-9a-fA-F]*\)".*/\1/p' "$dir/devchain.json" | sed -n 2p >"$dir/dev-account.hex"
	GPUNODE_IMPORT_PASSWORD=dev "$bin" wallet import --hex --keystore "$dir/keystore" --password-file "$dir/dev-password" "$dir/dev-account.hex"
	rm -f "$dir/dev-account.hex"
fi
cat >"$dir/gpunode.toml" <<CONF
data_dir = "$dir"
[api]
socket = "$dir/api.sock"
[metrics]
listen = "$metrics_addr"
[market]
deployment = "$dir/devchain.json"
keystore = "$dir/keystore"
password_file = "$dir/dev-password"
[p2p]
listen_addrs = ["/ip4/0.0.0.0/tcp/$p2p_port", "/ip4/0.0.0.0/udp/$p2p_port/quic-v1", "/ip6/::/tcp/$p2p_port", "/ip6/::/udp/$p2p_port/quic-v1"]
CONF
echo "gpunode: starting the node (log below; data in $dir)"
"$bin" daemon --config "$dir/gpunode.toml" &
node=$!
until "$bin" status --json --api-socket "$dir/api.sock" 2>/dev/null | grep -q '"state": *"running"'; do
	kill -0 "$node" 2>/dev/null || { wait "$node" || exit $?; exit 1; }
	sleep 0.5
done
echo "gpunode: node ready in $(($(date +%s) - start))s; try: $bin status --api-socket $dir/api.sock"
wait "$node"
