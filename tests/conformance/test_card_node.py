"""`plugin test --node`: the card inside a lab node (docker provider), its installed conflist, its pods
removed afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conformance.conftest import CONFS, REPO, by_result, run_card

CLUSTER = "np11c"


def _nppctl(cwd, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "nppctl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def lab_node(docker_client, node_image, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("np11lab")
    _nppctl(cwd, "down", "--name", CLUSTER, "--purge")
    up = _nppctl(
        cwd, "up", "--provider", "docker", "--workers", "1", "--image", node_image, "--name", CLUSTER
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        worker = docker_client.containers.get(f"{CLUSTER}-worker")
        # kindest/node's own /opt/cni/bin: host-local, loopback, ptp, portmap (nothing copied in)
        listed = worker.exec_run(["ls", "/opt/cni/bin"]).output.decode().split()
        assert {"host-local", "loopback", "ptp", "portmap"} <= set(listed), listed
        yield worker
    finally:
        _nppctl(cwd, "down", "--name", CLUSTER, "--purge")


def _node_state(container) -> tuple:
    """Namespaces, links but the bridge (nppnet makes cni0 at its first ADD and keeps it, as the
    reference bridge plugin does), and the card's scratch folder."""
    netns = container.exec_run(["ip", "netns", "list"]).output.decode()
    links = container.exec_run(["ip", "-o", "link", "show"]).output.decode()
    links = "\n".join(ln for ln in links.splitlines() if ": cni0:" not in ln)
    scratch = container.exec_run(["ls", "/var/lib/nppctl"]).output.decode()
    return netns, len(links.splitlines()), scratch


def test_card_of_the_installed_nppnet_in_a_node(lab_node):
    before = _node_state(lab_node)
    done, card = run_card("nppnet", "--node", "worker", "--name", CLUSTER, "--json")
    assert card is not None, done.stdout + done.stderr
    assert card["where"] == f"node {CLUSTER}-worker"
    assert card["cniVersion"] == "1.0.0" and card["chain"] == ["nppnet", "portmap"]  # the installed one
    results = by_result(card)
    assert results["skip"] == {"gc", "status"}
    assert results["fail"] == set(), card  # nppnet makes cni0 itself, with a fixed MAC
    assert _node_state(lab_node) == before


def test_card_of_a_copied_executable_in_a_node(lab_node):
    """The host's ptp is copied into the node and run there, chained with the node's own portmap."""
    before = _node_state(lab_node)
    done, card = run_card(
        "/usr/lib/cni/ptp", "--conf", str(CONFS / "ptp-host-local.conflist"),
        "--node", "worker", "--name", CLUSTER, "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert by_result(card)["fail"] == set(), card
    assert _node_state(lab_node) == before


def test_a_1_1_0_card_in_a_node_leaves_its_real_pods_on_the_network(lab_node, tmp_path):
    """The installed conflist's nppnet at cniVersion 1.1.0 (so the card runs GC, with only its own
    pod listed; the node's portmap stops at 1.0.0): the card uses a network, bridge, store and
    subnet of its own, so the node's pods keep their veths, reservations and each other."""
    from nppctl.access import agent, runtime

    installed = json.loads(lab_node.exec_run(["cat", "/etc/cni/net.d/09-nppnet.conflist"]).output)
    conf = tmp_path / "installed-1.1.0.conflist"
    conf.write_text(json.dumps(dict(installed, cniVersion="1.1.0", plugins=installed["plugins"][:1])))
    pods = {}
    try:
        for pod in ("np11p1", "np11p2"):
            pods[pod] = runtime.cni_call(CLUSTER, "worker", pod, "ADD")["ips"][0]["address"].split("/")[0]
        before = _node_state(lab_node)
        done, card = run_card("nppnet", "--conf", str(conf), "--node", "worker", "--name", CLUSTER, "--json")
        assert card is not None, done.stdout + done.stderr
        results = by_result(card)
        assert results["fail"] == set() and {"gc", "status"} <= results["pass"], card
        replies = agent.pod_ping(CLUSTER, "worker", "np11p1", [pods["np11p2"]])
        assert all(r.get("ok") for r in replies), replies
        assert _node_state(lab_node) == before
        assert card["network"] != installed["name"]
    finally:
        for pod in pods:
            runtime.cni_call(CLUSTER, "worker", pod, "DEL")


def _card_leftovers(container) -> list[str]:
    """What a card could leave in the node: its pods' netns, its bridge, rules of its subnet, scratch."""
    netns = container.exec_run(["ip", "netns", "list"]).output.decode().split()
    links = container.exec_run(["ip", "-o", "link", "show"]).output.decode()
    rules = container.exec_run(["iptables-save"]).output.decode()
    listed = container.exec_run(["ls", "/var/lib/nppctl/conformance"])
    scratch = listed.output.decode().split() if listed.exit_code == 0 else []
    return ([f"netns {n}" for n in netns if n.startswith("nppt-")]
            + [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines() if ": npptbr" in ln]
            + [f"rule {r}" for r in rules.splitlines() if "198.18.99." in r]
            + [f"scratch {s}" for s in scratch])


def test_what_a_cut_off_card_left_is_swept_by_the_next(lab_node):
    """A card killed mid-way in a node (its engine gone, or its work killed) ran no clean-up: its pods,
    bridge and scratch stay, and the next card would collide on the card's fixed pod names."""
    for argv in (["ip", "netns", "add", "nppt-add"], ["ip", "netns", "add", "nppt-par0"],
                 ["ip", "link", "add", "npptbr99999", "type", "bridge"],
                 ["mkdir", "-p", "/var/lib/nppctl/conformance/99999/data"]):
        assert lab_node.exec_run(argv).exit_code == 0, argv
    planted = {"netns nppt-add", "netns nppt-par0", "link npptbr99999", "scratch 99999"}
    assert planted <= set(_card_leftovers(lab_node))
    done, card = run_card("nppnet", "--node", "worker", "--name", CLUSTER, "--json")
    assert card is not None and "error" not in card, done.stdout + done.stderr
    assert "add" in by_result(card)["pass"], card
    assert _card_leftovers(lab_node) == []  # the planted ones, and the card's own rules (-s ADDRESS/32 too)


def test_ctrl_c_during_a_card_in_a_node_leaves_nothing_there(lab_node):
    import signal
    import time

    from tests.conftest import sigint_default

    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "nppctl", "plugin", "test", "nppnet", "--node", "worker",
                             "--name", CLUSTER], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    try:
        deadline = time.monotonic() + 120
        before = set(_card_leftovers(lab_node))
        while not any(x.startswith("netns nppt-") and x not in before for x in _card_leftovers(lab_node)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert _card_leftovers(lab_node) == [], err
