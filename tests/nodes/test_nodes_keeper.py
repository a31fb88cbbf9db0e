"""The keeper on its own: what it reads, what it restores, who owns cni0 and the masquerade.

A 2-node cluster made by the docker provider (np9k). First a student's plugin (the course's bash
plugin expects cni0 made beforehand: the node owns cni0 and the masquerade), then nppnet (which
makes both itself on ADD: the node hands them over). No test here runs nppctl to repair anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from nppctl.access.nodes import get_node, node_exec
from nppctl.lab import install, installplan, status
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


KEEPER_AT = """
import sys
from nppctl.nodeside import keeper
keeper.LOCK, keeper.LOG = sys.argv[1], sys.argv[2]
if sys.argv[3] == "probe":
    while True:
        keeper.running()
print(keeper.keep({"config": sys.argv[3], "period": 0.05}))
"""


def _keeper_process(tmp_path, what: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", KEEPER_AT, str(tmp_path / "lock"), str(tmp_path / "log"), what]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def test_a_keeper_started_while_install_probes_stays_running(tmp_path):
    """install's probe (keeper.running(), here in a tight loop) only looks at the keeper's lock:
    every keeper started meanwhile gets it and stays; a second one at once refuses, and the probe
    sees the keeper exactly while it runs."""
    prober = _keeper_process(tmp_path, "probe")
    try:
        time.sleep(0.3)
        exited = []
        for _ in range(15):
            one = _keeper_process(tmp_path, str(tmp_path / "no-config.json"))
            time.sleep(0.3)
            if one.poll() is not None:
                exited.append(one.stdout.read().strip())
            else:
                assert _probe_at(tmp_path) is True
                second = _keeper_process(tmp_path, str(tmp_path / "no-config.json"))
                assert "another keeper holds" in second.communicate(timeout=10)[0]
            one.kill()
            one.wait()
        assert exited == []
        assert _probe_at(tmp_path) is False
    finally:
        prober.kill()
        prober.wait()


def _probe_at(tmp_path) -> bool:
    code = "import sys; from nppctl.nodeside import keeper as k; k.LOCK = sys.argv[1]; print(k.running())"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lock")], capture_output=True, text=True)
    return {"True": True, "False": False}[out.stdout.strip()]


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


def test_a_replaced_keeper_program_is_renamed_into_place(cluster):
    """install writes the keeper's program beside its place and renames it over it (never a half
    file for a keeper re-executing itself): a new inode, nothing left beside, the same keeper."""
    pid = in_node("worker", "cat", keeper.LOCK).strip()

    def restarts() -> int:
        return in_node("worker", "cat", "/var/log/nppctl-keeper.log").count("changed: restarting")

    before = restarts()
    in_node("worker", "sh", "-c", f"echo '# changed by hand' >> {keeper.PROGRAM}")
    wait_for("the keeper restarted on the hand's change", lambda: restarts() >= before + 1)
    inode = in_node("worker", "stat", "-c", "%i", keeper.PROGRAM).strip()
    done = install.install(CLUSTER, nodes=["worker"])
    assert f"wrote {keeper.PROGRAM}" in done[0].changes, done[0].changes
    assert in_node("worker", "stat", "-c", "%i", keeper.PROGRAM).strip() != inode
    beside = installplan.beside(keeper.PROGRAM)
    assert node_exec(get_node(CLUSTER, "worker"), ["test", "-e", beside], check=False)[0] != 0
    wait_for("the keeper restarted itself (twice: the hand's change, then install's)",
             lambda: restarts() >= before + 2)
    wait_for("one keeper again", lambda: status.status(CLUSTER)[1].keeper)
    assert in_node("worker", "cat", keeper.LOCK).strip() == pid


def test_another_plugin_removes_nppnets_chains_and_jumps(cluster):
    """nppnet (installed by the test before) makes its chains at its first ADD; installing another
    plugin removes them, with the jumps to them."""
    from nppctl.access import runtime

    runtime.cni_call(CLUSTER, "worker", "np9pod", "ADD")
    runtime.cni_call(CLUSTER, "worker", "np9pod", "DEL")
    assert "NPPNET-FORWARD" in in_node("worker", "iptables", "-w", "-S", "FORWARD")
    done = install.install(CLUSTER, plugin=str(BASH_PLUGIN))
    worker = next(r for r in done if r.node == f"{CLUSTER}-worker")
    assert "removed nppnet's chain NPPNET-FORWARD (filter) and its jumps" in worker.changes, worker.changes
    assert "NPPNET" not in in_node("worker", "iptables-save")
