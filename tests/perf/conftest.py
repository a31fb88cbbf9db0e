"""STAND-IN fixtures of this folder, until tests/conftest.py has the shared session fixtures of the
same names (the integrator replaces them at merge, then deletes this file's two fixtures):

- python_node_image: a trixie node image with python3 3.13 from trixie's own apt, as a kind
  v0.32 node becomes once `nppctl install --ensure-python` ran in it (here: debootstrap, cached
  by tag);
- node_image_bookworm: a bookworm node image with python3 3.11 (kind v0.21-v0.31): for now the
  shared node_image, which is that.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require

PYTHON_IMAGE = "nppctl-standin:trixie-python3"
PACKAGES = "bash,jq,iproute2,iptables,nftables,util-linux,procps,python3,ca-certificates,kmod"
BUILD = f"""set -euo pipefail
root=$(mktemp -d /var/tmp/nppctl-standin.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include={PACKAGES} trixie "$root" >"$root.log" 2>&1 ||
  {{ tail "$root.log"; exit 1; }}
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root.log"
tar -C "$root" -c . | docker import --change 'CMD ["sleep", "infinity"]' \\
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - {PYTHON_IMAGE}
"""


@pytest.fixture(scope="session")
def python_node_image(docker_client) -> str:
    """STAND-IN (see the module docstring): trixie + python3 3.13."""
    try:
        docker_client.images.get(PYTHON_IMAGE)
    except Exception:  # noqa: BLE001 - not built yet
        done = subprocess.run(["bash", "-c", BUILD], capture_output=True, text=True)
        why = (done.stdout + done.stderr)[-300:]
        require(done.returncode == 0, f"trixie node image with python3 ({why})")
    return PYTHON_IMAGE


@pytest.fixture(scope="session")
def node_image_bookworm(node_image) -> str:
    """STAND-IN (see the module docstring): bookworm + python3 3.11."""
    return node_image
