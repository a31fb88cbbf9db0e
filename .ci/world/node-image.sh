#!/usr/bin/env bash
# kindest/node:$K8S_VERSION for the tests, assembled as kind v0.33.0 assembles it (called by
# .ci/kind-world.sh, which exports W and the versions), offline:
#   1. base, as kind's images/base/Dockerfile: the trixie test image of .ci/build-node-image.sh
#      (Debian trixie minbase plus exactly kind's package list, no Recommends, apt lists emptied)
#      plus kind's own files from its module source (images/base/files: entrypoint, clean-install,
#      /kind/bin, containerd config, crictl.yaml, sysctl.d, kubelet and containerd units), the same
#      systemd clean-up, enabled units and masked binfmt, containerd/ctr/shim, runc, crictl, the CNI
#      plugins it builds (host-local, loopback, ptp, portmap), /etc/containerd/cri-base.json from
#      `ctr oci spec` with kind's createContainer hook and without rlimits;
#   2. then as `kind build node-image`: kubeadm, kubelet, kubectl in /usr/bin, /kind/version, the
#      control-plane images imported into containerd's k8s.io namespace the way kind imports them
#      (pinned, --no-unpack --digests), in a container of the base running containerd; committed with
#      kind's entrypoint, and its default-cni manifest /kind/manifests/default-cni.yaml (kindnet's
#      DaemonSet, taken at build time from the constant kind's node-image builder writes, in its module
#      source), so `kind create` with the default CNI kept applies it as on kindest/node. The kindnetd
#      image itself is missing (its module is not served here): kindnet's pods cannot start, and
#      `nppctl up --keep-kindnet` says so. The default-storage manifest (local-path-provisioner) is not
#      written: kind falls back to its host-path StorageClass (one warning line).
# One adaptation to this test VM, not to users' machines: containerd's restrict_oom_score_adj = true
# (this VM's root lacks CAP_SYS_RESOURCE, so lowering a container's oom_score_adj below the node's
# fails; kind sets the same for rootless nodes). Prints the tag last.
set -euo pipefail
: "${W:?run from .ci/kind-world.sh}"
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '== world: %s (%ss)\n' "$*" "$SECONDS" >&2; }
base_test_image=$(bash "$here/../build-node-image.sh" trixie | tail -n 1)
kind_src=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
key=$( (cat "$here/node-image.sh" "$W/images/control-plane.list"; docker image inspect -f '{{.Id}}' "$base_test_image";
        env | grep -E '_VERSION=' | sort) | sha256sum | cut -c1-12)
tag="kindest/node:$K8S_VERSION"
if [[ $(docker image inspect -f '{{index .Config.Labels "io.nppctl.world"}}' "$tag" 2>/dev/null) == "$key" ]]; then
  say "node image $tag: cached"
  echo "$tag"; exit 0
fi
say "node image $tag: assembling (base $base_test_image)"
ctx=$(mktemp -d /var/tmp/nppctl-node-context.XXXXXX)
box=""
cleanup() { rm -rf "$ctx"; [[ -n $box ]] && docker rm -f -v "$box" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# kind's files with kind's modes: scripts and folders 0755, the rest 0644 (the module cache has 0444).
cp -r "$kind_src/images/base/files" "$ctx/files"
chmod -R u+w "$ctx/files"
find "$ctx/files" -type d -exec chmod 0755 {} +
find "$ctx/files" -type f -exec chmod 0644 {} +
chmod 0755 "$ctx"/files/usr/local/bin/* "$ctx"/files/kind/bin/*
sed -i 's/^\(\s*restrict_oom_score_adj = \)false/\1true/' "$ctx/files/etc/containerd/config.toml"
# kind's default CNI manifest: the Go raw string defaultCNIManifest of pkg/build/nodeimage/const_cni.go,
# with its one concatenated constant (kindnetdImage) put in, as `kind build node-image` writes it.
cni_go="$kind_src/pkg/build/nodeimage/const_cni.go"
kindnetd=$(sed -n 's/^const kindnetdImage = "\(.*\)"$/\1/p' "$cni_go")
mkdir -p "$ctx/files/kind/manifests"
awk -v img="$kindnetd" '/^const defaultCNIManifest = `$/ {on=1; next} on && /^`$/ {exit}
  on {gsub(/` \+ kindnetdImage \+ `/, img); print}' "$cni_go" >"$ctx/files/kind/manifests/default-cni.yaml"
[[ -n $kindnetd ]] && grep -q "image: $kindnetd" "$ctx/files/kind/manifests/default-cni.yaml"
grep -q '^kind: DaemonSet' "$ctx/files/kind/manifests/default-cni.yaml"
grep -q 'restrict_oom_score_adj = true' "$ctx/files/etc/containerd/config.toml"
mkdir -p "$ctx/bin" "$ctx/cni" "$ctx/kube"
b="$W/bin"
install -m 0755 "$b/containerd@$CONTAINERD_VERSION"/{containerd,ctr,containerd-shim-runc-v2} "$b/crictl@$CRICTL_VERSION/crictl" "$ctx/bin/"
install -m 0755 "$b/runc@$RUNC_VERSION/runc" "$ctx/runc"
install -m 0755 "$b/cni-plugins@$CNI_VERSION"/{host-local,loopback,ptp,portmap} "$ctx/cni/"
install -m 0755 "$b/kubernetes@$K8S_VERSION"/{kubeadm,kubelet,kubectl} "$ctx/kube/"
cat >"$ctx/Dockerfile" <<EOF
FROM $base_test_image
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY bin/ /usr/local/bin/
COPY runc /usr/local/sbin/runc
RUN rm -rf /opt/cni/bin && mkdir -p /opt/cni/bin
COPY cni/ /opt/cni/bin/
COPY kube/ /usr/bin/
RUN find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && ln -sf /usr/lib/systemd/systemd /sbin/init \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && containerd --version && runc --version && crictl --version && kubelet --version \\
 && printf '%s' "$K8S_VERSION" > /kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
docker build -q -t "nppctl-world/node-base:$key" "$ctx" >/dev/null

# As `kind build node-image`: a container of the base (seccomp unconfined, no other privilege) runs
# containerd; each image archive goes in with ctr, pinned and not unpacked.
box="nppctl-world-node-build-$key"
docker rm -f -v "$box" >/dev/null 2>&1 || true
docker run -d --name "$box" --entrypoint sleep --security-opt seccomp=unconfined \
  "nppctl-world/node-base:$key" infinity >/dev/null
docker exec "$box" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
for i in $(seq 30); do docker exec "$box" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
docker exec "$box" ctr info >/dev/null
while read -r archive; do
  docker exec -i "$box" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests - <"$archive" >&2
done <"$W/images/control-plane.list"
docker exec "$box" ctr --namespace=k8s.io images list -q >&2
docker exec "$box" pkill containerd
for i in $(seq 20); do docker exec "$box" pgrep -x containerd >/dev/null 2>&1 || break; sleep 0.5; done
docker exec "$box" rm -f /var/log/containerd-build.log
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
  --change "LABEL io.nppctl.world=$key" \
  "$box" "$tag" >/dev/null
say "node image $tag: built"
echo "$tag"
