"""Fixtures of the lab tests: the nppctl CLI as a subprocess, the stand-ins on PATH, clusters cleaned up.

Every cluster these tests create is named np4*; a finalizer removes its containers, its stand-in API
server and the files nppctl wrote, whatever the test did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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
            [str(STANDINS / "kind"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def remove_cluster(docker_client, name: str, env: dict) -> None:
    """Whatever a test left: the stand-in cluster (API server too), then any container still labelled."""
    subprocess.run(
        [str(STANDINS / "kind"), "delete", "cluster", "--name", name],
        env=env,
        capture_output=True,
        timeout=60,
    )
    for c in docker_client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"}):
        c.remove(force=True, v=True)


@pytest.fixture
def lab(tmp_path, docker_client, node_image, python_node_image):
    env = dict(os.environ)
    env["PATH"] = f"{STANDINS}{os.pathsep}{env.get('PATH', '')}"
    # The stand-in kind's default image; lab.image (trixie, no python3) is what tests pass as --image.
    env["NPPCTL_TEST_IMAGE"] = python_node_image
    env["NPPCTL_STANDIN_DIR"] = str(tmp_path / "standin-kind")
    env["COLUMNS"] = "200"  # rich tables unwrapped
    env.pop("KUBECONFIG", None)
    env.pop("NPPCTL_STATE_DIR", None)
    work = tmp_path / "lab"
    work.mkdir()
    made = Lab(work, env, node_image, docker_client)
    yield made
    for name in made.clusters:
        remove_cluster(docker_client, name, env)
