#!/usr/bin/env bash
# The whole job loop on one machine, with the example job (examples/): a dev chain, a
# local image registry, and four nodes — a researcher who posts the job, a provider who
# trains it, two validators who score it — each with its own embedded IPFS. Prints the
# job's progress, fetches and verifies the checkpoint, withdraws the provider's pay, and
# stops everything. State and logs stay in DEMO_DIR.
#
#   scripts/demo.sh BIN DEMO_DIR
#
# DEMO_PORT_BASE (default 18500) picks the loopback ports: the registry on BASE, the dev
# chain on BASE+45. Development keys only: the dev chain's accounts are public.
set -euo pipefail
bin=$(realpath "$1") dir=$2
base=${DEMO_PORT_BASE:-18500}
root=$(cd "$(dirname "$0")/.." && pwd)
digits=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -r "$digits" ] || die "$digits is missing: install python3-sklearn (make setup)"
docker version >/dev/null 2>&1 || die "no Docker engine answers: run make setup (as root)"
command -v docker-registry >/dev/null || die "docker-registry is missing: run make setup (as root)"

# Containers of the demo's nodes (the label is runtime/docker's LabelInstance). Removed
# before starting, for a demo that was killed too hard to clean up after itself, and on
# exit.
# A job's output folder is a loop-mounted filesystem while it runs (as root); a node
# stopped mid-job leaves it mounted.
remove_containers() {
	for n in provider validator1 validator2; do
		docker ps -aq --filter "label=io.gpunode.instance=demo-$n" | xargs -r docker rm -f >/dev/null 2>&1 || true
	done
	awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
dir=$(realpath -m "$dir")
remove_containers
rm -rf "$dir"
mkdir -p "$dir"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	remove_containers
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The dev chain and the registry.
"$bin" devchain --listen "127.0.0.1:$((base + 45))" --block-period 500ms --out "$dir/devchain.json" >"$dir/devchain.log" 2>&1 &
pids+=($!)
cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: 127.0.0.1:$base
EOF
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
	[ -s "$dir/devchain.json" ] && (exec 3<>"/dev/tcp/127.0.0.1/$base") 2>/dev/null && break
	sleep 0.5
done
[ -s "$dir/devchain.json" ] || die "the dev chain did not start; see $dir/devchain.log"
say "dev chain on 127.0.0.1:$((base + 45)), registry on 127.0.0.1:$base"

# 2. The example images: static Go binaries FROM scratch, pushed so they have digests.
image() { # name, extra files...
	local name=$1 ctx="$dir/build/$1"
	shift
	mkdir -p "$ctx"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$ctx/$name" "./examples/$name")
	cp "$root/examples/$name/Dockerfile" "$@" "$ctx/"
	docker build -q -t "127.0.0.1:$base/gpunode-example/$name:demo" "$ctx" >"$ctx/build.log" 2>&1 ||
		die "docker build $name: $(cat "$ctx/build.log")"
	docker push "127.0.0.1:$base/gpunode-example/$name:demo" >"$ctx/push.log" 2>&1 ||
		die "docker push $name: $(cat "$ctx/push.log")"
	docker image inspect --format '{{join .RepoDigests "\n"}}' "127.0.0.1:$base/gpunode-example/$name:demo" | grep "^127.0.0.1:$base/" | head -1
}
trainer=$(image trainer)
eval_image=$(image eval "$digits")
say "trainer image $trainer"
say "eval image    $eval_image"

# 3. Four nodes: dev account 1 researches, 2 provides, 3 and 4 validate.
account() { sed -n 's/.*"address": *"\(0x[0-9a-fA-F]*\)".*/\1/p' "$dir/devchain.json" | sed -n "$(($1 + 1))p"; }
node() { # name, account, bootstrap
	local name=$1 n="$dir/$1"
	mkdir -p "$n/data" "$n/datasets"
	printf 'dev\n' >"$n/pw"
	sed -n 's/.*"private_key": *"\(0x[0-9a-fA-F]*\)".*/\1/p' "$dir/devchain.json" | sed -n "$(($2 + 1))p" >"$n/key.hex"
	"$bin" wallet import --hex --keystore "$n/keystore" --password-file "$n/pw" "$n/key.hex" >/dev/null
	rm -f "$n/key.hex"
	cp "$digits" "$n/datasets/"
	cat >"$n/gpunode.toml" <<EOF
data_dir = "$n/data"
[api]
socket = "$n/api.sock"
[metrics]
listen = ""
[benchmark]
on_start = false
[runtime]
instance = "demo-$name"
dataset_allowlist = ["$n/datasets"]
[jobs]
outcome_poll = "1s"
[market]
deployment = "$dir/devchain.json"
keystore = "$n/keystore"
password_file = "$n/pw"
confirmations = 1
poll_interval = "500ms"
[p2p]
listen_addrs = ["/ip4/127.0.0.1/tcp/0"]
bootstrap_peers = [$3]
dht_mode = "server"
autonat = false
relay = false
hole_punching = false
EOF
	"$bin" daemon --config "$n/gpunode.toml" >"$n/daemon.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 120); do
		"$bin" status --api-socket "$n/api.sock" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "node $name did not start; see $n/daemon.log"
}
node researcher 1 ""
boot=$("$bin" peers --api-socket "$dir/researcher/api.sock" | sed -n 's#^ *\(/ip4/127.0.0.1/tcp/[0-9]*/p2p/.*\)#\1#p' | head -1)
[ -n "$boot" ] || die "the researcher's node has no loopback address; see $dir/researcher/daemon.log"
node provider 2 "\"$boot\""
node validator1 3 "\"$boot\""
node validator2 4 "\"$boot\""
r="--api-socket=$dir/researcher/api.sock" p="--api-socket=$dir/provider/api.sock"
say "nodes up: researcher $(account 1), provider $(account 2), validators $(account 3) $(account 4)"
for _ in $(seq 1 120); do
	grep -q "registered as provider" "$dir/provider/daemon.log" && break
	sleep 0.5
done

# 4. The researcher posts the job (its data set is a file beside the manifest, which the
# post adds to IPFS): 1 ETH reward, 0.01 ETH per validator.
mkdir -p "$dir/job"
cp "$digits" "$dir/job/"
sed -e "s#\${TRAINER_IMAGE}#$trainer#" -e "s#\${EVAL_IMAGE}#$eval_image#" "$root/examples/job.template.json" >"$dir/job/job.json"
out=""
for _ in $(seq 1 60); do # the researcher's IPFS comes up a little after its node
	out=$("$bin" job post "$dir/job/job.json" "$r" --validators "$(account 3),$(account 4)" \
		--reward 1000000000000000000 --validator-fee 10000000000000000 2>&1) && break
	sleep 1
done
echo "$out"
id=$(echo "$out" | sed -n 's/^posted job \([0-9]*\)$/\1/p')

# 5. Follow it on the provider, one line per step of its history, until it ends.
seen=0 last=""
for _ in $(seq 1 600); do
	hist=$("$bin" job status "$id" "$p" 2>/dev/null | sed -n '/^History:/,$p' | tail -n +2 | grep . || true)
	n=$(printf '%s' "$hist" | grep -c . || true)
	if [ "$n" -gt "$seen" ]; then
		printf '%s\n' "$hist" | tail -n +$((seen + 1)) | while read -r _ _ state note; do say "job $id: $state — $note"; done
		seen=$n
		last=$(printf '%s\n' "$hist" | tail -1 | awk '{print $3}')
	fi
	case "$last" in paid | failed | rejected | expired | declined | lost) break ;; esac
	sleep 0.3
done
"$bin" job status "$id" "$p"
[ "$last" = paid ] || die "the job ended $last; see $dir/*/daemon.log"
for v in validator1 validator2; do
	say "$v: $(sed -n 's/.*msg=evaluated .*value=\([0-9.]*\) score=\([0-9]*\) pass=\([a-z]*\).*/held-out accuracy \1, score \2, pass \3/p' "$dir/$v/daemon.log" | tail -1)"
done

# 6. The researcher fetches the checkpoint, checked against the hash on chain; the
# provider withdraws its pay.
"$bin" job fetch "$id" "$dir/checkpoint" "$r"
"$bin" wallet withdraw --api-socket "$dir/provider/api.sock"
say "checkpoint: $dir/checkpoint/model.json ($(wc -c <"$dir/checkpoint/model.json") bytes; metrics in $dir/checkpoint/metrics.json)"
say "logs: $dir/*/daemon.log; everything stops now"
