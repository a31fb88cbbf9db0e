"""Fixtures of the lab tests: the nppctl CLI as a subprocess, the real kind of the kind world on PATH
(tests/kind/conftest.py finds it), clusters cleaned up.

Every cluster these tests create is named np4*..np8*; a finalizer removes its containers and the files
nppctl wrote, whatever the test did. `standin_lab` puts the stand-in kind (tests/standins/) first on
PATH instead, for the one behaviour the world cannot give: kindnet, kind's default CNI (kindnetd's
module is not served by the Go module proxy here, so its image cannot be built). Argument checks take
`cli` (no Docker engine, no node image) or `cli_docker` (the engine, no node image) instead of `lab`,
which needs both node images.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "standins"


@dataclass
class Lab:
    """Runs `nppctl ...` in a scratch folder with the stand-ins on PATH."""

    cwd: Path
    env: dict
    image: str
    docker: object
    clusters: list[str] = field(default_factory=list)  # names to remove when the test ends
    kind_image: str = ""  # the world's node image (kind's default names a digest only a pull gives)

    def run(self, *args: str, ok: bool | None = True, timeout: float = 180) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "nppctl", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        shown = f"nppctl {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        if ok is True:
            assert done.returncode == 0, shown
        elif ok is False:
            assert done.returncode != 0, shown
        return done

    def containers(self, name: str) -> list:
        """The node containers of cluster NAME (kind's cluster label)."""
        return self.docker.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"})

    def kind(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kind", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def kind_create(self, name: str, workers: int = 0) -> subprocess.CompletedProcess:
        """`kind create cluster` as a user runs it, with what this host needs: the world's node image
        and, on a cgroup v1 host, failCgroupV1: false (nppctl.lab.kindpatches, as `up` renders it)."""
        from nppctl.lab import kindpatches

        config = self.cwd.parent / f"{name}-kind.yaml"
        data = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                "networking": {"disableDefaultCNI": True},
                "nodes": [{"role": "control-plane"}] + [{"role": "worker"}] * workers}
        data = kindpatches.merge(data, kindpatches.for_up(kindpatches.host_cgroup_version()))
        config.write_text(kindpatches.dump(data))
        argv = ["create", "cluster", "--name", name, "--config", str(config)]
        return self.kind(*argv, *(["--image", self.kind_image] if self.kind_image else []))


def remove_cluster(docker_client, name: str, env: dict) -> None:
    """Whatever a test left: the stand-in cluster (API server too), then any container still labelled."""
    subprocess.run(
        ["kind", "delete", "cluster", "--name", name],
        env=env,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 60  # a node whose create was cut off is removable seconds later
    while True:
        left = docker_client.api.containers(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"})
        if not left or time.monotonic() > deadline:
            break
        for c in left:
            try:
                docker_client.api.remove_container(c["Id"], force=True, v=True)
            except docker.errors.NotFound:  # listed, not yet removable: looked at again
                pass
        time.sleep(1)


def _env(tmp_path, first_on_path: str) -> dict:
    env = dict(os.environ)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and "standins" not in p]
    env["PATH"] = os.pathsep.join(([first_on_path] if first_on_path else []) + path)
    env["NPPCTL_STANDIN_DIR"] = str(tmp_path / "standin-kind")
    env["COLUMNS"] = "200"  # rich tables unwrapped
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")  # kind writes its contexts here, not in ~/.kube
    env.pop("NPPCTL_STATE_DIR", None)
    return env


def _world_bin(tmp_path) -> tuple[str, str]:
    """A folder holding the world's real kind and kubectl ("" without the world), and its node image."""
    from tests.conftest import load_world

    world = load_world()
    bindir = ""
    if world["KIND"] and world["KUBECTL"]:
        bindir = str(tmp_path / "world-bin")
        os.mkdir(bindir)
        for tool in ("KIND", "KUBECTL"):
            os.symlink(world[tool], os.path.join(bindir, os.path.basename(world[tool])))
    return bindir, world["NODE_IMAGE"]


def _lab(tmp_path, docker_client, node_image, python_node_image, first_on_path: str, kind_image: str):
    env = _env(tmp_path, first_on_path)
    # The stand-in kind's default image; lab.image (trixie, no python3) is what tests pass as --image.
    env["NPPCTL_TEST_IMAGE"] = python_node_image
    work = tmp_path / "lab"
    work.mkdir()
    made = Lab(work, env, node_image, docker_client, kind_image=kind_image)
    yield made
    for name in made.clusters:
        remove_cluster(docker_client, name, env)


@pytest.fixture
def lab(tmp_path, docker_client, node_image, python_node_image):
    """The world's real kind and kubectl first on PATH, when the world is there (tests that create kind
    clusters ask for `kind_world` too, which requires it)."""
    bindir, kind_image = _world_bin(tmp_path)
    yield from _lab(tmp_path, docker_client, node_image, python_node_image, bindir, kind_image)


# A node image tag no engine holds: what the argument checks pass as --image (refused before it is read).
NO_IMAGE = "nppctl-kindnode:np4-never-built"


def _bare_lab(tmp_path, docker_client):
    bindir, _ = _world_bin(tmp_path)
    env = _env(tmp_path, bindir)
    if docker_client is None:  # no engine: a socket nothing listens on
        env["DOCKER_HOST"] = f"unix://{tmp_path}/np4-no-engine.sock"
    work = tmp_path / "lab"
    work.mkdir()
    made = Lab(work, env, NO_IMAGE, docker_client)
    yield made
    if docker_client is not None:  # whatever a check let through, as lab removes it
        for name in made.clusters:
            remove_cluster(docker_client, name, env)


@pytest.fixture
def cli(tmp_path):
    """For argument checks: `nppctl` as `lab` runs it, with no Docker engine (DOCKER_HOST names a socket
    nothing listens on) and no node image (lab.image is NO_IMAGE): nothing can be created."""
    yield from _bare_lab(tmp_path, None)


@pytest.fixture
def cli_docker(tmp_path, docker_client):
    """`cli` with the Docker engine (lab.docker, lab.containers), still no node image: checks that read
    the engine before they refuse; clusters named in lab.clusters are removed at the end, as lab does."""
    yield from _bare_lab(tmp_path, docker_client)


@pytest.fixture
def kind_world(world) -> dict:
    """The kind world is required (real kind clusters)."""
    return world


@pytest.fixture
def standin_lab(tmp_path, docker_client, node_image, python_node_image):
    """The stand-in kind and API server first on PATH (kindnet only: see the module docstring)."""
    yield from _lab(tmp_path, docker_client, node_image, python_node_image, str(STANDINS), "")
