"""The kindless Service, for real on a 3-node kind-shaped cluster: the agent's TCP server in one `cni add`
pod, a ClusterIP over it as kube-proxy-shaped iptables rules in every node, clients in other pods' namespaces
(same node, across nodes), the node itself (OUTPUT) and the server pod (hairpin); then nothing left."""

from __future__ import annotations

import pytest

from nppctl.access import agent
from nppctl.access.nodes import get_node, list_nodes, node_exec
from nppctl.access.runtime import cni_call
from nppctl.lab import install, services
from tests.nodes.conftest import make_cluster

CLUSTER = "np3s"
CIP = services.KINDLESS_CLUSTER_IP


@pytest.fixture(scope="module")
def lab(request, docker_client, python_node_image):
    make_cluster(request, docker_client, python_node_image, CLUSTER, workers=2)
    install.install(CLUSTER, plugin="nppnet")
    ips = {}
    for node, pod in (("worker", "s1"), ("worker", "s2"), ("worker2", "s3")):
        ips[pod] = cni_call(CLUSTER, node, pod, "ADD")["ips"][0]["address"].split("/")[0]
    return ips


def nat_rules(node: str) -> list[str]:
    return node_exec(get_node(CLUSTER, node), ["iptables", "-t", "nat", "-S"])[1].splitlines()


def fetch(node: str, pod: str | None) -> dict:
    target = get_node(CLUSTER, node)
    (got,) = agent.tcp_connect(target, [(CIP, services.PORT)], pod=pod, expect=services.REPLY)
    return got


def test_clusterip_reaches_the_server_from_everywhere_through_kube_proxy_shaped_rules(lab):
    worker = get_node(CLUSTER, "worker")
    svc = services.KindlessService(list_nodes(CLUSTER), "s1", worker, lab["s1"])
    started = svc.start()
    try:
        assert "shaped as kube-proxy's iptables mode" in started.how and "no kube-proxy" in started.how
        for node in ("control-plane", "worker", "worker2"):
            rules = nat_rules(node)
            jumps = [r for r in rules if r.startswith(("-A PREROUTING", "-A OUTPUT", "-A POSTROUTING"))
                     and "-j NPPCTL-" in r]
            assert len(jumps) == 3, jumps  # service portals from PREROUTING and OUTPUT, postrouting
            text = "\n".join(rules)
            assert f"-j DNAT --to-destination {lab['s1']}:{services.TARGET_PORT}" in text
            assert f"-s {lab['s1']}/32" in text and "-j NPPCTL-MARK-MASQ" in text
            assert "-j MASQUERADE" in text and "KUBE-" not in text
        same, across = fetch("worker", "s2"), fetch("worker2", "s3")
        assert same["ok"] and same["reply"] == f"{services.REPLY} s1 {lab['s2']}", same  # pod's own source
        assert across["ok"] and across["reply"] == f"{services.REPLY} s1 {lab['s3']}", across
        from_node = fetch("worker2", None)  # the node's own connection: the OUTPUT jump
        assert from_node["ok"], from_node
        # hairpin: s1 through its own ClusterIP, masqueraded (NPPCTL-MARK-MASQ) to its bridge's address;
        # needs the plugin's hairpin mode on s1's bridge port (br_netfilter sends it back out that port)
        hairpin = fetch("worker", "s1")
        assert hairpin["ok"], hairpin
        assert hairpin["reply"] == f"{services.REPLY} s1 10.244.1.1", hairpin
        assert svc.server_error() is None
    finally:
        peers = svc.stop()
    assert lab["s2"] in peers and lab["s3"] in peers
    for node in ("control-plane", "worker", "worker2"):
        assert not [r for r in nat_rules(node) if "NPPCTL-" in r], node
    procs = node_exec(worker, ["ps", "-eo", "args"])[1]
    assert "tcp-serve" not in procs
    gone = fetch("worker", "s2")  # no rules, no server: no false pass
    assert not gone["ok"] and gone["detail"], gone


def test_rules_replace_an_earlier_service_and_removal_is_idempotent(lab):
    worker2 = get_node(CLUSTER, "worker2")
    spec = {"action": "add", "name": "default/npp-check:http", "cluster_ip": CIP, "port": services.PORT}
    agent.service(worker2, dict(spec, endpoints=[{"ip": lab["s2"], "port": services.TARGET_PORT}]))
    answer = agent.service(worker2, dict(spec, endpoints=[{"ip": lab["s3"], "port": services.TARGET_PORT}]))
    assert any("--to-destination " + lab["s3"] in r for r in answer["rules"])
    rules = [r for r in nat_rules("worker2") if "NPPCTL-" in r]
    assert not [r for r in rules if lab["s2"] in r], rules  # the earlier endpoint's chain is gone
    assert sum(r.startswith("-A PREROUTING") for r in rules) == 1
    assert agent.service(worker2, {"action": "del"})["removed"] > 0
    assert agent.service(worker2, {"action": "del"})["removed"] == 0
    assert not [r for r in nat_rules("worker2") if "NPPCTL-" in r]
