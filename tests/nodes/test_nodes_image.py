"""Node images as kind builds them, against the real engine: `up --provider docker` on the trixie
image (no python3, no ping) builds nppctl-node:<base> with python3 once, a second `up` runs no apt;
a bookworm image (python3 3.11) is used as it is; an unreachable mirror is one line; the docker
provider's network and security options are kind's. Cluster names start with np7."""

from __future__ import annotations

import time

import pytest

from nppctl.access import nodeimage
from nppctl.access.nodes import get_node, node_run
from nppctl.access.providers.base import ClusterSpec
from nppctl.access.providers.docker import MTU_OPTION, DockerProvider, ula_subnet
from tests.nodes.np3 import nppctl


def _retag(request, docker_client, image: str, ref: str) -> str:
    """REF names IMAGE for this test only, with no derived image yet; both are removed at the end."""
    repo, tag = ref.split(":")

    def drop():
        for name in (nodeimage.derived_tag(ref), ref):
            try:
                docker_client.images.remove(name, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    drop()
    docker_client.images.get(image).tag(repo, tag)
    request.addfinalizer(drop)
    return ref


def _up(name: str, image: str, tmp_path, **env) -> object:
    return nppctl("up", "--provider", "docker", "--workers", "2", "--no-mounts", "--name", name,
                  "--image", image, timeout=600, NPPCTL_STATE_DIR=str(tmp_path / "state"), **env)


def _down(name: str, tmp_path) -> None:
    nppctl("down", "--name", name, "--purge", NPPCTL_STATE_DIR=str(tmp_path / "state"))


def _build_boxes(docker_client, image_id: str) -> list:
    """Containers made from the image ID itself, as nodeimage makes its build container."""
    return [c for c in docker_client.containers.list(all=True) if c.attrs["Config"]["Image"] == image_id]


def _apt_execs(docker_client, since: float, until: float) -> list[str]:
    events = docker_client.events(since=since, until=until, decode=True, filters={"type": "container"})
    return [e.get("Action", "") for e in events if "apt-get" in e.get("Action", "")]


def test_up_on_the_trixie_image_builds_the_python3_image_once(request, docker_client, node_image, tmp_path):
    base = _retag(request, docker_client, node_image, "np7-base:trixie")
    derived = nodeimage.derived_tag(base)
    assert derived == "nppctl-node:np7-base_trixie"
    for name in ("np7a", "np7b"):
        _down(name, tmp_path)  # an interrupted run's cluster would be kept, its image never asked for
        request.addfinalizer(lambda name=name: _down(name, tmp_path))

    started = time.time()
    first = _up("np7a", base, tmp_path)
    first_apt = _apt_execs(docker_client, started, time.time() + 1)
    assert first.returncode == 0, first.stderr
    assert f"{derived} (built: {base} + python3)" in first.stdout
    assert any("apt-get install -y --no-install-recommends python3" in a for a in first_apt), first_apt

    made = docker_client.images.get(derived)
    base_img = docker_client.images.get(base)
    assert made.labels[nodeimage.LABEL_BASE_ID] == base_img.id
    assert made.labels[nodeimage.LABEL_BASE] == base
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User"):  # the base's, not the build's sleeper
        assert (made.attrs["Config"].get(key) or None) == (base_img.attrs["Config"].get(key) or None), key
    assert made.attrs["Config"]["Labels"]["io.nppctl.test-node-image"] == "trixie"  # base labels kept
    listing = docker_client.containers.run(derived, ["ls", "-A", "/var/lib/apt/lists"], remove=True)
    assert listing.decode().strip() == ""  # lists emptied again
    assert not _build_boxes(docker_client, base_img.id)

    node = get_node("np7a", "worker")
    assert docker_client.containers.get(node.name).attrs["Config"]["Image"] == derived
    version = node_run(node, ["/usr/bin/python3", "--version"])
    assert version.code == 0 and version.stdout.startswith("Python 3.13"), version
    assert node_run(node, ["sh", "-c", "command -v ping"]).code != 0  # nppctl adds python3, nothing else
    assert node_run(node, ["ls", "/opt/cni/bin"]).stdout.split() == sorted(
        ["host-local", "loopback", "portmap", "ptp", "nppnet"])

    started = time.time()
    second = _up("np7b", base, tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"{derived} (cached: {base} + python3)" in second.stdout
    assert _apt_execs(docker_client, started, time.time() + 1) == []
    assert docker_client.images.get(derived).id == made.id


def test_a_bookworm_node_image_with_python3_is_used_as_it_is(docker_client, node_image_bookworm):
    assert nodeimage.has_python(node_image_bookworm, docker_client)
    chosen = nodeimage.ensure_python_image(node_image_bookworm, client=docker_client)
    assert (chosen.image, chosen.action) == (node_image_bookworm, "has python3")
    out = docker_client.containers.run(node_image_bookworm, ["python3", "--version"], remove=True)
    assert out.decode().startswith("Python 3.11")


def test_the_trixie_node_image_is_kinds(docker_client, node_image):
    """What the test image holds is what kindest/node v1.36.1 holds: no python3, no ping, 4 CNI plugins."""
    assert not nodeimage.has_python(node_image, docker_client)
    script = ("command -v ping; command -v python3; ls /opt/cni/bin; ls -A /var/lib/apt/lists; "
              "cat /etc/debian_version")
    out = docker_client.containers.run(node_image, ["sh", "-c", script], remove=True).decode().split()
    assert out[:5] == ["host-local", "loopback", "portmap", "ptp", "partial"] and out[5].startswith("13.")


def test_an_unreachable_mirror_is_one_line(request, docker_client, node_image, tmp_path):
    base = _retag(request, docker_client, node_image, "np7-base:offline")
    request.addfinalizer(lambda: _down("np7c", tmp_path))
    proxy = "http://127.0.0.1:9"  # the build container's own loopback: nothing listens, nothing leaves
    proxies = {k: proxy for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")}
    done = _up("np7c", base, tmp_path, **proxies)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line, done.stderr
    assert "apt cannot reach its mirror" in line and "needs the internet there" in line, line
    assert "127.0.0.1" in line  # apt's own words about what it could not reach
    with pytest.raises(Exception, match="No such image|not found"):
        docker_client.images.get(nodeimage.derived_tag(base))
    assert not docker_client.containers.list(all=True, filters={"label": "io.x-k8s.kind.cluster=np7c"})
    assert not _build_boxes(docker_client, docker_client.images.get(base).id)


def test_docker_provider_network_and_security_are_kinds(request, docker_client, python_node_image,
                                                        monkeypatch):
    net_name = "np7net"
    monkeypatch.setenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", net_name)
    provider = DockerProvider(docker_client)

    def cleanup():
        provider.delete("np7d")
        for net in docker_client.networks.list(names=[net_name]):
            net.remove()

    cleanup()
    request.addfinalizer(cleanup)
    provider.create(ClusterSpec(name="np7d", workers=0, image=python_node_image))
    net = docker_client.networks.get(net_name)
    bridge_mtu = (docker_client.networks.get("bridge").attrs.get("Options") or {}).get(MTU_OPTION)
    assert net.attrs["Options"].get(MTU_OPTION) == bridge_mtu
    subnets = [c["Subnet"] for c in (net.attrs.get("IPAM") or {}).get("Config") or []]
    if net.attrs.get("EnableIPv6"):
        assert ula_subnet(net_name) in subnets
    node = docker_client.containers.get("np7d-control-plane")
    assert net_name in node.attrs["NetworkSettings"]["Networks"]
    assert set(node.attrs["HostConfig"]["SecurityOpt"]) >= {"apparmor=unconfined", "seccomp=unconfined"}
    made = node.exec_run(["sh", "-c", "ip netns add np7t && ip netns del np7t"])
    assert made.exit_code == 0, made.output
    provider.delete("np7d")
    assert docker_client.networks.list(names=[net_name])  # the user's network: kept, as kind keeps it
