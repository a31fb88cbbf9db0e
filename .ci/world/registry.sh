#!/usr/bin/env bash
# The kind world's registry (called by .ci/kind-world.sh), as kind's local-registry guide runs one:
# a container named nppctl-registry (crane's registry, blobs on the volume nppctl-registry), published
# on 127.0.0.1:5001 for pushes from this machine, and attached to kind's network "kind" (when it
# exists; tests attach it again after creating a cluster) so nodes reach it as nppctl-registry:5000.
# It holds library/busybox:latest and library/nginx:latest, so a node whose containerd uses it as
# docker.io's mirror pulls the course's `image: busybox` / `image: nginx` through the real pull path,
# and the e2e images of .ci/world/e2e-images.sh under their registry.k8s.io paths (conformance,
# e2e-test-images/agnhost, ..., pause), for nodes that use it as registry.k8s.io's mirror.
set -euo pipefail
: "${W:?run from .ci/kind-world.sh}"
say() { printf '== world: %s (%ss)\n' "$*" "$SECONDS" >&2; }
name=nppctl-registry
image="nppctl-registry:crane-$CRANE_VERSION"
if [[ $(docker inspect -f '{{.Config.Image}}' "$name" 2>/dev/null) != "$image" ]]; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  say "registry $name ($image)"
  docker run -d --name "$name" --restart unless-stopped -p 127.0.0.1:5001:5000 \
    -v nppctl-registry:/var/lib/registry "$image" >/dev/null
fi
[[ $(docker inspect -f '{{.State.Running}}' "$name") == true ]] || docker start "$name" >/dev/null
for i in $(seq 40); do curl -fsS http://127.0.0.1:5001/v2/ >/dev/null 2>&1 && break; sleep 0.25; done
curl -fsS http://127.0.0.1:5001/v2/ >/dev/null
if docker network inspect kind >/dev/null 2>&1; then
  docker network connect kind "$name" 2>/dev/null || true
fi
# push IMAGE REPOSITORY:TAG: the local IMAGE into the registry as REPOSITORY:TAG, unless it holds
# it already (the pushed image's config digest is the local image ID), so reruns push nothing.
push() {
  local image=$1 repo=${2%:*} tag=${2##*:}
  local want have
  want=$(docker image inspect -f '{{.Id}}' "$image")
  have=$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:5001/v2/$repo/manifests/$tag" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null || true)
  [[ $have == "$want" ]] && return 0
  say "push $repo:$tag"
  docker tag "$image" "127.0.0.1:5001/$repo:$tag"
  docker push -q "127.0.0.1:5001/$repo:$tag" >/dev/null </dev/null
}

push nppctl-world/busybox:latest library/busybox:latest
push nppctl-world/nginx:latest library/nginx:latest
# The e2e images (.ci/world/e2e-images.sh) under their registry.k8s.io paths, host left out: a node
# whose containerd mirrors registry.k8s.io here asks for /v2/e2e-test-images/agnhost/manifests/...
if [[ -f $W/images/e2e-registry.list ]]; then
  while read -r image ref; do push "$image" "$ref"; done <"$W/images/e2e-registry.list"
fi
