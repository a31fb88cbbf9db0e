#!/usr/bin/env bash
# The kind world of the tests, built offline from Go modules and Debian packages, cached outside the
# clone (NPPCTL_WORLD, default /var/cache/nppctl-world) and keyed by versions:
#   - kind v0.33.0 (go install, as kind's own install instructions do);
#   - Kubernetes v1.37.0 (kind v0.33.0's default: pkg/apis/config/defaults/image.go): kubeadm, kubelet,
#     kubectl, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, from a wrapper
#     module that requires k8s.io/kubernetes with `replace` lines for its staging modules;
#   - from the same module and version stamp, Kubernetes' e2e tools: e2e.test, ginkgo (the version
#     kubernetes requires), agnhost and the conformance image's go-runner;
#   - what kind v0.33.0's images/base/Dockerfile puts in a node: containerd v2.3.4, runc v1.4.3,
#     crictl v1.36.0, CNI plugins v1.9.1 (host-local, loopback, ptp, portmap);
#   - the images kubeadm v1.37.0 asks for (etcd 3.7.0-0, CoreDNS v1.14.6) and the pause image kind's
#     containerd config names (3.10), each a Docker image holding its static binary;
#   - the node image kindest/node:v1.37.0, assembled as kind's images/base and `kind build node-image`
#     assemble it (.ci/world/node-image.sh; `kind build node-image` itself fetches etcd, CoreDNS,
#     pause, kindnetd and local-path images over the network, which this machine cannot do);
#   - the e2e images (.ci/world/e2e-images.sh), under the names Kubernetes v1.37.0's e2e tests use:
#     registry.k8s.io/conformance:v1.37.0 (as test/conformance/image builds it) and, for the
#     [sig-network] conformance tests and the Networking Granular Checks, e2e-test-images/agnhost,
#     glibc-dns-testing, nginx, busybox and pause, built from Debian packages and the builds above;
#   - a registry (crane's, on 127.0.0.1:5001 and, once the network exists, on kind's network as
#     nppctl-registry:5000) holding busybox (Debian's busybox) and nginx (Debian's nginx) as
#     docker.io's library/busybox and library/nginx, for nodes told to use it as docker.io's mirror,
#     and the e2e images under their registry.k8s.io paths (e2e-test-images/agnhost:2.66.1, ...), for
#     nodes told to use it as registry.k8s.io's mirror;
#   - a test-VM adaptation, .ci/world/vm-egress.sh: kind's packets to the service range stop at this
#     host (this VM's egress would answer them); it does nothing until kind's network exists.
# Ends by printing KIND=, KUBECTL=, NODE_IMAGE=, REGISTRY= (the mirror URL nodes use),
# REGISTRY_PUSH= (the address this machine pushes to), E2E_TEST=, GINKGO= (the binaries) and
# CONFORMANCE_IMAGE=, one per line, on stdout (and in $W/world.env, where tests/kind/conftest.py finds
# them when the environment lacks them); progress on stderr. `--binaries-only` stops after the Go
# builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export W="${NPPCTL_WORLD:-/var/cache/nppctl-world}"
mkdir -p "$W/bin" "$W/src" "$W/logs"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"
say() { printf '== world: %s (%ss)\n' "$*" "$SECONDS" >&2; }

KIND_VERSION=v0.33.0
K8S_VERSION=v1.37.0
CONTAINERD_VERSION=v2.3.4
RUNC_VERSION=v1.4.3
CRICTL_VERSION=v1.36.0
CNI_VERSION=v1.9.1
ETCD_VERSION=v3.7.0      # kubeadm v1.37.0: registry.k8s.io/etcd:3.7.0-0
COREDNS_VERSION=v1.14.6  # kubeadm v1.37.0: registry.k8s.io/coredns/coredns:v1.14.6
PAUSE_VERSION=3.10       # kind v0.33.0's containerd config: sandbox_image registry.k8s.io/pause:3.10
CRANE_VERSION=v0.22.1
export KIND_VERSION K8S_VERSION CONTAINERD_VERSION RUNC_VERSION CRICTL_VERSION CNI_VERSION
export ETCD_VERSION COREDNS_VERSION PAUSE_VERSION CRANE_VERSION

