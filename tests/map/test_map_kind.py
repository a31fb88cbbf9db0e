"""`nppctl map` on real kind (issue 19): kind v0.33.0 nodes, pods made by the kubelet and containerd
through nppnet, named by the Kubernetes API. The JSON lists exactly what `ip -j` shows in the nodes
(containerd's cni-* namespaces, the host veths on cni0, the routes), `--path` across nodes names every
hop and marks a route deleted by hand, and a ClusterIP path goes through kube-proxy's DNAT.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import load_world, require
from tests.map.conftest import REPO, MapLab, pause_keeper
from tests.map.truth import assert_fits_80_columns, assert_map_matches, node_truth

CLUSTER = "np9m"
# until `up` sets it itself: the kubelet of v1.37 refuses a cgroup v1 host without failCgroupV1: false
CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
nodes:
- role: control-plane
- role: worker
- role: worker
"""
PODS = {"ka": "worker", "kb": "worker", "kc": "worker2", "kd": "worker2"}


def pod_manifest(name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "pause", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "IfNotPresent"}
            ],
        },
    }


@pytest.fixture(scope="module")
def kind_map_lab(tmp_path_factory, docker_client):
    world = load_world()
    require(
        all(world.get(k) for k in ("KIND", "KUBECTL", "NODE_IMAGE")),
        "the kind world (bash .ci/kind-world.sh)",
    )
    cwd = tmp_path_factory.mktemp(CLUSTER)
    bindir = cwd / "bin"
    bindir.mkdir()
    for tool in ("KIND", "KUBECTL"):
        (bindir / Path(world[tool]).name).symlink_to(world[tool])
    env = dict(
        os.environ,
        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
        KUBECONFIG=str(cwd / "kubeconfig"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    env.pop("NPPCTL_STATE_DIR", None)
    lab = MapLab(CLUSTER, cwd, env)
    kubectl = [world["KUBECTL"], "--context", f"kind-{CLUSTER}"]

    def remove():
        lab.nppctl("down", "--purge", "--name", CLUSTER, ok=None)
        for c in docker_client.containers.list(
            all=True, filters={"label": f"io.x-k8s.kind.cluster={CLUSTER}"}
        ):
            c.remove(force=True, v=True)

    remove()
    (cwd / "kind.yaml").write_text(CONFIG)
    try:
        lab.nppctl(
            "up",
            "--name",
            CLUSTER,
            "--image",
            world["NODE_IMAGE"],
            "--config",
            str(cwd / "kind.yaml"),
            "--timeout",
            "400",
            timeout=900,
        )
        manifests = "\n---\n".join(json.dumps(pod_manifest(p, f"{CLUSTER}-{n}")) for p, n in PODS.items())
        subprocess.run(
            [*kubectl, "apply", "-f", "-"],
            input=manifests,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Ready", "pod", *PODS, "--timeout=240s"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lab.kubectl = lambda *a: (
            subprocess.run([*kubectl, *a], env=env, capture_output=True, text=True, check=True).stdout
        )
        yield lab
    finally:
        remove()


def test_json_lists_what_ip_j_shows_with_names_from_the_api(kind_map_lab):
    lab = kind_map_lab
    netmap = lab.map(ok=True)
    assert netmap["source"] == "kubernetes" and netmap["problems"] == []
    api = json.loads(lab.kubectl("get", "pods", "-A", "-o", "json"))["items"]
    ip_of = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["status"].get("podIP")
        for p in api
        if not p["spec"].get("hostNetwork")
    }
    for short in ("control-plane", "worker", "worker2"):
        truth = node_truth(lab.node(short))
        assert all(ns.startswith("cni-") for ns in truth["pods"])  # containerd's sandboxes
        assert_map_matches(netmap, lab.node(short), truth, netns_of=lambda p: p["netns"])
        for pod in next(n for n in netmap["nodes"] if n["name"] == lab.node(short))["pods"]:
            assert ip_of[(pod["namespace"], pod["name"])] == pod["address"].split("/")[0]
    where = {p["name"]: n["short"] for n in netmap["nodes"] for p in n["pods"] if p["namespace"] == "default"}
    assert where == PODS
    out = lab.nppctl("map", "--name", CLUSTER, columns=80).stdout
    names = [f"{p['namespace']}/{p['name']}" for n in netmap["nodes"] for p in n["pods"]]
    assert_fits_80_columns(out, names + [p["host_veth"] for n in netmap["nodes"] for p in n["pods"]])


def test_path_across_nodes_marks_a_deleted_route_and_follows_a_service(kind_map_lab):
    lab = kind_map_lab
    ok = lab.map("--path", "default/ka", "kc", ok=True)
    assert ok["broken"] is None and [h["step"] for h in ok["hops"]].count("FORWARD") == 2
    subnet = next(n["subnet"] for n in lab.map()["nodes"] if n["short"] == "worker2")
    pause_keeper(lab, "worker")
    try:
        lab.in_node("worker", "ip", "route", "del", subnet)
        broken = lab.map("--path", "ka", "kc", ok=False)
        hop = broken["hops"][broken["broken"]]
        assert (hop["step"], hop["where"]) == ("route", "worker") and f"no route to {subnet}" in hop["why"]
    finally:
        pause_keeper(lab, "worker", resume=True)
    deadline = time.monotonic() + 30
    while lab.map()["problems"] and time.monotonic() < deadline:
        time.sleep(1)
    dns = json.loads(lab.kubectl("get", "service", "-n", "kube-system", "kube-dns", "-o", "json"))
    via = lab.map("--path", "ka", dns["spec"]["clusterIP"], ok=True)
    dnat = next(h for h in via["hops"] if h["step"] == "Service DNAT")
    assert dns["spec"]["clusterIP"] in dnat["detail"] and "KUBE-SVC-" in dnat["detail"]
    assert any(h["step"] == "pod" and h["where"].startswith("kube-system/coredns-") for h in via["hops"][4:])
