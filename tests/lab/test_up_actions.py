"""`up`'s list of actions, built in one place under conditions (lab/up.py up_actions), and its first
action, read without Docker or kind: a stand-in provider answers what the list asks."""

from __future__ import annotations

from dataclasses import dataclass

from nppctl.access import registrymirror
from nppctl.access.providers.base import ClusterSpec
from nppctl.lab import up
from nppctl.lab.labshape import UpOptions
from nppctl.lab.labstate import LabState


@dataclass
class StandIn:
    name: str
    has_kubernetes: bool
    progress: object = None


def context(provider: str, existed: bool = False, cgroup: str | None = None, **asked) -> up.UpContext:
    opts = UpOptions(name="np27", provider=provider, **asked)
    return up.UpContext(
        opts, StandIn(provider, provider == "kind"), LabState(name="np27", provider=provider), existed,
        ClusterSpec(name="np27", workers=opts.workers), pod_cidr=opts.pod_cidr, cgroup=cgroup,
    )


def titles(ctx: up.UpContext) -> list[str]:
    return [a.title for a in up.up_actions(ctx)]


def test_kind_lab_gets_every_kubernetes_step_in_order():
    assert titles(context("kind", ensure_python=False)) == [
        "Preparing config and mount folders",
        "Creating cluster 'np27' (kind)",
        "Waiting for every node to register with the API (podCIDRs)",
        "Labelling workers node=node1, node2, ...",
        "Installing plugin nppnet on every node",
        "Waiting for every node to be Ready (timeout 300s)",
    ]


def test_docker_lab_has_no_kubernetes_steps():
    assert titles(context("docker")) == [
        "Preparing config and mount folders",
        "Ensuring a node image with python3",
        "Creating cluster 'np27' (docker)",
        "Installing plugin nppnet on every node",
    ]


def test_cgroup_v1_line_only_when_kind_creates_the_cluster():
    assert "Docker host on cgroup v1" in titles(context("kind", cgroup="1"))
    assert "Docker host on cgroup v1" not in titles(context("kind", cgroup="1", existed=True))
    assert "Docker host on cgroup v1" not in titles(context("kind", cgroup="2"))


def test_mirror_step_names_each_registry_and_its_mirrors():
    mirrors = tuple(registrymirror.parse(raw) for raw in ("http://cache.lab.test:5000",
                                                           "quay.io=https://q.lab.test"))
    mirror_titles = [t for t in titles(context("kind", registry_mirrors=mirrors)) if "mirrors" in t]
    assert mirror_titles == ["Pointing every node's containerd at registry mirrors: "
                             "docker.io → http://cache.lab.test:5000; quay.io → https://q.lab.test"]
    assert titles(context("kind", registry_mirrors=mirrors)).index(mirror_titles[0]) == 3


def test_prepare_makes_and_records_the_mount_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NPPCTL_STATE_DIR", str(tmp_path / "state"))
    ctx = context("docker", workers=1)
    detail = up.prepare(ctx, lambda _text: None)
    assert detail == "1 worker(s), 2 mount folder(s) at /npp-temp"
    assert sorted(p.name for p in ctx.spec.mounts.values()) == ["cp", "w1"]
    assert all(p.is_dir() for p in ctx.spec.mounts.values())
    assert LabState.load("np27").created == ctx.state.created
    assert ctx.spec.config_file is None and ctx.pod_cidr == "10.244.0.0/16"
