#!/usr/bin/env bash
# Starts a node on embedded defaults for trying gpunode out: state under RUN_DIR,
# the control socket beside it, metrics on 127.0.0.1:9400.
set -euo pipefail
bin=$1 dir=$2
mkdir -p "$dir"
echo "gpunode: data in $dir; try: $bin status --api-socket $dir/api.sock"
exec "$bin" daemon --data-dir "$dir" --api-socket "$dir/api.sock" --metrics-listen 127.0.0.1:9400
