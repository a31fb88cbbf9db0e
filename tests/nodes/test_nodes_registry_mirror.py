"""--registry-mirror's node side: hosts.toml lands exactly in every node, through the Docker SDK, and a
second write changes nothing. Nodes of the docker provider (no containerd there: the real-kind
end-to-end test pulls through it)."""

from __future__ import annotations

import sys

from nppctl.access import registrymirror
from tests.nodes.conftest import make_cluster

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra's tomli
    import tomli as tomllib

CLUSTER = "np3mirror"


def _read(container, path: str) -> tuple[int, bytes]:
    code, out = container.exec_run(["cat", path])
    return code, out


def test_hosts_toml_lands_in_every_node_and_a_second_write_is_unchanged(request, docker_client, node_image):
    make_cluster(request, docker_client, node_image, CLUSTER, workers=1)
    nodes = sorted(c.name for c in docker_client.containers.list(
        filters={"label": f"io.x-k8s.kind.cluster={CLUSTER}"}))
    assert nodes == [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker"]
    mirrors = ["http://np3mirror-registry:5000", "https://cache.school.example"]

    assert registrymirror.write_hosts(CLUSTER, mirrors) == {n: "written" for n in nodes}
    for name in nodes:
        box = docker_client.containers.get(name)
        code, text = _read(box, "/etc/containerd/certs.d/docker.io/hosts.toml")
        assert code == 0 and text.decode() == registrymirror.hosts_toml(mirrors)
        data = tomllib.loads(text.decode())
        assert data["server"] == "https://registry-1.docker.io" and list(data["host"]) == mirrors
        code, mode = box.exec_run(["stat", "-c", "%a %U", "/etc/containerd/certs.d/docker.io/hosts.toml"])
        assert mode.decode().strip() == "644 root"

    assert registrymirror.write_hosts(CLUSTER, mirrors) == {n: "unchanged" for n in nodes}
    assert registrymirror.write_hosts(CLUSTER, mirrors[:1]) == {n: "written" for n in nodes}
    code, text = _read(docker_client.containers.get(nodes[1]), "/etc/containerd/certs.d/docker.io/hosts.toml")
    assert list(tomllib.loads(text.decode())["host"]) == mirrors[:1]
