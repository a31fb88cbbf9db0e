"""The lab on a real 3-node kind-shaped cluster: install, pods, ping, idempotence, logs, status, skel.

Tests run in file order and build on each other (one module-scoped cluster): install -> pods ->
second install -> logs -> check/del -> a route deleted by hand -> python3 missing -> skel -> PATH plugin.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from nppctl.access import agent, runtime
from nppctl.access.nodes import get_node, list_nodes, node_exec
from nppctl.errors import NppctlError
from nppctl.lab import install, logs, status
from tests.nodes.np3 import BASH_PLUGIN, nppctl

CLUSTER = "np3a"
SUBNETS = ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The CLI failed with exactly one `error: ...` line and no traceback; that line."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def pod_ip(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def ping(node: str, pod: str, address: str) -> subprocess.CompletedProcess:
    """`nppctl cni ping`: the agent's ICMP from the pod's namespace (kind's nodes have no ping)."""
    return nppctl("cni", "ping", "--name", CLUSTER, "--node", node, pod, address, "-c", "1")


def in_node(node: str, *argv: str) -> str:
    return node_exec(get_node(CLUSTER, node), list(argv))[1]


def test_install_all_on_three_nodes(cluster3):
    proc = nppctl("install", "--name", CLUSTER, "--all")
    assert proc.returncode == 0, proc.stderr
    for n in ("control-plane", "worker", "worker2"):
        assert f"{CLUSTER}-{n}" in proc.stdout
    assert proc.stdout.count("split") == 3  # no API: the pod CIDR split in node order
    got = status.status(CLUSTER)
    assert [s.node for s in got] == [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"]
    assert [s.subnet for s in got] == SUBNETS
    for s in got:
        assert s.ok, s
        assert s.plugin.split(",")[0] == "nppnet" and s.conflist == "09-nppnet.conflist"
        assert s.gateway == s.subnet.replace(".0/24", ".1/24")
    exe = in_node("worker", "stat", "-c", "%a", "/opt/cni/bin/nppnet").strip()
    assert exe == "755"



def test_status_and_install_read_at_80_columns(cluster3):
    """The tables of a real lab at COLUMNS=80: no line longer; --wide has every column."""
    import os
    import sys

    def at(columns: int, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
        return subprocess.run([sys.executable, "-m", "nppctl", *args, "--name", CLUSTER], capture_output=True,
                              text=True, env=env, timeout=120)

    for args in (["status"], ["install", "--all"]):
        done = at(80, *args)
        assert done.returncode == 0, done.stderr
        assert [ln for ln in done.stdout.splitlines() if len(ln) > 80] == [], done.stdout
        print(f"$ COLUMNS=80 nppctl {' '.join(args)} --name {CLUSTER}\n{done.stdout}")
    wide = at(200, "status", "--wide")
    assert wide.returncode == 0 and "09-nppnet.conflist" in wide.stdout and " python3 " in wide.stdout

def test_pod_on_each_worker_pings_across_workers_and_nodes(cluster3):
    ips = {}
    for node, pod in (("worker", "p1"), ("worker2", "p2")):
        proc = nppctl("cni", "add", "--name", CLUSTER, "--node", node, pod)
        assert proc.returncode == 0, proc.stderr
        ips[pod] = pod_ip(json.loads(proc.stdout))
    assert ips["p1"].startswith("10.244.1.") and ips["p2"].startswith("10.244.2.")
    to_p2 = ping("worker", "p1", ips["p2"])
    assert to_p2.returncode == 0 and "1 sent, 1 received, 0% packet loss" in to_p2.stdout, to_p2.stdout
    assert ping("worker2", "p2", ips["p1"]).returncode == 0
    control_plane = get_node(CLUSTER, "control-plane").address
    assert ping("worker", "p1", control_plane).returncode == 0  # pod to another node
    nobody = ping("worker", "p1", "10.244.1.77")  # an address nobody holds: no false pass
    assert nobody.returncode == 1 and "100% packet loss" in nobody.stdout, nobody.stdout
    missing = one_line_error(ping("worker", "p0x", ips["p2"]))
    assert "pod p0x has no network namespace" in missing and "nppctl cni add" in missing
    lo = nppctl("cni", "exec", "--name", CLUSTER, "--node", "worker", "p1", "ip", "-o", "link", "show", "lo")
    assert lo.returncode == 0 and "LOOPBACK,UP" in lo.stdout, lo.stdout + lo.stderr  # no `--` needed


def test_second_install_changes_nothing(cluster3):
    again = install.install(CLUSTER)
    assert [r.subnet for r in again] == SUBNETS
    assert [r.changes for r in again] == [[], [], []]
    proc = nppctl("install", "--name", CLUSTER, "--all")
    assert proc.returncode == 0 and proc.stdout.count("unchanged") == 3, proc.stdout


def test_logs_show_the_calls(cluster3):
    lines = [ln for ln in logs.read(CLUSTER, node="worker") if not ln.note]
    assert lines and all(ln.node == f"{CLUSTER}-worker" for ln in lines)
    adds = [ln for ln in lines if "ADD" in ln.text and "p1" in ln.text]
    assert adds and not any(ln.error for ln in adds), [ln.text for ln in lines]  # a good ADD: no red
    proc = nppctl("logs", "--name", CLUSTER, "--tail", "5")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^{CLUSTER}-worker2 \| .*p2", proc.stdout, re.M), proc.stdout
    kubelet = nppctl("logs", "--name", CLUSTER, "--node", "worker", "--kubelet")
    assert kubelet.returncode == 0, kubelet.stderr
    # a kind-built node has systemd's journalctl, but no kubelet journal without Kubernetes
    assert "journalctl -u kubelet: No journal files were found" in kubelet.stdout, kubelet.stdout


def test_logs_follow_prints_new_calls(cluster3):
    follower = subprocess.Popen(
        ["python3", "-m", "nppctl", "logs", "--name", CLUSTER, "--node", "worker", "--follow", "--tail", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.5)
        runtime.cni_call(CLUSTER, "worker", "p9", "ADD")
        runtime.cni_call(CLUSTER, "worker", "p9", "DEL")
        line = follower.stdout.readline()
        assert line.startswith(f"{CLUSTER}-worker | ") and "p9" in line, line
    finally:
        follower.kill()
        follower.wait()


def test_cni_check_then_del_removes_the_namespace(cluster3):
    assert nppctl("cni", "check", "--name", CLUSTER, "--node", "worker", "p1").returncode == 0
    assert "p1" in in_node("worker", "ip", "netns", "list")
    for _ in range(2):  # DEL twice: the second finds nothing and still succeeds
        proc = nppctl("cni", "del", "--name", CLUSTER, "--node", "worker", "p1")
        assert proc.returncode == 0, proc.stderr
    assert "p1" not in in_node("worker", "ip", "netns", "list").split()
    gone = nppctl("cni", "check", "--name", CLUSTER, "--node", "worker", "p1")
    assert "no network namespace" in one_line_error(gone)


def test_status_reports_a_route_deleted_by_hand(cluster3):
    worker2 = get_node(CLUSTER, "worker2")
    keeper = in_node("worker", "cat", "/run/nppctl-keeper.lock").strip()
    in_node("worker", "kill", "-STOP", keeper)  # paused: it would restore the route by itself
    try:
        _route_deleted_by_hand_is_reported_and_reinstalled(worker2)
    finally:
        in_node("worker", "kill", "-CONT", keeper)


def _route_deleted_by_hand_is_reported_and_reinstalled(worker2):
    in_node("worker", "ip", "route", "del", SUBNETS[2])
    proc = nppctl("status", "--name", CLUSTER, "--json")
    assert proc.returncode == 1, proc.stderr  # a node is unhealthy
    by_node = {s["node"]: s for s in json.loads(proc.stdout)}
    assert by_node[f"{CLUSTER}-worker"]["routes_missing"] == [f"{SUBNETS[2]} via {worker2.address}"]
    assert not by_node[f"{CLUSTER}-worker"]["ok"]
    assert by_node[f"{CLUSTER}-worker2"]["routes_ok"] and by_node[f"{CLUSTER}-control-plane"]["routes_ok"]
    table = nppctl("status", "--name", CLUSTER)
    assert f"missing {SUBNETS[2]} via {worker2.address}" in table.stdout, table.stdout
    repaired = install.install(CLUSTER)
    assert [r.changes for r in repaired] == [[], [f"route {SUBNETS[2]} via {worker2.address}"], []]
    assert all(s.ok for s in status.status(CLUSTER))


@pytest.mark.parametrize(
    "hide, says",
    [
        ("/usr/bin/python3", "has no python3"),
        ("/usr/lib/python3.13/json", "cannot import the standard library"),  # trixie's python3 (3.13)
    ],
)
def test_missing_python_stops_install_with_the_fix(cluster3, hide, says):
    node = get_node(CLUSTER, "control-plane")
    node_exec(node, ["mv", hide, hide + ".np3off"])
    try:
        line = one_line_error(nppctl("install", "--name", CLUSTER, "--worker", "control-plane"))
        assert says in line and "--ensure-python" in line and "apt-get" in line, line
        st = {s.node: s for s in status.status(CLUSTER)}[node.name]
        assert st.python3 is None and says in st.problem
    finally:
        node_exec(node, ["mv", hide + ".np3off", hide])
    assert install.install(CLUSTER, nodes=["control-plane"])[0].changes == []


def test_a_node_without_iptables_is_installed_with_a_warning(cluster3):
    node = get_node(CLUSTER, "control-plane")
    node_exec(node, ["mv", "/usr/sbin/iptables", "/usr/sbin/iptables.np3off"])
    try:
        proc = nppctl("install", "--name", CLUSTER, "--worker", "control-plane")
    finally:
        node_exec(node, ["mv", "/usr/sbin/iptables.np3off", "/usr/sbin/iptables"])
    assert proc.returncode == 0, proc.stderr
    assert "no iptables in this node: pod traffic leaving the cluster is not masqueraded" in proc.stdout


def test_skel_then_add_gives_the_skeletons_error_and_a_log_line(cluster3):
    proc = nppctl("install", "--name", CLUSTER, "--all", "--plugin", "skel")
    assert proc.returncode == 0, proc.stderr
    assert in_node("worker", "ls", "/etc/cni/net.d").split() == ["09-nppnet-skel.conflist"]
    before = len(logs.read(CLUSTER, node="worker"))
    line = one_line_error(nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "s1"))
    assert "plugin nppnet-skel ADD failed: code" in line, line
    after = logs.read(CLUSTER, node="worker")
    new_lines = [ln for ln in after[before:] if "s1" in ln.text]
    # the failed ADD (shown in red), then the DEL the runtime runs after every failed ADD
    assert [ln.error for ln in new_lines] == [True, False], [ln.text for ln in after]
    assert " ADD " in new_lines[0].text and " DEL " in new_lines[1].text, [ln.text for ln in new_lines]
    with pytest.raises(NppctlError, match="nppnet-skel ADD failed"):
        runtime.cni_call(CLUSTER, "worker", "s1", "ADD")


def test_a_students_own_plugin_file_installs_under_its_name_and_works(cluster3):
    proc = nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(BASH_PLUGIN))
    assert proc.returncode == 0, proc.stderr
    assert in_node("worker2", "ls", "/etc/cni/net.d").split() == ["09-np3bridge.conflist"]
    conf = json.loads(in_node("worker2", "cat", "/etc/cni/net.d/09-np3bridge.conflist"))
    assert conf["plugins"][0]["type"] == "np3bridge"
    ips = {}
    for node, pod in (("worker", "b1"), ("worker2", "b2")):
        ips[pod] = pod_ip(runtime.cni_call(CLUSTER, node, pod, "ADD"))
    (reply,) = agent.ping(get_node(CLUSTER, "worker"), [ips["b2"]], pod="b1")
    assert reply["ok"], reply
    assert [s.plugin for s in status.status(CLUSTER)] == ["np3bridge"] * 3


def test_cli_errors_are_one_line(cluster3):
    assert "cluster 'np3none' not found" in one_line_error(nppctl("status", "--name", "np3none"))
    assert "cluster 'np3none' not found" in one_line_error(nppctl("install", "--name", "np3none", "--all"))
    line = one_line_error(nppctl("cni", "add", "--name", CLUSTER, "--node", "worker7", "x1"))
    assert "node 'worker7' not found" in line and f"{CLUSTER}-worker2" in line
    assert "--worker NODE" in one_line_error(nppctl("install", "--name", CLUSTER))
    assert "single node" in one_line_error(
        nppctl("install", "--name", CLUSTER, "--all", "--subnet", "10.244.9.0/24"))
    assert "not usable as a network namespace" in one_line_error(
        nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "../x"))
    assert "neither nppnet, skel nor an existing file" in one_line_error(
        nppctl("install", "--name", CLUSTER, "--all", "--plugin", "/nonexistent/np3plugin"))
    no_engine = nppctl("status", "--name", CLUSTER, DOCKER_HOST="unix:///nonexistent/np3.sock")
    line = one_line_error(no_engine)
    assert "Docker engine not reachable at unix:///nonexistent/np3.sock: start dockerd" in line
    assert len(list_nodes(CLUSTER)) == 3


def test_subnets_from_the_api_and_from_subnet_rewire_every_node(cluster3):
    api = {f"{CLUSTER}-control-plane": "10.244.10.0/24", f"{CLUSTER}-worker": "10.244.11.0/24",
           f"{CLUSTER}-worker2": "10.244.12.0/24"}
    done = install.install(CLUSTER, node_subnets=api)
    assert [(r.subnet, r.source) for r in done] == [(v, "api") for v in api.values()]
    assert all(s.ok for s in status.status(CLUSTER))
    proc = nppctl("install", "--name", CLUSTER, "--worker", "worker2", "--subnet", "10.244.42.0/24")
    assert proc.returncode == 0 and "--subnet" in proc.stdout, proc.stderr + proc.stdout
    got = {s.node: s for s in status.status(CLUSTER)}
    assert got[f"{CLUSTER}-worker2"].subnet == "10.244.42.0/24"
    assert all(s.ok for s in got.values()), got  # the other nodes now route 10.244.42.0/24 to worker2
    assert got[f"{CLUSTER}-worker"].subnet == "10.244.11.0/24"  # untouched: its installed subnet kept
    routes = in_node("control-plane", "ip", "-4", "route", "show")
    for gone in ("10.244.1.0/24", "10.244.2.0/24", "10.244.12.0/24"):  # no node has these now
        assert gone not in routes, routes
    masq = in_node("worker2", "iptables", "-t", "nat", "-S", "POSTROUTING")
    assert "nppctl pod masquerade" not in masq  # nppnet owns the masquerade: the node made none
    runtime.cni_call(CLUSTER, "worker2", "m1", "ADD")
    masq = in_node("worker2", "iptables", "-t", "nat", "-S", "NPPNET-POSTROUTING")
    assert "-s 10.244.42.0/24 ! -d 10.244.0.0/16" in masq and "MASQUERADE" in masq, masq
