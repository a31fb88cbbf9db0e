#!/usr/bin/env bash
# Build (once, cached by tag) a test node image as kind builds kindest/node's userland:
#   - a Debian minbase rootfs (what the -slim images are) of SUITE: trixie (kind v0.32) or
#     bookworm (kind v0.21-v0.31), made with debootstrap and imported into Docker;
#   - plus exactly the packages kind's base image installs, without Recommends, then the apt lists
#     emptied (as kind's clean-install leaves them);
#   - /opt/cni/bin with host-local, loopback, ptp and portmap only (copied from the host's
#     containernetworking-plugins in /usr/lib/cni), /sbin/init -> systemd, ENV container=docker and
#     CMD /sbin/init (kind's entrypoint script is kind's own and not copied; `docker import` cannot
#     set kind's STOPSIGNAL SIGRTMIN+3).
# Nothing kindest/node lacks is added: trixie gives no python3 and no ping; bookworm gives python3
# 3.11 only because its nfs-common depends on it. The tag carries a hash of this script, so a
# changed package list rebuilds it. Usage: build-node-image.sh [trixie|bookworm]; prints the tag last.
set -euo pipefail
suite="${1:-trixie}"
case "$suite" in trixie|bookworm) ;; *) echo "suite must be trixie or bookworm, not $suite" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$here/build-node-image.sh" | cut -c1-12)
tag="nppctl-kindnode:$suite-$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "node image $tag: cached" >&2
  echo "$tag"
  exit 0
fi
# kind's list (images/base/Dockerfile, v0.32.0), in its order.
pkgs=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
pkgs+=,libseccomp2,pigz,fuse-overlayfs,nfs-common,open-iscsi,e2fsprogs
pkgs+=,bash,ca-certificates,curl,jq,procps
cni_src=/usr/lib/cni
for p in host-local loopback ptp portmap; do
  [[ -x $cni_src/$p ]] || { echo "$cni_src/$p missing: apt-get install containernetworking-plugins" >&2; exit 1; }
done
root=$(mktemp -d /var/tmp/nppctl-rootfs.XXXXXX)
log=/var/tmp/nppctl-debootstrap-$suite.log
trap 'rm -rf "$root"' EXIT
echo "node image $tag: debootstrap $suite (minbase + kind's package list, no Recommends)" >&2
# debootstrap resolves Depends and Pre-Depends only: no Recommends, as --no-install-recommends.
debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" >"$log" 2>&1 || {
  tail -20 "$log" >&2; exit 1; }
mkdir -p "$root/opt/cni/bin"
for p in host-local loopback ptp portmap; do install -m 0755 "$cni_src/$p" "$root/opt/cni/bin/$p"; done
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
mkdir -p "$root/var/lib/apt/lists/partial"
for bad in python3 ping; do  # the two tools a kind node lacks, whose absence the product must handle
  if [[ $suite == trixie ]] && chroot "$root" sh -c "command -v $bad" >/dev/null 2>&1; then
    echo "node image $tag: $bad ended up in the rootfs; kindest/node has none" >&2; exit 1
  fi
done
tar -C "$root" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/sbin/init"]' \
  --change "LABEL io.nppctl.test-node-image=$suite" \
  - "$tag" >/dev/null
echo "$tag"
