"""Fixtures of the node tests: kind-shaped clusters made by the docker provider from the python3 node
image (python_node_image: the trixie node image plus python3, as `up` derives it).

Every cluster name starts with np3 (containers np3x-control-plane, np3x-worker, ...). Each module
gets its own cluster, deleted at the end even when a test fails.
"""

from __future__ import annotations

import pytest

from nppctl.access.providers.base import ClusterSpec


def make_cluster(request, docker_client, image: str, name: str, workers: int, **spec) -> str:
    from nppctl.access.providers.docker import DockerProvider

    provider = DockerProvider(docker_client)
    provider.delete(name)  # leftovers of an interrupted run
    request.addfinalizer(lambda: provider.delete(name))
    provider.create(ClusterSpec(name=name, workers=workers, image=image, **spec))
    return name


@pytest.fixture(scope="module")
def cluster3(request, docker_client, python_node_image) -> str:
    """A 3-node cluster (control plane + 2 workers) named by the module's CLUSTER (np3...)."""
    name = request.module.CLUSTER
    assert name.startswith("np3")
    return make_cluster(request, docker_client, python_node_image, name, workers=2)
