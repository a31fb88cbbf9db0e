"""The kind path, through the stand-in `kind` and stand-in API server (tests/standins/): kind itself,
kubelet and an API server cannot run on these machines. Node containers, mounts, the plugin install and
the Kubernetes client calls are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def test_kind_missing_is_one_line_error_saying_how_to_install(lab):
    env = dict(lab.env)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "standins" not in p)
    lab.env = env
    done = lab.run("up", "--name", "np4missing", ok=False)
    assert done.returncode == 1
    assert "kind not found on PATH" in done.stderr and "install kind" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_standin_kind_speaks_kinds_cli(lab, docker_client):
    lab.clusters.append("np4s")
    config = lab.cwd / "c.yaml"
    config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
        "- role: worker\n  extraMounts:\n  - hostPath: ./m\n    containerPath: /npp-temp\n"
    )
    (lab.cwd / "m").mkdir()
    assert lab.kind("create", "cluster", "--name", "np4s", "--config", str(config)).returncode == 0
    again = lab.kind("create", "cluster", "--name", "np4s", "--config", str(config))
    assert again.returncode == 1 and "already exist" in again.stderr
    assert "np4s" in lab.kind("get", "clusters").stdout.split()
    assert lab.kind("get", "nodes", "--name", "np4s").stdout.split() == ["np4s-control-plane", "np4s-worker"]
    worker = docker_client.containers.get("np4s-worker")
    assert (
        worker.labels["io.x-k8s.kind.role"] == "worker"
        and "kind" in worker.attrs["NetworkSettings"]["Networks"]
    )
    assert [(m["Source"], m["Destination"]) for m in worker.attrs["Mounts"] if m["Type"] == "bind"] == [
        (str(lab.cwd / "m"), "/npp-temp")
    ]
    kubeconfig = yaml.safe_load(lab.kind("get", "kubeconfig", "--name", "np4s").stdout)
    assert kubeconfig["current-context"] == "kind-np4s"
    assert lab.kind("delete", "cluster", "--name", "np4s").returncode == 0
    assert not lab.containers("np4s")
    missing = lab.kind("get", "kubeconfig", "--name", "np4s")
    assert missing.returncode == 1 and "could not locate any control plane nodes" in missing.stderr


@pytest.mark.parametrize(
    ("config", "args", "error"),
    [
        ("nodes:\n- role: boss\n", [], 'invalid configuration for node 0: "boss" is not a valid node role'),
        ("nodes:\n- role: worker\n", [], "must have at least one control-plane node"),
        ("", ["--name", "My Lab"], "'My Lab' is not a valid cluster name, cluster names must match"),
        ("networking:\n  disableDefaultCni: true\n", [], "unable to decode config"),
    ],
)
def test_standin_kind_refuses_configs_as_kind_does(lab, config, args, error):
    path = lab.cwd / "c.yaml"
    path.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n" + config)
    done = lab.kind("create", "cluster", "--config", str(path), *(args or ["--name", "np8bad"]))
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR: failed to create cluster: ") and error in done.stderr
    assert not lab.containers("np8bad")


def test_wait_ready_times_out_naming_the_nodes_without_cni(lab, monkeypatch):
    """A node is Ready only once it holds a CNI config (the stand-in API asks the node, as kubelet does)."""
    from nppctl import kube
    from nppctl.errors import NppctlError

    lab.clusters.append("np4r")
    config = lab.cwd / "c.yaml"
    config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: true\n"
    )
    assert lab.kind("create", "cluster", "--name", "np4r", "--config", str(config)).returncode == 0
    for key in ("PATH", "NPPCTL_STANDIN_DIR"):
        monkeypatch.setenv(key, lab.env[key])
    kube._clients.clear()
    assert kube.ready("np4r") == {"np4r-control-plane": False}
    with pytest.raises(NppctlError, match="not Ready after 1s: np4r-control-plane"):
        kube.wait_ready("np4r", timeout=1, interval=0.2)
    kube._clients.clear()


def test_up_labels_installs_waits_ready_and_down_purges(lab, docker_client):
    lab.clusters.append("np4k")
    first = lab.run("up", "--name", "np4k", "--workers", "2", "--timeout", "60")
    out = first.stdout
    assert "✓ Creating cluster 'np4k' (kind)" in out and "provider kind" in out
    assert "np4k-worker node=node1, np4k-worker2 node=node2" in out
    assert "subnets from the API's spec.podCIDR" in out and "3 node(s) Ready" in out
    config = yaml.safe_load((lab.cwd / ".nppctl" / "np4k" / "kind-config.yaml").read_text())
    assert config["networking"]["disableDefaultCNI"] is True
    cgroup_v1 = not Path("/sys/fs/cgroup/cgroup.controllers").exists()  # the kernel's answer
    v1_line = "✓ Docker host on cgroup v1 — every kubelet gets failCgroupV1: false in the kind config"
    assert (v1_line in out) == cgroup_v1 and ("kubeadmConfigPatches" in config) == cgroup_v1
    worker2 = docker_client.containers.get("np4k-worker2")
    assert {(m["Source"], m["Destination"]) for m in worker2.attrs["Mounts"] if m["Type"] == "bind"} == {
        (str(lab.cwd / "tmp" / "np4k" / "w2"), "/npp-temp")
    }

    status = lab.run("status", "--name", "np4k", "--json")
    rows = {r["node"]: r for r in yaml.safe_load(status.stdout)}
    # the stand-in registers worker2 before worker (as kubelets may): podCIDRs follow registration
    assert rows["np4k-worker2"]["subnet"] == "10.244.1.0/24" and rows["np4k-worker2"]["ready"] is True
    assert rows["np4k-worker"]["subnet"] == "10.244.2.0/24"

    # pods across nodes on the API's subnets (the runtime played by `cni add`: no kubelet here)
    lab.run("cni", "add", "--name", "np4k", "--node", "worker", "p1")
    p2 = lab.run("cni", "add", "--name", "np4k", "--node", "worker2", "p2")
    assert '"10.244.1.2/24"' in p2.stdout
    ping = lab.run("cni", "ping", "--name", "np4k", "--node", "worker", "p1", "10.244.1.2", "-c", "1")
    assert "1 sent, 1 received, 0% packet loss" in ping.stdout

    # a second up: kept, and --registry-mirror on the existing cluster writes every node's hosts.toml
    second = lab.run("up", "--name", "np4k", "--workers", "2", "--timeout", "60",
                     "--registry-mirror", "http://np4k-registry:5000")
    assert "exists, kept" in second.stdout and "Docker host on cgroup v1" not in second.stdout
    assert ("✓ Pointing every node's containerd at the docker.io mirror http://np4k-registry:5000 — "
            "/etc/containerd/certs.d/docker.io/hosts.toml on 3 node(s) (3 written)") in second.stdout
    assert len(lab.containers("np4k")) == 3
    hosts = worker2.exec_run(["cat", "/etc/containerd/certs.d/docker.io/hosts.toml"]).output.decode()
    assert '[host."http://np4k-registry:5000"]' in hosts

    lab.run("label", "--name", "np4k", "--set", "worker2=tier=web")
    lab.run("label", "--name", "np4k")  # the default again: changes nothing
    labels = _labels(lab, "np4k")
    assert labels["np4k-worker"]["node"] == "node1" and labels["np4k-worker2"]["node"] == "node2"
    assert labels["np4k-worker2"]["tier"] == "web" and "node" not in labels["np4k-control-plane"]
    bad = lab.run("label", "--name", "np4k", "--set", "nonode=a=b", ok=False)
    assert "node 'np4k-nonode' not found" in bad.stderr

    # `check` on kind runs busybox pods through the API; the stand-in API has no kubelet, so it refuses
    # the pod, and check says so in one line (the pod path itself is not verifiable here)
    check = lab.run("check", "--name", "np4k", ok=False)
    assert "create pod npp-check-control-plane failed: 404" in check.stderr
    assert len(check.stderr.strip().splitlines()) == 1

    down = lab.run("down", "--name", "np4k", "--purge")
    assert "✓ Deleting cluster 'np4k' (kind)" in down.stdout
    assert not lab.containers("np4k")
    assert "np4k" not in lab.kind("get", "clusters").stdout.split()
    assert sorted(p.name for p in lab.cwd.iterdir()) == []


def _labels(lab, name: str) -> dict:
    """Node labels as the API serves them (read in a child process: the stand-ins' PATH and state)."""
    code = (
        "import json; from nppctl import kube; "
        f"print(json.dumps({{n.name: n.labels for n in kube.nodes({name!r})}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=lab.env, cwd=lab.cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
