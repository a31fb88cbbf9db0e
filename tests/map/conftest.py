"""Fixtures of the map tests: a kindless lab (docker provider, 2 workers) with 4 `cni add` pods, named
np9k; removed at the module's end whatever happened. Clusters of these tests are named np9*."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.conftest import Lab

REPO = Path(__file__).resolve().parents[2]
PODS = {"p1": "worker", "p2": "worker", "p3": "worker2", "p4": "worker2"}


@dataclass
class MapLab:
    name: str
    cwd: Path
    env: dict

    def nppctl(self, *args: str, ok: bool | None = True, columns: int = 200, timeout: float = 300):
        """`nppctl ARGS` as a user runs it (tests/lab's runner), at COLUMNS wide, without colour."""
        env = dict(self.env, COLUMNS=str(columns), NO_COLOR="1")
        return Lab(self.cwd, env, image="", docker=None).run(*args, ok=ok, timeout=timeout)

    def map(self, *args: str, ok: bool | None = None) -> dict:
        return json.loads(self.nppctl("map", "--name", self.name, "--json", *args, ok=ok).stdout)

    def node(self, short: str) -> str:
        return f"{self.name}-{short}"

    def in_node(self, short: str, *argv: str, check: bool = True) -> str:
        done = subprocess.run(["docker", "exec", self.node(short), *argv], capture_output=True, text=True)
        if check:
            assert done.returncode == 0, (argv, done.stderr)
        return done.stdout


def pause_keeper(lab: MapLab, short: str, resume: bool = False) -> None:
    """Stop (or continue) nppctl's keeper in a node: it would restore a deleted route within seconds."""
    pid = lab.in_node(short, "cat", "/run/nppctl-keeper.lock").strip()
    assert pid.isdigit(), pid
    lab.in_node(short, "kill", "-CONT" if resume else "-STOP", pid)


@pytest.fixture(scope="module")
def kindless_lab(tmp_path_factory, docker_client, node_image):
    name = "np9k"
    cwd = tmp_path_factory.mktemp(name)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    env.pop("NPPCTL_STATE_DIR", None)
    lab = MapLab(name, cwd, env)

    def remove():
        lab.nppctl("down", "--purge", "--name", name, ok=None)
        for c in docker_client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"}):
            c.remove(force=True, v=True)

    remove()
    try:
        lab.nppctl("up", "--provider", "docker", "--workers", "2", "--name", name, "--image", node_image)
        for pod, node in PODS.items():
            lab.nppctl("cni", "add", "--name", name, "--node", node, pod)
        yield lab
    finally:
        remove()
