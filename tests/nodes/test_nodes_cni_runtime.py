"""`nppctl cni` plays the runtime as the spec and containerd do (issue 9, runtime emulation).

One 2-node kind-shaped cluster; each test lays a conflist that sorts before nppctl's own
(00-*.conflist) with a spy plugin (bash + jq, both in kindest/node) that records what it was given,
and removes it afterwards. Capability arguments become runtimeConfig and `capabilities` never
reaches a plugin; a failed ADD is followed by DEL of the whole chain; CHECK is refused below 0.4.0
and skipped under disableCheck; cache files of different pod/interface pairs never collide; the
reference portmap publishes a pod's port from `cni add --port`.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from nppctl.access import runtime
from nppctl.access.nodes import get_node, node_exec, node_run, put_files
from nppctl.errors import NppctlError
from tests.nodes.np3 import nppctl

CLUSTER = "np3r"
TEST_CONF = "/etc/cni/net.d/00-runtime-test.conflist"
SPY = """#!/bin/bash
# Records the configuration it got per command; ADD passes prevResult on (a chained plugin's least).
conf=$(cat)
printf '%s' "$conf" >"/tmp/spy-$CNI_COMMAND-$CNI_CONTAINERID.json"
if [ "$CNI_COMMAND" = ADD ]; then jq -c .prevResult <<<"$conf"; fi
exit 0
"""
FAIL_ON_ADD = """#!/bin/bash
# Fails every ADD with a CNI error; DEL succeeds and is recorded.
conf=$(cat)
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","code":999,"msg":"np3r-fail refuses every ADD"}'; exit 1
fi
printf '%s' "$conf" >"/tmp/fail-$CNI_COMMAND-$CNI_CONTAINERID.json"
exit 0
"""


@pytest.fixture(scope="module")
def lab(cluster3):
    proc = nppctl("install", "--name", CLUSTER, "--all")
    assert proc.returncode == 0, proc.stderr
    worker = get_node(CLUSTER, "worker")
    put_files(worker, {"/opt/cni/bin/np3r-spy": (SPY.encode(), 0o755),
                       "/opt/cni/bin/np3r-fail": (FAIL_ON_ADD.encode(), 0o755)})
    return worker


def nppnet_entry(worker) -> dict:
    code, text = node_exec(worker, ["cat", "/etc/cni/net.d/09-nppnet.conflist"])
    return json.loads(text)["plugins"][0]


@pytest.fixture
def conflist(lab):
    """Lay a test conflist (sorting first) in the worker; removed, with its pods, afterwards."""
    pods = []

    def lay(plugins: list[dict], version: str = "1.0.0", **extra) -> None:
        conf = {"cniVersion": version, "name": "np3r-test", "plugins": plugins, **extra}
        put_files(lab, {TEST_CONF: (json.dumps(conf).encode(), 0o644)})

    lay.pods = pods
    yield lay
    for pod, ifname in pods:
        try:
            runtime.cni_call(CLUSTER, "worker", pod, "DEL", ifname=ifname)
        except NppctlError:
            pass
    node_exec(lab, ["rm", "-f", TEST_CONF], check=False)
    node_exec(lab, ["bash", "-c", "rm -f /tmp/spy-* /tmp/fail-*"], check=False)


def spied(worker, command: str, pod: str) -> dict | None:
    res = node_run(worker, ["cat", f"/tmp/spy-{command}-{pod}.json"])
    return json.loads(res.stdout) if res.code == 0 else None


def test_capabilities_become_runtime_config_and_are_never_passed(lab, conflist):
    spy = {"type": "np3r-spy", "capabilities": {"portMappings": True, "bandwidth": False}}
    conflist([nppnet_entry(lab), spy])
    conflist.pods.append(("cap1", "eth0"))
    result = runtime.cni_call(CLUSTER, "worker", "cap1", "ADD", ports=["8081:81/udp"], rate="1M")
    got = spied(lab, "ADD", "cap1")
    assert "capabilities" not in got, got
    # only what the plugin declares: portMappings, not bandwidth (declared false)
    assert got["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8081, "containerPort": 81, "protocol": "udp"}]
    }, got
    assert got["prevResult"]["ips"] == result["ips"]
    assert got["name"] == "np3r-test" and got["cniVersion"] == "1.0.0"
    # DEL reuses ADD's capability arguments and hands the cached result over as prevResult
    runtime.cni_call(CLUSTER, "worker", "cap1", "DEL")
    deleted = spied(lab, "DEL", "cap1")
    assert deleted["runtimeConfig"] == got["runtimeConfig"] and deleted["prevResult"] == result
    assert "capabilities" not in deleted


def test_a_failed_add_is_followed_by_del_of_the_whole_chain(lab, conflist):
    entry = nppnet_entry(lab)
    conflist([entry, {"type": "np3r-fail"}])
    before = node_exec(lab, ["ip", "-o", "link", "show"])[1].count("veth")
    proc = nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "fail1")
    assert proc.returncode == 1 and "np3r-fail refuses every ADD" in proc.stderr, proc.stderr
    assert "ran DEL of the whole chain" in proc.stderr
    # the failing plugin saw DEL after its failed ADD; nppnet released what its ADD took
    assert node_run(lab, ["test", "-s", "/tmp/fail-DEL-fail1.json"]).code == 0
    assert node_exec(lab, ["ip", "-o", "link", "show"])[1].count("veth") == before
    reserved = node_run(lab, ["grep", "-rl", "fail1", entry["dataDir"]])
    assert reserved.stdout.strip() == "", reserved.stdout
    assert node_run(lab, ["test", "-e", "/var/run/netns/fail1"]).code != 0


def test_check_is_refused_below_0_4_0_and_skipped_with_disable_check(lab, conflist):
    entry = nppnet_entry(lab)
    conflist([entry, {"type": "np3r-spy"}], version="0.3.1")
    conflist.pods.append(("old1", "eth0"))
    runtime.cni_call(CLUSTER, "worker", "old1", "ADD")
    with pytest.raises(NppctlError, match="does not support the CHECK command"):
        runtime.cni_call(CLUSTER, "worker", "old1", "CHECK")
    assert spied(lab, "CHECK", "old1") is None
    runtime.cni_call(CLUSTER, "worker", "old1", "DEL")
    conflist.pods.clear()

    conflist([entry, {"type": "np3r-spy"}], disableCheck=True)
    conflist.pods.append(("dis1", "eth0"))
    runtime.cni_call(CLUSTER, "worker", "dis1", "ADD")
    answer = runtime.cni_call(CLUSTER, "worker", "dis1", "CHECK")
    assert "disableCheck" in answer["skipped"]
    assert spied(lab, "CHECK", "dis1") is None  # no plugin called


def test_cache_files_of_different_pods_and_interfaces_never_collide(lab, conflist):
    conflist([nppnet_entry(lab)])
    # with "<pod>-<ifname>" both pairs would share the file p-eth0-eth0.json
    conflist.pods += [("p-eth0", "eth0"), ("p", "eth0-eth0")]
    first = runtime.cni_call(CLUSTER, "worker", "p-eth0", "ADD")
    second = runtime.cni_call(CLUSTER, "worker", "p", "ADD", ifname="eth0-eth0")
    assert first["ips"] != second["ips"]
    runtime.cni_call(CLUSTER, "worker", "p-eth0", "DEL")
    runtime.cni_call(CLUSTER, "worker", "p", "CHECK", ifname="eth0-eth0")  # its cache is intact


def test_a_second_add_of_an_attached_pod_is_refused_and_keeps_it(lab, conflist):
    conflist([nppnet_entry(lab)])
    conflist.pods.append(("twice", "eth0"))
    runtime.cni_call(CLUSTER, "worker", "twice", "ADD")
    with pytest.raises(NppctlError, match="attached already"):
        runtime.cni_call(CLUSTER, "worker", "twice", "ADD")
    runtime.cni_call(CLUSTER, "worker", "twice", "CHECK")


def test_bad_capability_arguments_are_one_line_errors(lab):
    for args, says in (
        (["--port", "80"], "HOST:CONTAINER"),
        (["--port", "70000:80"], "1-65535"),
        (["--bandwidth", "fast"], "RATE[/BURST]"),
    ):
        proc = nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "bad1", *args)
        assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert node_run(lab, ["test", "-e", "/var/run/netns/bad1"]).code != 0


SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(4); s.settimeout(60)
c, peer = s.accept(); c.sendall(b"np3r-pod-says-hello " + peer[0].encode()); c.close()
"""


