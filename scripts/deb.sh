#!/usr/bin/env bash
# Builds the gpunode Debian package into OUT_DIR with nfpm (pinned in tools/nfpm, built
# once into $GPUNODE_CACHE/bin). The package installs the binary in /usr/bin, the systemd
# unit, the sysusers file and a default config as a conffile (packaging/).
# Usage: deb.sh BINARY OUT_DIR; DEB_VERSION overrides the version (default: from git).
set -euo pipefail
bin=$1 out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${GPUNODE_CACHE:-$HOME/.cache/gpunode}
nfpm=$cache/bin/nfpm
want=v2.45.2
if ! [ -x "$nfpm" ] || ! go version -m "$nfpm" 2>/dev/null | grep -q "github.com/goreleaser/nfpm/v2[[:space:]]*$want"; then
	echo "deb: building nfpm $want into $nfpm (a minute or two the first time)"
	mkdir -p "$cache/bin"
	(cd "$here/tools/nfpm" && GOFLAGS=-mod=mod go build -trimpath -o "$nfpm.tmp" github.com/goreleaser/nfpm/v2/cmd/nfpm)
	mv "$nfpm.tmp" "$nfpm"
fi
if [ -z "${DEB_VERSION:-}" ]; then
	# Debian versions start with a digit: v1.2.3-4-gabc → 1.2.3+4+gabc; no tag → 0.0.0+gSHA.
	desc=$(git -C "$here" describe --tags --always --dirty 2>/dev/null || echo unknown)
	if [[ $desc =~ ^v?[0-9] ]]; then
		DEB_VERSION=$(echo "${desc#v}" | tr '-' '+')
	else
		DEB_VERSION="0.0.0+g$(echo "$desc" | tr '-' '+')"
	fi
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin" "$stage/gpunode"
sed 's|/usr/local/bin/gpunode|/usr/bin/gpunode|g' "$here/systemd/gpunode.service" >"$stage/gpunode.service"
install -m 0644 "$here/systemd/gpunode.sysusers" "$stage/gpunode.sysusers"
"$bin" config default >"$stage/gpunode.toml"
install -m 0755 "$here/packaging/postinst" "$here/packaging/prerm" "$here/packaging/postrm" "$stage/"
mkdir -p "$out"
out=$(cd "$out" && pwd)
(cd "$stage" && DEB_VERSION=$DEB_VERSION DEB_ARCH=$(go env GOARCH) \
	"$nfpm" package --config "$here/packaging/nfpm.yaml" --packager deb --target "$out" >/dev/null)
deb=$(ls -t "$out"/gpunode_"$DEB_VERSION"_*.deb | head -1)
echo "deb: $deb"
