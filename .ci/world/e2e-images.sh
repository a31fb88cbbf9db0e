#!/usr/bin/env bash
# Images of Kubernetes' e2e tests for the kind world (called by .ci/kind-world.sh after images.sh, which
# exports W and the versions), under the names the tests ask for: the conformance image, and the images
# the [sig-network] conformance tests and the "Networking Granular Checks" start in pods, as
# test/utils/image/manifest.go of Kubernetes $K8S_VERSION names them (read from its module source, so
# the tags follow the version):
#   - registry.k8s.io/conformance:$K8S_VERSION, as test/conformance/image/Dockerfile assembles it:
#     ginkgo, e2e.test, kubectl in /usr/local/bin, go-runner as /usr/local/bin/kubeconformance (and its
#     legacy names /run_e2e.sh, /gorunner), Kubernetes' cluster/ folder in /kubernetes/cluster (go-runner
#     passes --repo-root=/kubernetes), the same ENV defaults and ENTRYPOINT. The base is the skeleton
#     of images.sh's static images instead of debian-base: go-runner, ginkgo and e2e.test exec each
#     other and kubectl directly, never a shell (log dumps, which do, are off: --disable-log-dump).
#   - e2e-test-images/agnhost (Alpine upstream): a Debian trixie minbase with the tools its Dockerfile
#     adds (dig and nslookup, curl, netcat-openbsd, iproute2, iperf, socat; bash and ipcs are in
#     minbase), /agnhost and the /agnhost-2 link, porter's localhost.crt/.key in /, /uploads, the
#     user-defined-in-image user (1000) in group-defined-in-image (50000), ENTRYPOINT /agnhost, CMD pause.
#     Left out: /coredns (only the non-conformance "configurable pod resolv.conf" test runs it) and
#     /var/registry (fakeregistryserver's images, pulled from the internet upstream).
#   - e2e-test-images/glibc-dns-testing (Debian slim + dnsutils upstream): the DNS tests' second
#     prober, running `sh -c` with dig, getent, seq. agnhost's layer already is a glibc system with
#     dnsutils, so it is that layer again with Debian's default command (bash): nothing new to pull.
#     (Both probers resolve with glibc here; upstream the agnhost one uses musl.)
#   - e2e-test-images/nginx, e2e-test-images/busybox and pause: images.sh's nginx, busybox and pause
#     under those names (same image IDs, no new layers).
# Each built image is first tagged nppctl-world/e2e-NAME:<hash of this script, the versions and the
# builds it holds>, so a change rebuilds it; the upstream names are tags of those. Writes
# $W/images/e2e-registry.list ("LOCAL-IMAGE REPOSITORY:TAG" lines, the repository without the
# registry host) for registry.sh, which pushes what its registry lacks; prints the conformance image.
set -euo pipefail
: "${W:?run from .ci/kind-world.sh}"
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '== world: %s (%ss)\n' "$*" "$SECONDS" >&2; }
k8s_src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
manifest="$k8s_src/test/utils/image/manifest.go"
e2ebin="$W/bin/e2e@$K8S_VERSION"
kbin="$W/bin/kubernetes@$K8S_VERSION"
key=$( (cat "$here/e2e-images.sh" "$here/skeleton.sh"; env | grep -E '_VERSION=' | sort; stat -c '%n %Y' "$e2ebin/.done" "$kbin/.done") \
  | sha256sum | cut -c1-12)
mkdir -p "$W/images" "$W/debs"

have() { docker image inspect "$1" >/dev/null 2>&1; }

