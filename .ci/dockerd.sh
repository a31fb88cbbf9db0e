#!/usr/bin/env bash
# Start a Docker engine for the tests when none answers. Test-VM adaptation (not the product's):
# this VM's root lacks CAP_SYS_RESOURCE, so dockerd's default runtime is .ci/runc-wrapper (runc
# minus that one capability), which makes `--privileged` (kind's nodes) work here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
install -D -m 0755 "$here/runc-wrapper" /usr/local/lib/nppctl-ci/runc-wrapper
mkdir -p /etc/docker
want='{"runtimes": {"nppctl-ci-runc": {"path": "/usr/local/lib/nppctl-ci/runc-wrapper"}}, "default-runtime": "nppctl-ci-runc"}'
if [[ "$(cat /etc/docker/daemon.json 2>/dev/null)" != "$want" ]]; then
  printf '%s\n' "$want" >/etc/docker/daemon.json
  pkill -HUP -x dockerd 2>/dev/null || true  # a running engine reloads runtimes on SIGHUP
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd" >&2
  nohup /usr/sbin/dockerd >/var/log/nppctl-ci-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/nppctl-ci-dockerd.log >&2; exit 1; }
fi
for _ in $(seq 20); do
  docker info --format '{{.DefaultRuntime}}' 2>/dev/null | grep -qx nppctl-ci-runc && exit 0
  sleep 0.5
done
echo "dockerd did not take nppctl-ci-runc as its default runtime" >&2
exit 1
