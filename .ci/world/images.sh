#!/usr/bin/env bash
# Images of the kind world (called by .ci/kind-world.sh, which exports W and the versions):
#   - the control-plane images kubeadm asks for, each as registry.k8s.io names it and holding the
#     binary where the official image has it (kube-apiserver, kube-controller-manager,
#     kube-scheduler, kube-proxy under /usr/local/bin; etcd; /coredns; /pause). kube-proxy runs
#     iptables, so its image is a Debian minbase with iptables and conntrack, as distroless-iptables
#     carries them; the others are the static binary alone, with /etc/passwd, /etc/group and CA
#     certificates. Saved as docker-archive tars in $W/images/ for the node image to import.
#   - pod images: busybox (Debian trixie's busybox-static, every applet linked) and nginx (Debian minbase
#     with Debian's nginx), tagged for the registry as library/busybox and library/nginx.
#   - the registry's own image: crane's `registry serve`, storing blobs on disk.
# A tag's suffix is a hash of this script and the versions, so a change rebuilds.
set -euo pipefail
: "${W:?run from .ci/kind-world.sh}"
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '== world: %s (%ss)\n' "$*" "$SECONDS" >&2; }
key=$(cat "$here/images.sh" "$here/skeleton.sh" <(env | grep -E '_VERSION=' | sort) | sha256sum | cut -c1-12)
mkdir -p "$W/images" "$W/debs"
kbin="$W/bin/kubernetes@$K8S_VERSION"

have() { docker image inspect "$1" >/dev/null 2>&1; }

# shellcheck source=.ci/world/skeleton.sh
. "$here/skeleton.sh"

# import TAG DIR [--change ...]: DIR as a one-layer image.
import() {
  local tag=$1 dir=$2; shift 2
  tar -C "$dir" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" - "$tag" >/dev/null
}

# minbase SUITE DIR PACKAGES: a Debian minbase rootfs with PACKAGES, apt lists emptied.
minbase() {
  mkdir -p "$W/debs/$(basename "$2")"  # a cache each: two debootstraps run at once
  debootstrap --variant=minbase --cache-dir="$W/debs/$(basename "$2")" --include="$3" "$1" "$2" \
    >"$W/logs/debootstrap-$(basename "$2").log" 2>&1 || { tail -20 "$W/logs/debootstrap-$(basename "$2").log" >&2; return 1; }
  rm -rf "$2"/var/cache/apt/archives/*.deb "$2"/var/lib/apt/lists/* "$2"/var/log/* "$2"/tmp/*
}

static_image() {  # TAG SOURCE DEST ENTRYPOINT-JSON
  local tag=$1 src=$2 dest=$3 ep=$4
  have "$tag" && return 0
  say "image $tag"
  local d; d=$(mktemp -d)
  skeleton "$d"
  install -D -m 0755 "$src" "$d$dest"
  import "$tag" "$d" --change "ENTRYPOINT $ep" --change "LABEL io.nppctl.world=$key"
  rm -rf "$d"
}

tmp=$(mktemp -d /var/tmp/nppctl-world-images.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static_image "registry.k8s.io/$c:$K8S_VERSION" "$kbin/$c" "/usr/local/bin/$c" "[\"/usr/local/bin/$c\"]"
done
static_image "registry.k8s.io/etcd:${ETCD_VERSION#v}-0" "$W/bin/etcd@$ETCD_VERSION/etcd" /usr/local/bin/etcd '["/usr/local/bin/etcd"]'
static_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$W/bin/coredns@$COREDNS_VERSION/coredns" /coredns '["/coredns"]'
static_image "registry.k8s.io/pause:$PAUSE_VERSION" "$W/bin/pause@$K8S_VERSION/pause" /pause '["/pause"]'
static_image "nppctl-registry:crane-$CRANE_VERSION" "$W/bin/crane@$CRANE_VERSION/crane" /usr/local/bin/crane \
  '["/usr/local/bin/crane", "registry", "serve", "--address", ":5000", "--disk", "/var/lib/registry"]'

pids=()
proxy="registry.k8s.io/kube-proxy:$K8S_VERSION"
if ! have "$proxy"; then
  ( say "image $proxy (Debian trixie minbase + iptables, conntrack)"
    minbase trixie "$tmp/kube-proxy" iptables,conntrack,kmod
    install -m 0755 "$kbin/kube-proxy" "$tmp/kube-proxy/usr/local/bin/kube-proxy"
    import "$proxy" "$tmp/kube-proxy" --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]' \
      --change "LABEL io.nppctl.world=$key" ) & pids+=($!)
fi
nginx="nppctl-world/nginx:$key"
if ! have "$nginx"; then
  ( say "image $nginx (Debian trixie minbase + nginx)"
    minbase trixie "$tmp/nginx" nginx
    # as the official image: logs to the container's output, the server in the foreground
    mkdir -p "$tmp/nginx/var/log/nginx"
    ln -sf /dev/stdout "$tmp/nginx/var/log/nginx/access.log"
    ln -sf /dev/stderr "$tmp/nginx/var/log/nginx/error.log"
    import "$nginx" "$tmp/nginx" --change 'CMD ["nginx", "-g", "daemon off;"]' --change 'EXPOSE 80' \
      --change "LABEL io.nppctl.world=$key" ) & pids+=($!)
fi
busybox="nppctl-world/busybox:$key"
if ! have "$busybox"; then
  ( say "image $busybox (Debian trixie's busybox-static, every applet linked)"
    # trixie's 1.37: bookworm's 1.35 build segfaults in `wget -T` (the timeout nppctl check uses)
    minbase trixie "$tmp/busybox-src" busybox-static
    d="$tmp/busybox"
    skeleton "$d"; mkdir -p "$d/bin" "$d/root" "$d/var/www"
    install -m 0755 "$tmp/busybox-src/bin/busybox" "$d/bin/busybox"
    for a in $("$d/bin/busybox" --list); do [[ $a == busybox ]] || ln -sf busybox "$d/bin/$a"; done
    import "$busybox" "$d" --change 'CMD ["sh"]' --change "LABEL io.nppctl.world=$key" ) & pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done

# The control-plane images as archives, for the node image to import into containerd; their paths in
# $W/images/control-plane.list.
: >"$W/images/control-plane.list"
for ref in "registry.k8s.io/kube-apiserver:$K8S_VERSION" "registry.k8s.io/kube-controller-manager:$K8S_VERSION" \
    "registry.k8s.io/kube-scheduler:$K8S_VERSION" "$proxy" "registry.k8s.io/etcd:${ETCD_VERSION#v}-0" \
    "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "registry.k8s.io/pause:$PAUSE_VERSION"; do
  id=$(docker image inspect -f '{{.Id}}' "$ref" | cut -c8-19)
  out="$W/images/$(echo "$ref" | tr '/:' '__')-$id.tar"
  [[ -f $out ]] || { docker save -o "$out.tmp" "$ref" && mv "$out.tmp" "$out"; }
  echo "$out" >>"$W/images/control-plane.list"
done
docker tag "$busybox" nppctl-world/busybox:latest
docker tag "$nginx" nppctl-world/nginx:latest
