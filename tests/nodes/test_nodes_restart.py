"""A worker restarted (docker restart), also with another address, heals without nppctl: the keeper.

One 3-node cluster made by the docker provider (np9r), nppnet installed once. After that no test
runs nppctl install: `cni add` plays kubelet starting a pod, `agent.ping` checks ICMP both ways
between a new pod on the restarted worker and a pod on the other worker. The time from the restart
to the first cross-worker reply is printed (bench/keeper_restart.py measures it on its own).
"""

from __future__ import annotations

import time

import pytest

from nppctl.access import agent, runtime
from nppctl.access.nodes import get_node, node_exec
from nppctl.lab import install, status
from tests.nodes.conftest import make_cluster

CLUSTER = "np9r"
FILLER = "np9r-filler"
DEADLINE = 60.0  # seconds; a healthy run needs about one keeper period


@pytest.fixture(scope="module")
def cluster(request, docker_client, python_node_image) -> str:
    name = make_cluster(request, docker_client, python_node_image, CLUSTER, workers=2)
    request.addfinalizer(lambda: _remove_filler(docker_client))
    done = install.install(name)
    assert all("keeper started" in r.changes for r in done), [r.changes for r in done]
    return name


def _remove_filler(client) -> None:
    import docker

    try:
        client.containers.get(FILLER).remove(force=True)
    except docker.errors.NotFound:
        pass


def _address(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


@pytest.fixture(scope="module")
def far(cluster) -> str:
    """The pod on worker2 (never restarted), added once."""
    return _address(runtime.cni_call(CLUSTER, "worker2", "far", "ADD"))


def _heal_time(t0: float, pod: str, far: str) -> float:
    """Add POD on the restarted worker as kubelet would, then ping until it and the pod FAR on worker2
    reach each other both ways; seconds from t0 to the first reply from across."""
    near = None
    deadline = t0 + DEADLINE
    while near is None:  # the node's python3 answers as soon as the container runs
        try:
            near = _address(runtime.cni_call(CLUSTER, "worker", pod, "ADD"))
        except Exception:  # noqa: BLE001
            assert time.monotonic() < deadline, "cni add never succeeded on the restarted worker"
            time.sleep(0.1)
    while True:
        reply = agent.ping(get_node(CLUSTER, "worker"), [far], pod=pod, timeout=0.5)[0]
        if reply["ok"]:
            break
        assert time.monotonic() < deadline, f"{pod} never reached {far}: {reply}"
    took = time.monotonic() - t0
    back = agent.ping(get_node(CLUSTER, "worker2"), [near], pod="far", timeout=2)[0]
    assert back["ok"], back
    return took


def test_one_keeper_per_node_and_a_second_refuses(cluster):
    for st in status.status(CLUSTER):
        assert st.keeper and st.ok and st.bridge_by == "plugin", st
    again = install.install(CLUSTER)
    assert [r.changes for r in again] == [[], [], []]
    node = get_node(CLUSTER, "worker")
    code, out = node_exec(node, ["/usr/bin/python3", "/usr/local/lib/nppctl/keeper.py", "keep", "{}"])
    assert code == 0 and '"kept": false' in out and "another keeper holds" in out, out
    procs = node_exec(node, ["ps", "-eo", "comm,args"])[1].splitlines()
    assert len([p for p in procs if p.startswith("python3 ") and "keeper.py keep" in p]) == 1, procs


def test_docker_restart_of_a_worker_heals_without_nppctl(cluster, docker_client, far):
    before = get_node(CLUSTER, "worker").address
    t0 = time.monotonic()
    docker_client.containers.get(f"{CLUSTER}-worker").restart(timeout=10)
    took = _heal_time(t0, "near1", far)
    print(f"\ndocker restart -> first cross-worker reply: {took:.2f} s")
    assert get_node(CLUSTER, "worker").address == before  # same address: only the node's own part was lost
    log = node_exec(get_node(CLUSTER, "worker"), ["cat", "/var/log/nppctl-keeper.log"])[1]
    assert log.count("keeper started") >= 2 and "route 10.244.2.0/24 via" in log, log
    assert all(s.ok for s in status.status(CLUSTER))


def test_a_worker_back_with_another_address_heals_without_nppctl(
    cluster, docker_client, python_node_image, far
):
    worker = docker_client.containers.get(f"{CLUSTER}-worker")
    old = get_node(CLUSTER, "worker").address
    t0 = time.monotonic()
    worker.stop(timeout=10)
    # Another container on network kind takes the freed address (Docker hands out the lowest free one).
    docker_client.containers.run(
        python_node_image, entrypoint=["sleep", "infinity"], name=FILLER, network="kind", detach=True
    )
    filler = docker_client.containers.get(FILLER)
    assert filler.attrs["NetworkSettings"]["Networks"]["kind"]["IPAddress"] == old
    worker.start()
    new = get_node(CLUSTER, "worker").address
    assert new != old
    took = _heal_time(t0, "near2", far)
    print(f"\ndocker stop + start with a moved address -> first cross-worker reply: {took:.2f} s")
    log = node_exec(get_node(CLUSTER, "worker2"), ["cat", "/var/log/nppctl-keeper.log"])[1]
    assert f"{CLUSTER}-worker moved from {old} to {new}" in log, log
    deadline = time.monotonic() + DEADLINE  # the control plane's keeper fixes its route too
    while not all(s.ok for s in status.status(CLUSTER)):
        assert time.monotonic() < deadline, status.status(CLUSTER)
        time.sleep(0.5)
