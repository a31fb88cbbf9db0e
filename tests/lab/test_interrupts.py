"""Ctrl-C at any instant of `up` leaves no container, network, link or file nppctl made, and nppctl
says "nothing left behind" only when that is so (issue 16). Also: a SIGINT inside the create section
of a throwaway container is held until the container is recorded, and `down` sweeps the throwaway
containers of an nppctl process that is gone.

Real Docker engine; the python3 image build really runs each time (its derived image is removed
first, and the base has an image ID of this module's own). Every cluster, network and image here is
named np16a*.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nppctl.access import nodeimage
from nppctl.cli.app import INTERRUPTED
from tests.conftest import sigint_default

REPO = Path(__file__).resolve().parents[2]
NAME = "np16a"
NET = "np16a-net"  # $KIND_EXPERIMENTAL_DOCKER_NETWORK: a network only these tests use
BASE = "np16a-base:trixie"


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def drop_image(docker_client, ref: str) -> None:
    try:
        docker_client.images.remove(ref, force=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


def drop_network(docker_client, name: str) -> None:
    for net in docker_client.networks.list(names=[name]):
        if net.name == name:
            net.reload()
            for cid in net.attrs.get("Containers") or {}:
                docker_client.api.remove_container(cid, force=True)
            net.remove()


@pytest.fixture(scope="module")
def own_base(docker_client, node_image):
    """The trixie node image (no python3) as np16a-base:trixie, under an image ID of its own (one label
    added), so the containers made from it are this module's alone."""
    box = docker_client.containers.create(node_image, name=f"np16a-base-{os.getpid()}")
    try:
        img = box.commit(repository=BASE.split(":")[0], tag=BASE.split(":")[1], changes=["LABEL np16a=base"])
    finally:
        box.remove(force=True)
    yield img.id
    drop_image(docker_client, nodeimage.derived_tag(BASE))
    drop_image(docker_client, BASE)


def host_links() -> dict[str, dict]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"]: link for link in json.loads(out)}


def network_ids(docker_client) -> set[str]:
    return {n["Id"] for n in docker_client.api.networks(names=[NET]) if n["Name"] == NET}


def links_of(network_ids: set[str]) -> list[str]:
    """Host links of those networks: their bridges (br-<ID[:12]>) and the veths on them."""
    bridges = {"br-" + i[:12] for i in network_ids}
    return sorted(k for k, v in host_links().items() if k in bridges or v.get("master") in bridges)


def ours(docker_client, pid: int, base_id: str) -> list[str]:
    """Containers this test's nppctl made: the cluster's, its throwaways (named for its pid), and any
    container of the base image or its derived image (the old build container had a random name)."""
    found = set(names(docker_client, label=f"io.x-k8s.kind.cluster={NAME}"))
    found |= {n for n in names(docker_client, name="nppctl-") if f"-{pid}-" in n}
    for image in (base_id, nodeimage.derived_tag(BASE)):
        try:
            found |= set(names(docker_client, ancestor=image))
        except Exception:  # noqa: BLE001 - the derived image does not exist
            pass
    return sorted(found)


def names(docker_client, **filters) -> list[str]:
    """Names of the containers FILTERS match (one listing: none vanishes between two calls)."""
    return [c["Names"][0].lstrip("/") for c in docker_client.api.containers(all=True, filters=filters)]


def exists(docker_client, name: str) -> bool:
    return bool(names(docker_client, name=f"^/{name}$"))


def after(seconds: float):
    return lambda dc, base, t0: time.monotonic() - t0 >= seconds


def once(first, then: float = 0.0):
    """FIRST's condition, then THEN seconds more."""
    seen: list[float] = []

    def check(dc, base, t0):
        if not seen and first(dc, base, t0):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= then

    return check


def build_box(dc, base, t0):
    return bool(names(dc, ancestor=base))


