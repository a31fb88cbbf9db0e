"""A node without python3 (a cluster made before `up` derived images): install stops with the fix;
`--ensure-python` installs it with apt-get in the node."""

from __future__ import annotations

import pytest

from nppctl.access.nodes import get_node, node_run
from nppctl.lab import status
from tests.conftest import require
from tests.nodes.np3 import nppctl

CLUSTER = "np3e"


def make_bare_node(request, docker_client, node_image, cluster: str):
    """A one-node cluster made straight from the trixie node image: no python3, as in kindest/node."""
    from tests.nodes.conftest import make_cluster

    make_cluster(request, docker_client, node_image, cluster, workers=0)
    node = get_node(cluster, "control-plane")
    assert node_run(node, ["/usr/bin/python3", "--version"]).code != 0
    return node


@pytest.fixture(scope="module")
def bare_node(request, docker_client, node_image):
    return make_bare_node(request, docker_client, node_image, CLUSTER)


def test_install_without_python_says_how_to_get_it(bare_node):
    proc = nppctl("install", "--name", CLUSTER, "--all")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert "\n" not in line and "has no python3" in line and "--ensure-python" in line, proc.stderr
    (st,) = status.status(CLUSTER)
    assert st.python3 is None and not st.ok


def test_ensure_python_installs_it_with_apt(bare_node):
    reachable = node_run(bare_node, ["apt-get", "update", "-qq"])
    require(reachable.code == 0, f"the node's apt mirror ({reachable.stderr.strip()[-200:]})")
    proc = nppctl("install", "--name", CLUSTER, "--all", "--ensure-python", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Installing python3 in np3e-control-plane with apt-get" in proc.stdout
    (st,) = status.status(CLUSTER)
    assert st.python3 and st.python3.startswith("3.") and st.ok, st