def test_port_from_cni_add_reaches_a_server_in_the_pod_through_portmap(lab, conflist):
    """The installed conflist (nppnet then the reference portmap, capabilities portMappings):
    a TCP connection from this host to the node's port 8080 reaches port 80 in the pod."""
    conflist.pods.append(("web1", "eth0"))
    node_exec(lab, ["rm", "-f", TEST_CONF])  # the installed 09-nppnet.conflist, as install wrote it
    runtime.cni_call(CLUSTER, "worker", "web1", "ADD", ports=["8080:80"])
    exec_id = lab.container.client.api.exec_create(
        lab.container.id, ["ip", "netns", "exec", "web1", "python3", "-c", SERVER]
    )["Id"]
    lab.container.client.api.exec_start(exec_id, detach=True)
    reply = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not reply:
        try:
            with socket.create_connection((lab.address, 8080), timeout=2) as s:
                reply = s.recv(100)
        except OSError:
            time.sleep(0.2)
    assert reply.startswith(b"np3r-pod-says-hello"), reply
    rules = node_exec(lab, ["iptables", "-t", "nat", "-S"])[1]
    assert "--dport 8080" in rules and "DNAT" in rules
    runtime.cni_call(CLUSTER, "worker", "web1", "DEL")
    conflist.pods.clear()
    assert "--dport 8080" not in node_exec(lab, ["iptables", "-t", "nat", "-S"])[1]  # portmap's DEL


def test_bandwidth_from_cni_add_reaches_the_reference_bandwidth_plugin(lab, conflist, reference_plugins):
    data = (reference_plugins / "bandwidth").read_bytes()
    put_files(lab, {"/opt/cni/bin/bandwidth": (data, 0o755)})
    entry = nppnet_entry(lab)
    conflist([entry, {"type": "bandwidth", "capabilities": {"bandwidth": True}}])
    conflist.pods.append(("slow1", "eth0"))
    result = runtime.cni_call(CLUSTER, "worker", "slow1", "ADD", rate="8M/1M")
    host_veth = next(i["name"] for i in result["interfaces"] if i["name"].startswith("veth"))
    qdisc = node_exec(lab, ["tc", "qdisc", "show", "dev", host_veth])[1]
    assert "tbf" in qdisc and "8Mbit" in qdisc, qdisc
