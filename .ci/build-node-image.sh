#!/usr/bin/env bash
# Build (once, cached by tag) the node image the tests use: kindest/node's userland
# (Debian bookworm with bash, jq, iproute2, iptables, nftables, util-linux, procps,
# iputils-ping and a full python3) from a debootstrap rootfs imported into Docker.
# The tag carries a hash of this script, so a changed package list rebuilds it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$here/build-node-image.sh" | cut -c1-12)
tag="${NPPCTL_NODE_IMAGE:-nppctl-node:bookworm-$hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "node image $tag: cached"
  echo "$tag"
  exit 0
fi
root=$(mktemp -d /var/tmp/nppctl-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
pkgs=bash,jq,iproute2,iptables,nftables,util-linux,procps,iputils-ping,python3,ca-certificates,kmod
echo "node image $tag: debootstrap bookworm (minbase + $pkgs)" >&2
debootstrap --variant=minbase --include="$pkgs" bookworm "$root" >/var/tmp/nppctl-debootstrap.log 2>&1 || {
  tail -20 /var/tmp/nppctl-debootstrap.log >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'CMD ["sleep", "infinity"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
echo "$tag"