def derived_made(dc, base, t0):
    return bool(dc.images.list(name=nodeimage.derived_tag(BASE)))


def network_made(dc, base, t0):
    return bool(network_ids(dc))


def node(short: str):
    return lambda dc, base, t0: exists(dc, f"{NAME}-{short}")


INSTANTS = {  # from the start of `up` to its end: imports, checks, image probe and build, nodes, install
    "0.2s": after(0.2),
    "0.5s": after(0.5),
    "0.7s": after(0.7),
    "0.8s": after(0.8),
    "0.85s": after(0.85),
    "1.0s": after(1.0),
    "1.5s": after(1.5),
    "build-container-made": once(build_box),
    "apt-running": once(build_box, 3.0),
    "image-committed": once(derived_made),
    "network-made": once(network_made),
    "control-plane-made": once(node("control-plane")),
    "worker-made": once(node("worker")),
    "installing": once(node("worker"), 1.0),
}


@pytest.mark.parametrize("when", list(INSTANTS))
def test_sigint_at_any_instant_of_up_leaves_nothing_and_says_so(request, lab, docker_client, own_base, when):
    lab.clusters.append(NAME)
    lab.env.update(KIND_EXPERIMENTAL_DOCKER_NETWORK=NET, PYTHONPATH=str(REPO), NO_COLOR="1")
    drop_network(docker_client, NET)
    drop_image(docker_client, nodeimage.derived_tag(BASE))  # the python3 build runs again
    request.addfinalizer(lambda: drop_network(docker_client, NET))
    nets: set[str] = set()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nppctl", "up", "--provider", "docker", "--workers", "1", "--name", NAME,
         "--image", BASE],
        cwd=lab.cwd, env=lab.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=sigint_default,
    )
    request.addfinalizer(lambda: [docker_client.api.remove_container(n, force=True)
                                  for n in ours(docker_client, proc.pid, own_base)])
    try:
        condition = INSTANTS[when]
        while not condition(docker_client, own_base, started):
            nets |= network_ids(docker_client)
            assert proc.poll() is None, f"up ended before {when}: {proc.communicate()}"
            assert time.monotonic() - started < 600, f"{when} never came"
            time.sleep(0.01)
        assert proc.poll() is None, f"up ended before {when}: {proc.communicate()}"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    print(f"SIGINT at {sent - started:.2f}s ({when}) -> exit {proc.returncode} after {took:.2f}s:",
          err.strip())
    lines = err.strip().splitlines()
    early = err.startswith("Fatal Python error: init_import_site")  # before Python itself was up:
    assert early or proc.returncode == 130, (out, err)  # no code of nppctl's ran (a loaded machine)
    assert early or (len(lines) == 1 and lines[0].startswith("error: interrupted")), (out, err)
    left = ours(docker_client, proc.pid, own_base)
    assert left == [], (left, err)
    assert not network_made(docker_client, own_base, 0), err
    assert links_of(nets | network_ids(docker_client)) == [], err
    assert files_under(lab.cwd) == [], err
    # Before its first step `up` has made nothing and says only that it was interrupted; from the
    # first step on it says what it left, here (all of it removed) that nothing is left.
    assert early or lines[0].endswith(("nothing left behind", "nothing was done")) or (
        lines[0] == f"error: {INTERRUPTED}"), err


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import docker
    from nppctl.access import throwaway

    real = docker.from_env()

    class Containers:  # the real engine; a SIGINT comes while the create call is under way
        def create(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            box = real.containers.create(*args, **kwargs)
            print("created", box.name, flush=True)
            return box

    class Api:  # the real engine; a SIGINT comes while the remove call is under way
        def remove_container(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return real.api.remove_container(*args, **kwargs)

    class Client:
        containers = Containers() if sys.argv[1] == "in-create" else real.containers
        api = Api() if sys.argv[1] == "in-remove" else real.api

    try:
        with throwaway.container(Client(), "probe", sys.argv[2], command=["sleep", "60"]) as box:
            print("inside", box.name, flush=True)
            if sys.argv[1] == "gone":
                os._exit(0)  # as a kill -9: no clean-up runs
            if sys.argv[1] != "in-remove":
                time.sleep(60)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
""")


def child(mode: str, image: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, image], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default)


def test_sigint_during_the_create_call_is_held_until_the_container_is_recorded_then_it_is_removed(
        docker_client, node_image):
    proc = child("in-create", node_image)
    out, err = proc.communicate(timeout=60)
    words = out.split()
    assert words[:1] == ["created"] and words[2:] == ["KeyboardInterrupt"], (out, err)  # the body never ran
    assert words[1].startswith(f"nppctl-probe-{proc.pid}-"), out
    assert not exists(docker_client, words[1])


def test_sigint_during_the_removal_is_raised_once_the_container_is_gone(docker_client, node_image):
    """A Ctrl-C while the block's container is being removed (e.g. just after the python3 image was
    committed) neither stops the removal nor is lost: the command still ends interrupted."""
    proc = child("in-remove", node_image)
    out, err = proc.communicate(timeout=60)
    words = out.split()
    assert words[:1] == ["inside"] and words[2:] == ["KeyboardInterrupt"], (out, err)
    assert not exists(docker_client, words[1])


def test_sigint_in_the_block_removes_the_container(docker_client, node_image):
    proc = child("wait", node_image)
    try:
        line = proc.stdout.readline().split()
        assert line[:1] == ["inside"], proc.communicate()
        box = docker_client.containers.get(line[1])
        assert box.labels["io.nppctl.access.throwaway"] == "probe"
        assert box.labels["io.nppctl.owner-pid"] == str(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out.strip() == "KeyboardInterrupt", (out, err)
    assert not exists(docker_client, line[1])


def test_down_removes_the_throwaways_of_an_nppctl_that_is_gone_with_one_line(lab, docker_client, node_image):
    proc = child("gone", node_image)
    out, err = proc.communicate(timeout=60)
    name = out.split()[1]
    try:
        assert exists(docker_client, name), (out, err)  # its owner died without removing it
        lab.env["PYTHONPATH"] = str(REPO)
        done = lab.run("down", "--name", "np16a-none")
        assert "left by an nppctl that is gone: " in done.stdout and name in done.stdout, done.stdout
        assert not exists(docker_client, name)
        again = lab.run("down", "--name", "np16a-none")
        assert name not in again.stdout, again.stdout
    finally:
        if exists(docker_client, name):
            docker_client.api.remove_container(name, force=True)


@pytest.mark.parametrize("to", ["group", "nppctl"])
def test_ctrl_c_during_kind_create_cluster_leaves_nothing_and_says_so(lab, kind_world, docker_client, to):
    """Ctrl-C in a terminal: SIGINT to nppctl and the kind it runs (one process group; kind's `docker
    run` dies with it and the engine lists the node for a few seconds before it can remove it), or
    SIGINT to nppctl alone (a `kill -INT`: kind must not go on creating)."""
    name = "np16ak"
    lab.clusters.append(name)
    lab.env.update(PYTHONPATH=str(REPO), NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nppctl", "up", "--name", name, "--workers", "0", "--image", lab.kind_image],
        cwd=lab.cwd, env=lab.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=sigint_default,
    )
    try:
        started = time.monotonic()
        while not exists(docker_client, f"{name}-control-plane"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - started < 300, "kind made no node"
            time.sleep(0.02)
        time.sleep(1.0)  # kind is starting the node
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    lines = err.strip().splitlines()
    print(f"kind ({to}): {err.strip()}")
    assert proc.returncode == 130, (out, err)
    assert lab.containers(name) == [], err
    assert files_under(lab.cwd) == [], err
    assert len(lines) == 1 and lines[0] == "error: interrupted; nothing left behind", (out, err)
