"""The docker provider against the real engine: kind's names, labels, network; idempotence; delete."""

from __future__ import annotations

import pytest

from nppctl.access.nodes import get_node, list_nodes, node_exec
from nppctl.access.providers.base import KIND_NETWORK, LABEL_CLUSTER, LABEL_ROLE, ClusterSpec
from nppctl.access.providers.docker import DockerProvider

CLUSTER = "np3p"
OTHER = "np3q"


@pytest.fixture(scope="module")
def provider(docker_client, node_image, request):
    p = DockerProvider(docker_client)
    for name in (CLUSTER, OTHER):
        p.delete(name)
        request.addfinalizer(lambda name=name: p.delete(name))
    return p


def test_create_makes_kind_shaped_nodes_and_is_idempotent(provider, docker_client, node_image, tmp_path):
    (tmp_path / "w1").mkdir()
    (tmp_path / "w1" / "hello").write_text("from the host\n")
    spec = ClusterSpec(name=CLUSTER, workers=2, image=node_image, mounts={"worker": tmp_path / "w1"})
    provider.create(spec)
    mine = {"label": f"{LABEL_CLUSTER}={CLUSTER}"}
    first = {c.name: c.id for c in docker_client.containers.list(filters=mine)}
    provider.create(spec)  # again: nothing new, nothing recreated
    again = {c.name: c.id for c in docker_client.containers.list(filters=mine)}
    assert first == again
    assert sorted(first) == [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"]
    assert provider.exists(CLUSTER) and provider.kubeconfig(CLUSTER) is None and not provider.has_kubernetes

    nodes = list_nodes(CLUSTER)
    assert [(n.short, n.role) for n in nodes] == [
        ("control-plane", "control-plane"), ("worker", "worker"), ("worker2", "worker")]
    for n in nodes:
        c = docker_client.containers.get(n.name)
        assert c.labels[LABEL_CLUSTER] == CLUSTER and c.labels[LABEL_ROLE] == n.role
        assert c.attrs["Config"]["Hostname"] == n.name
        assert set(c.attrs["HostConfig"]["CapAdd"]) >= {"NET_ADMIN", "SYS_ADMIN", "NET_RAW"}
        entry = c.attrs["Config"]["Entrypoint"]
        assert entry[:2] == ["/bin/sh", "-c"] and entry[2].endswith("sleep infinity & wait")
        assert n.address == c.attrs["NetworkSettings"]["Networks"][KIND_NETWORK]["IPAddress"]
    assert node_exec(get_node(CLUSTER, "worker"), ["cat", "/npp-temp/hello"])[1] == "from the host\n"
    assert node_exec(get_node(CLUSTER, "worker2"), ["ls", "/npp-temp"], check=False)[0] != 0  # no mount asked
    net = docker_client.networks.get(KIND_NETWORK)
    assert net.attrs["Driver"] == "bridge"


def test_a_stopped_node_is_started_again(provider, docker_client, node_image):
    docker_client.containers.get(f"{CLUSTER}-worker2").stop(timeout=0)
    provider.create(ClusterSpec(name=CLUSTER, workers=2, image=node_image))
    assert docker_client.containers.get(f"{CLUSTER}-worker2").status == "running"


def test_a_foreign_container_with_a_node_name_is_refused(provider, docker_client, node_image):
    from nppctl.errors import NppctlError

    stranger = docker_client.containers.create(node_image, name=f"{OTHER}-control-plane")
    try:
        with pytest.raises(NppctlError, match="is not a node of cluster"):
            provider.create(ClusterSpec(name=OTHER, workers=0, image=node_image))
    finally:
        stranger.remove(force=True)


def test_delete_keeps_the_network_while_another_cluster_uses_it(provider, docker_client, node_image):
    provider.create(ClusterSpec(name=OTHER, workers=0, image=node_image))
    provider.delete(CLUSTER)
    assert not provider.exists(CLUSTER)
    assert not docker_client.containers.list(all=True, filters={"name": f"{CLUSTER}-"})
    net = docker_client.networks.get(KIND_NETWORK)  # still there: np3q is attached
    net.reload()
    assert any(c["Name"] == f"{OTHER}-control-plane" for c in net.attrs["Containers"].values())
    provider.delete(OTHER)
    provider.delete(OTHER)  # gone already: fine
    remaining = docker_client.networks.list(names=[KIND_NETWORK])
    if remaining:  # another cluster (another suite) may still use it; then it must have containers
        remaining[0].reload()
        assert remaining[0].attrs["Containers"]
