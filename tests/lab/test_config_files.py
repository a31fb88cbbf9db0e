"""The shipped kind configs, pod manifests and the rendered cluster config; the state record's purge."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nppctl.access.providers import base
from nppctl.errors import NppctlError
from nppctl.lab import kindconfig, labshape, labstate, up
from nppctl.resources import resource_dir


def test_rendered_config_disables_kindnet_and_mounts_absolute_course_folders(tmp_path):
    mounts = up.default_mounts("kind", 2, tmp_path)
    text = kindconfig.render_kind_config("kind", mounts, 2, "10.245.0.0/16", keep_kindnet=False)
    cfg = yaml.safe_load(text)
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert cfg["networking"] == {"disableDefaultCNI": True, "podSubnet": "10.245.0.0/16"}
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    paths = [n["extraMounts"][0]["hostPath"] for n in cfg["nodes"]]
    assert paths == [str(tmp_path / "tmp" / d) for d in ("cp", "w1", "w2")]
    assert all(Path(p).is_absolute() for p in paths)
    assert {n["extraMounts"][0]["containerPath"] for n in cfg["nodes"]} == {"/npp-temp"}
    # what nppctl reads back from its own rendering is what it rendered
    (tmp_path / "c.yaml").write_text(text)
    workers, read = kindconfig.read_kind_config(tmp_path / "c.yaml", "kind")
    assert workers == 2 and read == mounts


def test_keep_kindnet_and_no_mounts():
    cfg = yaml.safe_load(kindconfig.render_kind_config("np8x", {}, 3, "10.246.0.0/16", keep_kindnet=True))
    assert cfg["networking"] == {"podSubnet": "10.246.0.0/16"}  # kindnet kept, still on --pod-cidr
    assert len(cfg["nodes"]) == 4 and not any("extraMounts" in n for n in cfg["nodes"])


def test_rendered_config_quotes_every_user_value(tmp_path):
    """A name that YAML would read as a boolean or with spaces, and folders holding ' #' and ': ',
    come back exactly (kind's own name rule refuses the spaces; the template must quote anyway)."""
    odd = tmp_path / "lab #1" / "a: b" / "w1"
    for name in ("on", "my lab", "np8-q"):
        mounts = {f"{name}-control-plane": tmp_path / "cp", f"{name}-worker": odd}
        text = kindconfig.render_kind_config(name, mounts, 1, "10.244.0.0/16", keep_kindnet=False)
        cfg = yaml.safe_load(text)
        assert cfg["name"] == name
        assert [n["extraMounts"][0]["hostPath"] for n in cfg["nodes"]] == [str(tmp_path / "cp"), str(odd)]
        assert cfg["nodes"][1]["role"] == "worker" and cfg["networking"]["disableDefaultCNI"] is True


def test_user_config_copy_disables_kindnet_and_resolves_paths(tmp_path, monkeypatch):
    """`up --config`: kind gets a copy (no kindnet unless kept, absolute hostPaths, nppctl's name);
    its podSubnet is the pod CIDR; a node without role is a control plane, as kind defaults it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: other\n"
        "networking:\n  podSubnet: 10.245.0.0/16\nnodes:\n- extraMounts:\n"
        "  - hostPath: './tmp/x #1/'\n    containerPath: /npp-temp\n- role: worker\n"
    )
    user = kindconfig.load(tmp_path / "c.yaml", "np8c")
    assert user.roles == ["control-plane", "worker"] and user.pod_subnet == "10.245.0.0/16"
    assert not user.disable_default_cni
    assert user.mounts == {"np8c-control-plane": tmp_path / "tmp" / "x #1"}
    copy = yaml.safe_load(kindconfig.render_copy(user, "np8c", keep_kindnet=False))
    assert copy["name"] == "np8c"
    assert copy["networking"] == {"podSubnet": "10.245.0.0/16", "disableDefaultCNI": True}
    assert copy["nodes"][0] == {
        "extraMounts": [{"hostPath": str(tmp_path / "tmp" / "x #1"), "containerPath": "/npp-temp"}],
        "role": "control-plane",
    }
    kept = yaml.safe_load(kindconfig.render_copy(user, "np8c", keep_kindnet=True, mounts=False))
    assert kept["networking"] == {"podSubnet": "10.245.0.0/16"}
    assert kept["nodes"] == [{"role": "control-plane"}, {"role": "worker"}]  # --no-mounts
    default = tmp_path / "d.yaml"
    default.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    assert kindconfig.load(default, "np8c").pod_subnet == "10.244.0.0/16"  # kind's default
    assert kindconfig.load(default, "np8c").roles == ["control-plane"]


def test_pod_cidr_differing_from_the_configs_podsubnet_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.245.0.0/16\n"
    )
    user = kindconfig.load(tmp_path / "c.yaml", "np8c")
    opts = labshape.UpOptions(name="np8c", config=tmp_path / "c.yaml", pod_cidr="10.250.0.0/16")
    with pytest.raises(NppctlError, match="differs from .*podSubnet 10.245.0.0/16"):
        up._config_pod_cidr(opts, user)
    assert up._config_pod_cidr(labshape.UpOptions(), user) == "10.245.0.0/16"


def test_other_cluster_names_get_their_own_mount_folders(tmp_path):
    mounts = up.default_mounts("np4x", 1, tmp_path)
    assert mounts == {
        "np4x-control-plane": tmp_path / "tmp" / "np4x" / "cp",
        "np4x-worker": tmp_path / "tmp" / "np4x" / "w1",
    }


@pytest.mark.parametrize(
    ("name", "workers", "mounted"),
    [
        ("1master.yaml", 0, []),
        ("1master2worker.yaml", 2, []),
        ("1master2workerMount.yaml", 2, ["tmp/cp", "tmp/w1", "tmp/w2"]),
        ("1master1workerMount.yaml", 1, ["tmp/w1"]),
    ],
)
def test_course_cluster_configs(name, workers, mounted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # kind resolves relative hostPaths against the working folder
    path = resource_dir("cluster-configs") / name
    cfg = yaml.safe_load(path.read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    got_workers, mounts = kindconfig.read_kind_config(path, "kind")
    assert got_workers == workers
    assert sorted(mounts.values()) == sorted((tmp_path / m).resolve() for m in mounted)
    # unlike the course's copies, ours leave kindnet out: the node is NotReady until a CNI is installed
    assert cfg["networking"] == {"disableDefaultCNI": True}
    assert kindconfig.load(path, "kind").pod_subnet == "10.244.0.0/16"


def test_bad_config_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: boss\n")
    with pytest.raises(NppctlError, match="roles control-plane|worker"):
        kindconfig.read_kind_config(bad, "kind")


@pytest.mark.parametrize(
    ("file", "pod", "node"),
    [
        ("forexec1-node1.yaml", "forexec1", "node1"),
        ("forexec2-node1.yaml", "forexec2", "node1"),
        ("forexec3-node2.yaml", "forexec3", "node2"),
        ("simple-nginx-node1.yaml", "mynginx", "node1"),
    ],
)
def test_course_pods_are_pinned_by_the_labels_label_sets(file, pod, node):
    doc = yaml.safe_load((resource_dir("pod-configs") / file).read_text())
    assert doc["kind"] == "Pod" and doc["metadata"]["name"] == pod
    assert doc["spec"]["nodeSelector"] == {"node": node}


def test_nginx_deployment_and_service_select_each_other():
    dep = yaml.safe_load((resource_dir("pod-configs") / "simple-nginx-deployment.yaml").read_text())
    svc = yaml.safe_load((resource_dir("pod-configs") / "simple-nginx-service.yaml").read_text())
    assert dep["spec"]["template"]["metadata"]["labels"] == svc["spec"]["selector"] == {"app": "nginx"}
    assert svc["spec"]["ports"][0]["targetPort"] == 80


def test_kind_node_names_follow_kind():
    assert base.kind_node_names("kind", ["control-plane", "worker", "worker", "worker"]) == [
        "kind-control-plane",
        "kind-worker",
        "kind-worker2",
        "kind-worker3",
    ]
    assert sorted(["w10", "w2", "w1"], key=base.natural_key) == ["w1", "w2", "w10"]


def test_purge_removes_only_what_it_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()  # the user's own folder: must survive
    (tmp_path / "tmp" / "notes.txt").write_text("mine")
    state = labstate.LabState(name="np4p", provider="docker")
    for folder in up.default_mounts("np4p", 2, tmp_path).values():
        state.make_dir(folder)
    state.save()
    (tmp_path / "tmp" / "np4p" / "w2" / "plugin-copy").write_text("student's file")
    again = labstate.LabState.load("np4p")
    assert again is not None and str(tmp_path / "tmp") not in again.created
    removed, kept = again.purge()
    assert kept == [str(tmp_path / "tmp" / "np4p" / "w2"), str(tmp_path / "tmp" / "np4p")]
    assert (tmp_path / "tmp" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "tmp" / "np4p" / "cp").exists() and not (tmp_path / ".nppctl").exists()
    assert (tmp_path / "tmp" / "np4p" / "w2" / "plugin-copy").exists()
    assert removed == 5  # state.json, .nppctl/np4p, .nppctl, w1, cp
