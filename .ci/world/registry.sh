#!/usr/bin/env bash
# The kind world's registry (called by .ci/kind-world.sh), as kind's local-registry guide runs one:
# a container named nppctl-registry (crane's registry, blobs on the volume nppctl-registry), published
# on 127.0.0.1:5001 for pushes from this machine, and attached to kind's network "kind" (when it
# exists; tests attach it again after creating a cluster) so nodes reach it as nppctl-registry:5000.
# It holds library/busybox:latest and library/nginx:latest, so a node whose containerd uses it as
# docker.io's mirror pulls the course's `image: busybox` / `image: nginx` through the real pull path.
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
for img in busybox nginx; do
  want=$(docker image inspect -f '{{.Id}}' "nppctl-world/$img:latest")
  # the pushed image's config digest is the local image ID: push only what the registry lacks
  have=$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:5001/v2/library/$img/manifests/latest" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null || true)
  if [[ $have != "$want" ]]; then
    say "push library/$img:latest"
    docker tag "nppctl-world/$img:latest" "127.0.0.1:5001/library/$img:latest"
    docker push -q "127.0.0.1:5001/library/$img:latest" >/dev/null
  fi
done
