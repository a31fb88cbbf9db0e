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
    urls = ["http://np3mirror-registry:5000", "https://cache.school.example"]
    k8s = "registry.k8s.io=http://np3mirror-registry:5000"
    mirrors = [registrymirror.parse(m) for m in (*urls, k8s)]
    hub = "/etc/containerd/certs.d/docker.io/hosts.toml"
    k8s_file = "/etc/containerd/certs.d/registry.k8s.io/hosts.toml"

    assert registrymirror.write_hosts(CLUSTER, mirrors) == {n: "written" for n in nodes}
    for name in nodes:
        box = docker_client.containers.get(name)
        code, text = _read(box, hub)
        assert code == 0 and text.decode() == registrymirror.hosts_toml("docker.io", urls)
        data = tomllib.loads(text.decode())
        assert data["server"] == "https://registry-1.docker.io" and list(data["host"]) == urls
        code, mode = box.exec_run(["stat", "-c", "%a %U", hub])
        assert mode.decode().strip() == "644 root"
        data = tomllib.loads(_read(box, k8s_file)[1].decode())
        assert data["server"] == "https://registry.k8s.io" and list(data["host"]) == urls[:1]

    assert registrymirror.write_hosts(CLUSTER, mirrors) == {n: "unchanged" for n in nodes}
    # a registry no longer named loses the file nppctl wrote; a file nppctl did not write stays
    other = "/etc/containerd/certs.d/quay.io/hosts.toml"
    box = docker_client.containers.get(nodes[1])
    made = f"mkdir -p /etc/containerd/certs.d/quay.io && echo 'server = \"x\"' >{other}"
    assert box.exec_run(["sh", "-c", made]).exit_code == 0
    assert registrymirror.write_hosts(CLUSTER, mirrors[:1]) == {n: "written" for n in nodes}
    code, text = _read(box, hub)
    assert list(tomllib.loads(text.decode())["host"]) == urls[:1]
    assert _read(box, k8s_file)[0] != 0
    assert _read(box, other)[0] == 0
