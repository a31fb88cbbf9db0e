"""The proof `up` and `install` give before they say a plugin works (nppctl/lab/proof.py): a throwaway
pod through each node's first config, on a real 3-node kind-shaped cluster (docker provider).

In file order: nppnet proves itself on every node; a user's plugin that fails its ADD is named with its
own message; one whose ADD gives no address is caught; nothing of a proof stays in a node.
"""

from __future__ import annotations

import os
import stat

from nppctl.access.nodes import get_node, node_exec
from nppctl.lab import install, proof

CLUSTER = "np3proof"
NODES = [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"]

# VERSION answered (install checks it on this host); ADD fails with an error object of its own.
FAILING = """#!/bin/bash
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}' ;;
ADD) echo '{"cniVersion":"1.0.0","code":11,"msg":"student plugin: no address left in the pool"}'; exit 1 ;;
*) exit 0 ;;
esac
"""
# ADD "succeeds" with a result that gives the pod nothing.
EMPTY = """#!/bin/bash
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}' ;;
ADD) echo '{"cniVersion":"1.0.0","interfaces":[],"ips":[]}' ;;
*) exit 0 ;;
esac
"""


def leftovers(node: str) -> str:
    """What a proof could leave in NODE: its netns, a veth on cni0, a cached ADD result."""
    n = get_node(CLUSTER, node)
    _, netns = node_exec(n, ["ip", "netns", "list"], check=False)
    _, cache = node_exec(n, ["sh", "-c", "ls /var/lib/cni/nppctl/results 2>/dev/null || true"], check=False)
    return "\n".join(line for line in (netns + cache).splitlines() if proof.POD in line)


def write_plugin(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return str(path)


def test_nppnet_proves_itself_on_every_node(cluster3):
    done = install.install(CLUSTER)
    assert all(r.outcome != "failed" for r in done), done
    got = proof.prove(CLUSTER)
    assert [p.node for p in got] == NODES
    for p in got:
        assert p.ok, p
        assert p.address and p.address.startswith("10.244."), p
        assert [s.split()[0] for s in p.steps] == ["ADD", "pod→node", "CHECK", "DEL"], p.steps
    assert proof.failure_line(CLUSTER, got) is None
    assert all(not leftovers(n) for n in NODES)
    for p in got:  # the node answered the pod: its neighbour entry for the address went with the pod
        address = p.address.split("/")[0]
        _, neigh = node_exec(get_node(CLUSTER, p.node), ["ip", "neigh", "show", "to", address])
        assert neigh.strip() == "", (p.node, neigh)
    again = proof.prove(CLUSTER)  # a second proof runs the same
    assert all(p.ok for p in again), again


def test_a_plugin_whose_add_fails_is_named_with_its_own_message(cluster3, tmp_path):
    path = write_plugin(tmp_path, "studentnet", FAILING)
    install.install(CLUSTER, nodes=["worker"], plugin=path)
    got = proof.prove(CLUSTER, ["worker"])
    assert len(got) == 1 and not got[0].ok
    assert got[0].error.startswith("ADD failed:") and "no address left in the pool" in got[0].error, got[0]
    line = proof.failure_line(CLUSTER, got)
    assert f"{CLUSTER}-worker: ADD failed" in line and "nppctl calls" in line, line
    assert not leftovers(f"{CLUSTER}-worker")


def test_an_add_that_gives_no_address_is_not_a_working_plugin(cluster3, tmp_path):
    path = write_plugin(tmp_path, "emptynet", EMPTY)
    install.install(CLUSTER, nodes=["worker2"], plugin=path)
    got = proof.prove(CLUSTER, ["worker2"])
    assert not got[0].ok and "no IPv4 address" in got[0].error, got[0]
    assert not leftovers(f"{CLUSTER}-worker2")


def test_a_proof_left_by_an_interrupted_run_is_removed_first(cluster3):
    install.install(CLUSTER, nodes=["control-plane"])
    node = get_node(CLUSTER, "control-plane")
    from nppctl.access import agent

    agent.run_agent(node, "cni", {"command": "ADD", "pod": proof.POD, "ifname": "eth0"})  # as if cut off
    assert leftovers(node.name)
    got = proof.prove(CLUSTER, ["control-plane"])
    assert got[0].ok, got[0]
    assert not leftovers(node.name)


def test_the_skeleton_is_not_proved_and_says_why(cluster3):
    got = proof.prove(CLUSTER, skeleton=True)
    assert all(p.ok and p.skipped and "by design" in p.skipped for p in got), got
