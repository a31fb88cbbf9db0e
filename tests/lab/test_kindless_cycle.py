"""`up --provider docker` -> `check` -> `down --purge`, for real: kind-shaped node containers without
`ping` (as kind's), the plugin installed, `cni add` namespaces as pods, every pair pinged through the node
agent, a Service's ClusterIP fetched over kube-proxy-shaped rules; then nothing left behind."""

from __future__ import annotations

import json
import time

from tests.lab.kindnode import drop_ping, leftovers, pause_keeper


def test_up_check_down_cycle_and_a_broken_route_is_caught(lab, capsys):
    name = "np4d"
    lab.clusters.append(name)
    network_before = bool(lab.docker.networks.list(names=["kind"]))
    t0 = time.monotonic()
    up = lab.run("up", "--provider", "docker", "--workers", "2", "--image", lab.image, "--name", name)
    t_up = time.monotonic() - t0
    assert "no kubelet, no API server, no pods" in up.stdout
    drop_ping(lab.docker, name)
    label = lab.run("label", "--name", name, ok=False)  # not timed: outside the cycle
    assert "has no Kubernetes" in label.stderr
    t1 = time.monotonic()
    check = lab.run("check", "--name", name)
    t_check = time.monotonic() - t1
    # 4 pods (one per node, a second on the first worker) and 3 nodes:
    for line in (
        "pod-pod same node: 2/2",
        "pod-pod across nodes: 10/10",
        "pod-node: 12/12",
        "node-pod: 12/12",
        "pod-outside: 4/4",
        "service same node: 1/1",  # the server is worker's first pod; worker's second pod fetches
        "service across nodes: 2/2",  # the control plane's and worker2's pods
        "service hairpin: 1/1",  # the server through its own ClusterIP
    ):
        assert line in check.stdout, check.stdout
    assert "✗" not in check.stdout
    assert "shaped as kube-proxy's iptables mode" in check.stdout and "no kube-proxy" in check.stdout
    assert leftovers(lab.docker, name) == {}

    # The matrix can fail: drop worker's route to worker2's pod subnet, and exactly those paths break.
    worker = lab.docker.containers.get(f"{name}-worker")
    worker2 = lab.docker.containers.get(f"{name}-worker2")
    address2 = worker2.attrs["NetworkSettings"]["Networks"]["kind"]["IPAddress"]
    rc, out = worker.exec_run(["ip", "-j", "route", "show", "via", address2])
    subnet2 = json.loads(out)[0]["dst"]
    pause_keeper(worker)  # it would put the route back at once
    assert worker.exec_run(["ip", "route", "del", subnet2, "via", address2]).exit_code == 0
    broken = lab.run("check", "--name", name, "--json", ok=False)
    report = json.loads(broken.stdout)
    failed = [p for p in report["probes"] if not p["ok"]]
    assert report["failed"] == len(failed) > 0
    on_worker = {f"{name}-worker", "npp-check-worker", "npp-check-worker-b", "service/npp-check"}
    on_worker2 = {"npp-check-worker2"}
    for p in failed:
        assert {p["src"], p["dst"]} & on_worker and {p["src"], p["dst"]} & on_worker2, p
    assert all(p["ok"] for p in report["probes"] if not ({p["src"], p["dst"]} & on_worker2))
    assert report["service"]["server"] == "npp-check-worker"
    assert [p["ok"] for p in report["probes"] if p["category"] == "service across nodes"] == [True, False]
    assert leftovers(lab.docker, name) == {}  # a failed check cleans up too

    t2 = time.monotonic()
    lab.run("down", "--name", name, "--purge")
    t_down = time.monotonic() - t2
    assert not lab.containers(name)
    assert list(lab.cwd.iterdir()) == []
    if not network_before:  # nppctl made it: gone unless another lab attached meanwhile
        nets = lab.docker.networks.list(names=["kind"])
        assert not nets or nets[0].attrs.get("Containers") or _has_users(lab)
    with capsys.disabled():
        print(
            f"\n[np4 cycle] up {t_up:.1f}s, check {t_check:.1f}s, down --purge {t_down:.1f}s, "
            f"total {t_up + t_check + t_down:.1f}s\n{check.stdout}"
        )


def _has_users(lab) -> bool:
    return bool(lab.docker.containers.list(all=True, filters={"network": "kind"}))