# Download a module into the module cache, print its folder.
moddir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# build NAME@VERSION MODULE PKG... [-- GO BUILD ARGS]: `go build` inside the module's own folder
# (so its go.mod, replace lines included, is the main module), output in $W/bin/NAME@VERSION/.
build() {
  local id=$1 mod=$2; shift 2
  local pkgs=() args=()
  while (($#)) && [[ $1 != -- ]]; do pkgs+=("$1"); shift; done
  (($#)) && shift
  args=("$@")
  local out="$W/bin/$id"
  [[ -f $out/.done ]] && return 0
  say "build $id"
  local dir; dir=$(moddir "$mod")
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  for p in "${pkgs[@]}"; do  # PKG, or NAME=PKG for a module whose root is the command
    local name=${p%%=*}; [[ $p == *=* ]] && p=${p#*=} || name=$(basename "$p")
    (cd "$dir" && go build -trimpath "${args[@]}" -o "$out.tmp/$name" "$p") \
      >>"$W/logs/$id.log" 2>&1 || { tail -20 "$W/logs/$id.log" >&2; return 1; }
  done
  touch "$out.tmp/.done"; rm -rf "$out"; mv "$out.tmp" "$out"
}

# wrapped NAME@VERSION MODULE@VERSION PKG [-- GO BUILD ARGS]: the same, from a small module that
# requires MODULE (for a module whose go.mod replaces its siblings by relative paths, as etcd's does).
wrapped() {
  local id=$1 mod=$2 pkg=$3; shift 3
  (($#)) && shift
  local out="$W/bin/$id" src="$W/src/$id"
  [[ -f $out/.done ]] && return 0
  say "build $id"
  mkdir -p "$src"; rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  printf 'module nppctl.local/wrapper\n\ngo 1.25\n' >"$src/go.mod"
  (cd "$src" && go get "$mod" && go build -trimpath "$@" -o "$out.tmp/${id%@*}" "$pkg") \
    >>"$W/logs/$id.log" 2>&1 || { tail -20 "$W/logs/$id.log" >&2; return 1; }
  touch "$out.tmp/.done"; rm -rf "$out"; mv "$out.tmp" "$out"
}

build_kind() {
  local out="$W/bin/kind@$KIND_VERSION"
  [[ -f $out/.done ]] && return 0
  say "go install sigs.k8s.io/kind@$KIND_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION" >>"$W/logs/kind.log" 2>&1 \
    || { tail -20 "$W/logs/kind.log" >&2; return 1; }
  touch "$out/.done"
}

# The Kubernetes builds' module: it requires k8s.io/kubernetes and replaces the staging modules
# (./staging/src/... in kubernetes' go.mod) by their published versions; tools.go imports every package
# built from it, test/e2e's test-only imports included, so `go mod tidy` keeps what they need.
kubernetes_wrapper() {
  local src="$W/src/kubernetes@$K8S_VERSION" log="$W/logs/$1.log"
  mkdir -p "$src"
  local dir; dir=$(moddir "k8s.io/kubernetes@$K8S_VERSION")
  local gomod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  local staging="v0${K8S_VERSION#v1}"  # v1.37.0 -> v0.37.0, the staging modules' tag
  {
    printf 'module nppctl.local/kubernetes-wrapper\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
      "$(sed -n 's/^go //p' "$gomod")" "$K8S_VERSION"
    sed -n "s#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 $staging#p" "$gomod"
    printf ')\n'
  } >"$src/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    { printf '%s\n' k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/test/e2e github.com/onsi/ginkgo/v2/ginkgo \
        k8s.io/kubernetes/test/images/agnhost k8s.io/kubernetes/test/conformance/image/go-runner
      test_imports "$dir/test/e2e/e2e_test.go"; } | sort -u | sed 's/.*/\t_ "&"/'
    printf ')\n'
  } >"$src/tools.go"
  (cd "$src" && go mod tidy -e) >>"$log" 2>&1
}

# test_imports FILE: the non-standard-library paths of FILE's import block (comment lines skipped).
test_imports() {
  awk '/^import \($/ {on=1; next} on && /^\)$/ {exit}
    on && !/^[ \t]*\/\// && match($0, /"[^"]+"/) {p = substr($0, RSTART + 1, RLENGTH - 2); if (p ~ /^[^\/]*\./) print p}' "$1"
}

# The version stamp of Kubernetes' own builds (hack/lib/version.sh sets these), so binaries say v1.37.0.
kube_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$ld"
}

# in_wrapper LOG CMD...: CMD in the wrapper module, static (CGO_ENABLED=0), output to $W/logs/LOG.log.
in_wrapper() {
  local log="$W/logs/$1.log"; shift
  (cd "$W/src/kubernetes@$K8S_VERSION" && CGO_ENABLED=0 "$@") >>"$log" 2>&1 || { tail -20 "$log" >&2; return 1; }
}

build_kubernetes() {
  local out="$W/bin/kubernetes@$K8S_VERSION"
  [[ -f $out/.done ]] && return 0
  say "build Kubernetes $K8S_VERSION (wrapper module; the longest step)"
  kubernetes_wrapper kubernetes
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local ld; ld=$(kube_ldflags)
  for c in kubeadm kubelet kubectl kube-proxy kube-scheduler kube-controller-manager kube-apiserver; do
    say "  $c"
    in_wrapper kubernetes go build -trimpath -ldflags "$ld" -o "$out.tmp/$c" "k8s.io/kubernetes/cmd/$c"
  done
  touch "$out.tmp/.done"; rm -rf "$out"; mv "$out.tmp" "$out"
}

# What an e2e (conformance) run needs besides the cluster, from the same module and stamp:
#   - e2e.test, `go test -c` of test/e2e as hack/lib/golang.sh builds it;
#   - the ginkgo CLI, at the version k8s.io/kubernetes requires (checked: the wrapper's build list
#     could raise it);
#   - agnhost, stamped as its Makefile does (-X main.Version=<test/images/agnhost/VERSION>);
#   - go-runner, the conformance image's entrypoint (test/conformance/image/go-runner).
build_e2e() {
  local out="$W/bin/e2e@$K8S_VERSION"
  [[ -f $out/.done ]] && return 0
  say "build e2e.test, ginkgo, agnhost, go-runner (Kubernetes $K8S_VERSION's wrapper module)"
  kubernetes_wrapper e2e
  local gomod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  local want have
  want=$(sed -n 's#^\s*github.com/onsi/ginkgo/v2 \(v[^ ]*\).*#\1#p' "$gomod")
  have=$(cd "$W/src/kubernetes@$K8S_VERSION" && go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
  [[ -n $want && $have == "$want" ]] || { echo "ginkgo: wrapper has $have, kubernetes requires $want" >&2; return 1; }
  local agnhost; agnhost=$(cat "$(moddir "k8s.io/kubernetes@$K8S_VERSION")/test/images/agnhost/VERSION")
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  say "  e2e.test"
  in_wrapper e2e go test -c -trimpath -ldflags "$(kube_ldflags)" -o "$out.tmp/e2e.test" k8s.io/kubernetes/test/e2e
  say "  ginkgo $want, agnhost $agnhost, go-runner"
  in_wrapper e2e go build -trimpath -ldflags "-s -w" -o "$out.tmp/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
  in_wrapper e2e go build -trimpath -ldflags "-s -w -X main.Version=$agnhost" -o "$out.tmp/agnhost" \
    k8s.io/kubernetes/test/images/agnhost
  in_wrapper e2e go build -trimpath -ldflags "-s -w" -o "$out.tmp/go-runner" \
    k8s.io/kubernetes/test/conformance/image/go-runner
  touch "$out.tmp/.done"; rm -rf "$out"; mv "$out.tmp" "$out"
}

build_pause() {
  local out="$W/bin/pause@$K8S_VERSION"
  [[ -f $out/.done ]] && return 0
  say "build pause (k8s.io/kubernetes $K8S_VERSION build/pause/linux/pause.c, static)"
  local dir; dir=$(moddir "k8s.io/kubernetes@$K8S_VERSION")
  mkdir -p "$out"
  gcc -Os -static -DVERSION="v$PAUSE_VERSION-nppctl" -o "$out/pause" "$dir/build/pause/linux/pause.c"
  strip "$out/pause"; touch "$out/.done"
}

build_all() {
  build_kind
  build "containerd@$CONTAINERD_VERSION" "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" \
    ./cmd/containerd ./cmd/ctr ./cmd/containerd-shim-runc-v2 -- \
    -tags "no_aufs no_zfs no_btrfs no_devmapper" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
  CGO_ENABLED=1 build "runc@$RUNC_VERSION" "github.com/opencontainers/runc@$RUNC_VERSION" runc=. -- \
    -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w -X main.version=${RUNC_VERSION#v}"
  CGO_ENABLED=0 build "crictl@$CRICTL_VERSION" "sigs.k8s.io/cri-tools@$CRICTL_VERSION" ./cmd/crictl -- \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
  CGO_ENABLED=0 build "cni-plugins@$CNI_VERSION" "github.com/containernetworking/plugins@$CNI_VERSION" \
    ./plugins/ipam/host-local ./plugins/main/loopback ./plugins/main/ptp ./plugins/meta/portmap -- \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_VERSION"
  CGO_ENABLED=0 build "crane@$CRANE_VERSION" "github.com/google/go-containerregistry@$CRANE_VERSION" ./cmd/crane -- \
    -ldflags "-s -w"
  CGO_ENABLED=0 wrapped "etcd@$ETCD_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3 -- \
    -ldflags "-s -w"
  CGO_ENABLED=0 build "coredns@$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" coredns=. -- -ldflags "-s -w"
  build_pause
  build_kubernetes
  build_e2e
}

build_all
[[ ${1:-} == --binaries-only ]] && exit 0
bash "$here/world/images.sh"
CONFORMANCE_IMAGE=$(bash "$here/world/e2e-images.sh" | tail -n 1)
NODE_IMAGE=$(bash "$here/world/node-image.sh" | tail -n 1)
bash "$here/world/registry.sh"
# Harmless at any time (no kind network: nothing to do); the tests call it again after `kind create`.
bash "$here/world/vm-egress.sh" || say "vm-egress.sh failed (the tests call it again)"
{
  echo "KIND=$W/bin/kind@$KIND_VERSION/kind"
  echo "KUBECTL=$W/bin/kubernetes@$K8S_VERSION/kubectl"
  echo "NODE_IMAGE=$NODE_IMAGE"
  echo "REGISTRY=http://nppctl-registry:5000"
  echo "REGISTRY_PUSH=127.0.0.1:5001"
  echo "E2E_TEST=$W/bin/e2e@$K8S_VERSION/e2e.test"
  echo "GINKGO=$W/bin/e2e@$K8S_VERSION/ginkgo"
  echo "CONFORMANCE_IMAGE=$CONFORMANCE_IMAGE"
} | tee "$W/world.env"
say "ready"
