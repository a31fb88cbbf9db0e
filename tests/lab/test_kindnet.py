"""kindnet, kind's default CNI, against our plugin: `up --config` gives kind a copy without it unless
--keep-kindnet (on real kind); where kindnet is active, install of a real plugin refuses, or only warns
when kindnet is kept on purpose. That part runs on the stand-in kind, which lays down kindnet's conflist
and host-local state as kindnetd would: kindnetd's module is not served by the Go module proxy here, so
the kind world has no kindnetd image."""

from __future__ import annotations

import json

import yaml

COURSE_LIKE = (  # as the course's configs: no networking section, so kind keeps kindnet
    "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"
)


def _cat(docker_client, node: str, path: str) -> str | None:
    rc, out = docker_client.containers.get(node).exec_run(["cat", path])
    return out.decode() if rc == 0 else None


def _ls(docker_client, node: str, folder: str) -> list[str]:
    rc, out = docker_client.containers.get(node).exec_run(["ls", "-1", folder])
    return out.decode().split() if rc == 0 else []


def test_kept_kindnet_holds_addresses_install_refuses_unless_kept(standin_lab, docker_client):
    lab = standin_lab
    lab.clusters.append("np8k")
    config = lab.cwd / "keep.yaml"
    config.write_text(COURSE_LIKE)
    up = lab.run("up", "--name", "np8k", "--config", str(config), "--keep-kindnet", "--timeout", "60")
    assert "warning: kindnet (kind's default CNI" in up.stdout and "duplicate addresses" in up.stdout
    rendered = yaml.safe_load((lab.cwd / ".nppctl" / "np8k" / "kind-config.yaml").read_text())
    assert "disableDefaultCNI" not in (rendered.get("networking") or {})

    # what kindnetd left: its conflist on every node (the node's podCIDR), and on the control plane
    # the host-local reservations of CoreDNS and local-path-provisioner in that node's /24
    for node, cidr in (("np8k-control-plane", "10.244.0.0/24"), ("np8k-worker", "10.244.1.0/24")):
        conf = json.loads(_cat(docker_client, node, "/etc/cni/net.d/10-kindnet.conflist"))
        ptp = conf["plugins"][0]
        assert ptp["type"] == "ptp" and ptp["ipam"]["type"] == "host-local"
        assert ptp["ipam"]["ranges"] == [[{"subnet": cidr}]]
        assert ptp["ipam"]["dataDir"] == "/run/cni-ipam-state"
    held = _ls(docker_client, "np8k-control-plane", "/run/cni-ipam-state/kindnet")
    assert {"10.244.0.2", "10.244.0.3", "10.244.0.4"} <= set(held)

    # ... which is why it is refused: our plugin hands the control plane's first pod an address kindnet's
    # host-local holds already (.3: up's proof had .2 and gave it back)
    pod = lab.run("cni", "add", "--name", "np8k", "--node", "control-plane", "p1")
    given = json.loads(pod.stdout)["ips"][0]["address"].split("/")[0]
    assert given in held, (given, held)

    refused = lab.run("install", "--name", "np8k", "--all", ok=False)
    err = refused.stderr.strip()
    assert "kindnet" in err and "np8k-control-plane, np8k-worker" in err and "duplicate addresses" in err
    assert "nppctl down --name np8k" in err and "--keep-kindnet" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    # the skeleton allocates nothing: no refusal
    lab.run("install", "--name", "np8k", "--all", "--plugin", "skel")
    # `up` on the existing cluster without --keep-kindnet keeps it, and its install refuses
    again = lab.run("up", "--name", "np8k", "--config", str(config), "--timeout", "60", ok=False)
    assert "exists, kept" in again.stdout and "duplicate addresses" in again.stderr


def test_up_config_without_kindnet_takes_its_podsubnet(lab, kind_world, docker_client):
    lab.clusters.append("np8d")
    config = lab.cwd / "course.yaml"
    config.write_text(
        COURSE_LIKE.replace("kind: Cluster\n", "kind: Cluster\nnetworking:\n  podSubnet: 10.245.0.0/16\n")
        + "  extraMounts:\n  - hostPath: ./tmp/w1/\n    containerPath: /npp-temp\n"
    )
    up = lab.run("up", "--name", "np8d", "--config", str(config), "--image", lab.kind_image,
                 "--timeout", "300")
    assert "warning: kindnet" not in up.stdout and "2 node(s) Ready" in up.stdout, up.stdout
    rendered = yaml.safe_load((lab.cwd / ".nppctl" / "np8d" / "kind-config.yaml").read_text())
    assert rendered["networking"] == {"podSubnet": "10.245.0.0/16", "disableDefaultCNI": True}
    assert rendered["nodes"][1]["extraMounts"][0]["hostPath"] == str(lab.cwd / "tmp" / "w1")
    for node in ("np8d-control-plane", "np8d-worker"):
        assert _ls(docker_client, node, "/etc/cni/net.d") == ["09-nppnet.conflist"]
        assert _ls(docker_client, node, "/run/cni-ipam-state") == []
    rows = {r["node"]: r for r in yaml.safe_load(lab.run("status", "--name", "np8d", "--json").stdout)}
    assert rows["np8d-worker"]["subnet"] == "10.245.1.0/24"  # the API's podCIDR (the second /24)
    conf = json.loads(_cat(docker_client, "np8d-worker", "/etc/cni/net.d/09-nppnet.conflist"))
    assert conf["plugins"][0]["clusterCIDR"] == "10.245.0.0/16"
    lab.run("down", "--name", "np8d", "--purge")
    assert list(lab.cwd.iterdir()) == [config]


def test_keep_kindnet_with_a_config_that_disables_it_is_refused_before_anything(lab, kind_world):
    config = lab.cwd / "nocni.yaml"
    no_cni = "kind: Cluster\nnetworking:\n  disableDefaultCNI: true\n"
    config.write_text(COURSE_LIKE.replace("kind: Cluster\n", no_cni))
    bad = lab.run("up", "--name", "np8n", "--config", str(config), "--keep-kindnet", ok=False)
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "disableDefaultCNI: true, so kind would never deploy kindnet" in lines[0], lines[0]
    assert "Traceback" not in bad.stderr
    assert lab.containers("np8n") == [] and list(lab.cwd.iterdir()) == [config]  # nothing made


def test_kept_kindnet_on_real_kind_is_deployed_and_a_missing_kindnetd_is_named(lab, kind_world,
                                                                               docker_client):
    """kind applies its default-cni manifest from the node image (as kindest/node holds it); the world has
    no kindnetd image, so kindnet cannot run: up says so in one line instead of waiting out its timeout."""
    lab.clusters.append("np8m")
    config = lab.cwd / "course.yaml"
    config.write_text(COURSE_LIKE.replace("- role: worker\n", ""))
    up = lab.run("up", "--name", "np8m", "--config", str(config), "--keep-kindnet", "--image", lab.kind_image,
                 "--timeout", "240", ok=False, timeout=400)
    assert "failed to read CNI manifest" not in up.stdout + up.stderr
    last = up.stderr.strip().splitlines()[-1]
    assert "kindnet was kept but its pods cannot start: kindnet-" in last, up.stderr
    assert "kindnetd" in last and "recreate without --keep-kindnet" in last, last
    manifest = _cat(docker_client, "np8m-control-plane", "/kind/manifests/default-cni.yaml")
    assert manifest and "kind: DaemonSet" in manifest and "name: kindnet" in manifest
    lab.run("down", "--name", "np8m", "--purge")