# upstream ID: the image manifest.go's initImageConfigs gives ImageID ID (registry, name, tag), with
# the registry as initRegistry spells it: e.g. Agnhost -> registry.k8s.io/e2e-test-images/agnhost:2.66.1.
upstream() {
  local list name tag prefix
  read -r list name tag < <(sed -n \
    "s/^\s*configs\[$1\] = Config{list\.\([A-Za-z0-9]*\), \"\([^\"]*\)\", \"\([^\"]*\)\"}.*/\1 \2 \3/p" "$manifest") || true
  prefix=$(sed -n "s/^\s*${list:-none}: *\"\([^\"]*\)\",.*/\1/p" "$manifest" | head -n 1)
  [[ -n $prefix && -n $name && -n $tag ]] || { echo "manifest.go: no image $1" >&2; return 1; }
  printf '%s/%s:%s\n' "$prefix" "$name" "$tag"
}

# shellcheck source=.ci/world/skeleton.sh
. "$here/skeleton.sh"

# import TAG DIR [--change ...]: DIR as a one-layer image (numeric owners kept, hard links too).
import() {
  local tag=$1 dir=$2; shift 2
  tar -C "$dir" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL io.nppctl.world=$key" "$@" - "$tag" >/dev/null
}

# minbase DIR PACKAGES: a Debian trixie minbase rootfs with PACKAGES (no Recommends), slimmed: no apt
# lists or archives, no documentation but copyright files, no man pages or translations, and not the
# build host's resolv.conf and hostname (debootstrap copies them; the runtime supplies its own).
minbase() {
  local d=$1 name; name=$(basename "$1")
  mkdir -p "$W/debs/$name"
  debootstrap --variant=minbase --cache-dir="$W/debs/$name" --include="$2" trixie "$d" \
    >"$W/logs/debootstrap-$name.log" 2>&1 || { tail -20 "$W/logs/debootstrap-$name.log" >&2; return 1; }
  rm -rf "$d"/var/cache/apt/archives/*.deb "$d"/var/lib/apt/lists/* "$d"/var/log/* "$d"/tmp/* \
    "$d"/usr/share/man/* "$d"/usr/share/info/* "$d"/usr/share/locale/* "$d"/etc/resolv.conf "$d"/etc/hostname
  find "$d/usr/share/doc" -type f ! -name copyright -delete
  find "$d/usr/share/doc" -type l -delete
  [[ -s $d/etc/nsswitch.conf ]] || printf 'hosts: files dns\n' >"$d/etc/nsswitch.conf"
}

# conformance_image TAG: the conformance image (see the header), from $e2ebin and kubectl.
conformance_image() {
  local d="$tmp/conformance"
  skeleton "$d"
  mkdir -p "$d/root"
  install -m 0755 "$e2ebin/ginkgo" "$e2ebin/e2e.test" "$kbin/kubectl" "$d/usr/local/bin/"
  install -m 0755 "$e2ebin/go-runner" "$d/usr/local/bin/kubeconformance"
  ln "$d/usr/local/bin/kubeconformance" "$d/run_e2e.sh"  # the Dockerfile copies the same file there
  ln "$d/usr/local/bin/kubeconformance" "$d/gorunner"
  mkdir -p "$d/kubernetes"
  cp -r "$k8s_src/cluster" "$d/kubernetes/cluster"
  chmod -R u+w,go-w "$d/kubernetes"  # the module cache's files are read-only
  # The Dockerfile's ENV lines as it writes them (in double quotes Docker keeps the backslashes).
  import "$1" "$d" \
    --change 'ENV E2E_FOCUS="\[Conformance\]"' --change 'ENV E2E_SKIP=""' --change 'ENV E2E_PROVIDER="local"' \
    --change 'ENV E2E_PARALLEL="1"' --change 'ENV E2E_VERBOSITY="4"' --change 'ENV RESULTS_DIR="/tmp/results"' \
    --change 'ENV KUBECONFIG=""' --change 'ENTRYPOINT [ "kubeconformance" ]'
}

# agnhost_image TAG: agnhost (see the header) on a Debian trixie minbase.
agnhost_image() {
  local d="$tmp/agnhost"
  minbase "$d" bind9-dnsutils,curl,netcat-openbsd,iproute2,iperf,socat
  install -m 0755 "$e2ebin/agnhost" "$d/agnhost"
  ln -s agnhost "$d/agnhost-2"  # entrypoint-tester tests run /agnhost-2
  install -m 0644 "$k8s_src/test/images/agnhost/porter/localhost.crt" "$k8s_src/test/images/agnhost/porter/localhost.key" "$d/"
  mkdir -p "$d/uploads"  # netexec's /upload target
  ln -sf /usr/bin/iperf "$d/usr/local/bin/iperf"
  # As the Dockerfile's adduser/addgroup: user 1000 with its own group, and member of group 50000.
  echo 'user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh' >>"$d/etc/passwd"
  echo 'user-defined-in-image:!:20000:0:99999:7:::' >>"$d/etc/shadow"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$d/etc/group"
  printf 'user-defined-in-image:!::\ngroup-defined-in-image:!::user-defined-in-image\n' >>"$d/etc/gshadow"
  mkdir -p "$d/home/user-defined-in-image"; chown 1000:1000 "$d/home/user-defined-in-image"
  import "$1" "$d" --change 'EXPOSE 80 8080 8081 9376 5000' \
    --change 'ENTRYPOINT ["/agnhost"]' --change 'CMD ["pause"]'
}

# same_layer TAG FROM INSTRUCTION...: FROM's layer under other settings (a build with no RUN or COPY
# adds no layer).
same_layer() {
  local tag=$1 from=$2; shift 2
  local log="$W/logs/e2e-images-build.log"
  { printf 'FROM %s\n' "$from"; printf '%s\n' "$@"; } \
    | docker build -q -t "$tag" --label "io.nppctl.world=$key" - >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}

# ensure LOCAL-TAG FUNCTION: build LOCAL-TAG with FUNCTION unless it exists.
ensure() {
  have "$1" && return 0
  say "image $1 (${2%_image})"
  "$2" "$1"
}

tmp=$(mktemp -d /var/tmp/nppctl-world-e2e-images.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

conformance="registry.k8s.io/conformance:$K8S_VERSION"
agnhost=$(upstream Agnhost)
glibc=$(upstream GlibcDnsTesting)
nginx=$(upstream Nginx)
busybox=$(upstream BusyBox)
pause=$(upstream Pause)
ensure "nppctl-world/e2e-conformance:$key" conformance_image
ensure "nppctl-world/e2e-agnhost:$key" agnhost_image
if ! have "nppctl-world/e2e-glibc-dns-testing:$key"; then
  say "image nppctl-world/e2e-glibc-dns-testing:$key (agnhost's layer, Debian's default command)"
  same_layer "nppctl-world/e2e-glibc-dns-testing:$key" "nppctl-world/e2e-agnhost:$key" \
    'ENTRYPOINT []' 'CMD ["bash"]'
fi

# Upstream name -> local image; each upstream name is (re)tagged on every run (cheap, and a rebuild
# moves it).
pairs=(
  "$conformance nppctl-world/e2e-conformance:$key"
  "$agnhost nppctl-world/e2e-agnhost:$key"
  "$glibc nppctl-world/e2e-glibc-dns-testing:$key"
  "$nginx nppctl-world/nginx:latest"
  "$busybox nppctl-world/busybox:latest"
  "$pause registry.k8s.io/pause:$PAUSE_VERSION"
)
: >"$W/images/e2e-registry.list.tmp"
for pair in "${pairs[@]}"; do
  read -r name image <<<"$pair"
  [[ $name == registry.k8s.io/* ]] || { echo "$name: not a registry.k8s.io image" >&2; exit 1; }
  docker tag "$image" "$name"
  echo "$name ${name#registry.k8s.io/}" >>"$W/images/e2e-registry.list.tmp"
done
mv "$W/images/e2e-registry.list.tmp" "$W/images/e2e-registry.list"
echo "$conformance"
