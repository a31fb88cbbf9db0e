"""Nodes register with the API after `kind create` returns, one at a time and not in name order, and
their podCIDRs follow registration order (the stand-in API server does this by default, as kubelets
and the node IPAM controller do). `up` waits for every node container before it labels or reads
podCIDRs; labels go by container name."""

from __future__ import annotations

import itertools
import json
import time

import pytest
import yaml

KIND_CONFIG = (
    "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: true\n"
    "nodes:\n- role: control-plane\n- role: worker\n- role: worker\n- role: worker\n"
)


def test_standin_registers_workers_late_and_out_of_name_order(lab, monkeypatch):
    from nppctl import kube

    lab.clusters.append("np8r")
    config = lab.cwd / "c.yaml"
    config.write_text(KIND_CONFIG)
    assert lab.kind("create", "cluster", "--name", "np8r", "--config", str(config)).returncode == 0
    for key in ("PATH", "NPPCTL_STANDIN_DIR"):
        monkeypatch.setenv(key, lab.env[key])
    kube._clients.clear()
    try:
        first = kube.nodes("np8r")  # right after kind returned: the workers' kubelets are not in yet
        assert [n.name for n in first] == ["np8r-control-plane"]
        cidrs = kube.wait_registered("np8r", timeout=30)
    finally:
        kube._clients.clear()
    assert cidrs == {
        "np8r-control-plane": "10.244.0.0/24",
        "np8r-worker": "10.244.3.0/24",
        "np8r-worker2": "10.244.2.0/24",
        "np8r-worker3": "10.244.1.0/24",
    }
    record = json.loads((lab.cwd.parent / "standin-kind" / "np8r" / "nodes.json").read_text())
    order = sorted(record, key=lambda n: record[n]["at"])
    assert order == ["np8r-control-plane", "np8r-worker3", "np8r-worker2", "np8r-worker"]
    gaps = [record[b]["at"] - record[a]["at"] for a, b in itertools.pairwise(order)]
    assert min(gaps) >= 0.9, gaps  # one at a time, the default 1 s apart


def test_wait_registered_names_the_nodes_still_missing(lab, monkeypatch):
    from nppctl import kube
    from nppctl.errors import NppctlError

    lab.clusters.append("np8m")
    config = lab.cwd / "c.yaml"
    config.write_text(KIND_CONFIG)
    monkeypatch.setenv("NPPCTL_STANDIN_REGISTER_DELAY", "30")
    lab.env["NPPCTL_STANDIN_REGISTER_DELAY"] = "30"
    assert lab.kind("create", "cluster", "--name", "np8m", "--config", str(config)).returncode == 0
    for key in ("PATH", "NPPCTL_STANDIN_DIR"):
        monkeypatch.setenv(key, lab.env[key])
    kube._clients.clear()
    started = time.monotonic()
    try:
        with pytest.raises(NppctlError, match="not registered: np8m-worker, np8m-worker2, np8m-worker3"):
            kube.wait_registered("np8m", timeout=1)
    finally:
        kube._clients.clear()
    assert time.monotonic() - started < 10


def test_up_labels_by_container_name_and_installs_the_apis_subnets(lab, docker_client):
    """Workers registered as worker2, then worker: node1 is still <cluster>-worker, and each node's
    conflist holds the podCIDR the API gave it (not a split of --pod-cidr in name order)."""
    lab.clusters.append("np8u")
    done = lab.run("up", "--name", "np8u", "--workers", "2", "--no-mounts", "--timeout", "60")
    assert "np8u-worker node=node1, np8u-worker2 node=node2" in done.stdout
    assert "np8u-control-plane 10.244.0.0/24, np8u-worker 10.244.2.0/24, np8u-worker2 10.244.1.0/24" in (
        done.stdout
    )
    rows = {r["node"]: r for r in yaml.safe_load(lab.run("status", "--name", "np8u", "--json").stdout)}
    for node, cidr in (("np8u-worker", "10.244.2.0/24"), ("np8u-worker2", "10.244.1.0/24")):
        assert rows[node]["subnet"] == cidr and rows[node]["ready"] is True
        rc, out = docker_client.containers.get(node).exec_run(["cat", "/etc/cni/net.d/09-nppnet.conflist"])
        assert rc == 0 and json.loads(out)["plugins"][0]["subnet"] == cidr
