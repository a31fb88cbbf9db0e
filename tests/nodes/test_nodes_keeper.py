"""The keeper on its own: what it reads, what it restores, who owns cni0 and the masquerade.

A 2-node cluster made by the docker provider (np9k). First a student's plugin (the course's bash
plugin expects cni0 made beforehand: the node owns cni0 and the masquerade), then nppnet (which
makes both itself on ADD: the node hands them over). No test here runs nppctl to repair anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from nppctl import install, status
from nppctl.nodes import get_node, node_exec
from nppctl.nodeside import keeper
from nppctl.nodeside.nodenet import KEEPER_CONF, MASQ_COMMENT
from tests.nodes.conftest import make_cluster
from tests.nodes.np3 import BASH_PLUGIN

CLUSTER = "np9k"
SUBNETS = ["10.244.0.0/24", "10.244.1.0/24"]
DEADLINE = 30.0


def test_kernel_routes_are_what_ip_route_lists():
    listed = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "main"],
                                       capture_output=True, text=True, check=True).stdout)
    want = set()
    for r in listed:
        dst = "0.0.0.0/0" if r["dst"] == "default" else r["dst"] if "/" in r["dst"] else r["dst"] + "/32"
        want.add((dst, r.get("gateway"), r["dev"]))
    assert keeper.kernel_routes() == want


@pytest.fixture(scope="module")
def cluster(request, docker_client, python_node_image) -> str:
    name = make_cluster(request, docker_client, python_node_image, CLUSTER, workers=1)
    done = install.install(name, plugin=str(BASH_PLUGIN))
    assert all("keeper started" in r.changes for r in done), [r.changes for r in done]
    return name


def in_node(node: str, *argv: str) -> str:
    return node_exec(get_node(CLUSTER, node), list(argv))[1]


def wait_for(what: str, ok) -> None:
    deadline = time.monotonic() + DEADLINE
    while not ok():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.2)


def node_part_is_right(node: str, subnet: str, gateway: str, other_subnet: str, via: str) -> bool:
    routes = in_node(node, "ip", "-4", "route", "show")
    masq = in_node(node, "iptables", "-t", "nat", "-S", "POSTROUTING")
    argv = ["ip", "-4", "-o", "addr", "show", "dev", "cni0"]
    cni0 = node_exec(get_node(CLUSTER, node), argv, check=False)[1]
    return (f"{other_subnet} via {via} " in routes and f"inet {gateway} " in cni0
            and f"-s {subnet} ! -d 10.244.0.0/16" in masq and MASQ_COMMENT in masq)


def test_the_conflist_takes_the_nodes_mtu(cluster, docker_client):
    conf = json.loads(in_node("worker", "cat", "/etc/cni/net.d/09-np3bridge.conflist"))
    assert conf["plugins"][0]["mtu"] == int(in_node("worker", "cat", "/sys/class/net/eth0/mtu"))


def test_bridge_netfilter_is_on_where_the_host_has_it(cluster, docker_client):
    host_has = os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables")
    sysctls = docker_client.containers.get(f"{CLUSTER}-worker").attrs["HostConfig"]["Sysctls"]
    assert (sysctls.get("net.bridge.bridge-nf-call-iptables") == "1") == host_has
    if host_has:
        assert in_node("worker", "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
        assert not any("br_netfilter" in w for r in install.install(CLUSTER, plugin=str(BASH_PLUGIN))
                       for w in r.warnings)


def test_the_keeper_restores_what_is_deleted_by_hand(cluster):
    other = get_node(CLUSTER, "control-plane").address
    assert node_part_is_right("worker", SUBNETS[1], "10.244.1.1/24", SUBNETS[0], other)
    in_node("worker", "ip", "route", "del", SUBNETS[0])
    in_node("worker", "ip", "link", "del", "cni0")
    wait_for("route and cni0 back", lambda: node_part_is_right(
        "worker", SUBNETS[1], "10.244.1.1/24", SUBNETS[0], other))
    log = in_node("worker", "cat", "/var/log/nppctl-keeper.log")
    assert f"no route {SUBNETS[0]} via {other}" in log and "created bridge cni0" in log, log


def test_a_restarted_node_gets_cni0_masquerade_and_routes_back_by_itself(cluster, docker_client):
    other = get_node(CLUSTER, "control-plane").address
    docker_client.containers.get(f"{CLUSTER}-worker").restart(timeout=10)
    wait_for("the node's part after a restart", lambda: node_part_is_right(
        "worker", SUBNETS[1], "10.244.1.1/24", SUBNETS[0], other))
    assert all(s.ok and s.keeper and s.bridge_by == "node" for s in status.status(CLUSTER))


def test_a_changed_program_restarts_the_keeper_in_place(cluster):
    pid = in_node("worker", "cat", keeper.LOCK).strip()
    in_node("worker", "touch", keeper.PROGRAM)
    wait_for("the keeper restarted itself", lambda: "changed: restarting" in in_node(
        "worker", "cat", "/var/log/nppctl-keeper.log"))
    wait_for("one keeper again", lambda: status.status(CLUSTER)[1].keeper)
    assert in_node("worker", "cat", keeper.LOCK).strip() == pid  # execv: same process, new program


def test_nppnet_takes_cni0_and_the_masquerade_over(cluster):
    done = install.install(CLUSTER)
    for r in done:
        assert any(c.startswith(f"removed masquerade of {r.subnet}") for c in r.changes), r.changes
    for node in ("control-plane", "worker"):
        conf = json.loads(in_node(node, "cat", KEEPER_CONF))
        assert conf["make_bridge"] is False and conf["masquerade"] is False
        assert MASQ_COMMENT not in in_node(node, "iptables", "-t", "nat", "-S", "POSTROUTING")
    in_node("worker", "ip", "link", "del", "cni0")  # the keeper leaves nppnet's bridge to nppnet
    time.sleep(2 * keeper.PERIOD + 1)
    assert node_exec(get_node(CLUSTER, "worker"), ["ip", "link", "show", "cni0"], check=False)[0] != 0
    st = status.status(CLUSTER)[1]
    assert st.ok and st.bridge_by == "plugin" and st.bridge_pending, st
