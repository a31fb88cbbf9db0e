"""`nppctl doctor` on this machine: real engine, kind found or not on PATH."""

from __future__ import annotations

import os
from pathlib import Path

from tests.nodes.np3 import nppctl


def _path_without_kind() -> str:
    """PATH with the folders holding a `kind` left out."""
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "kind").exists())


def test_doctor_fails_without_kind_and_says_how_to_fix(docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_kind())
    proc = nppctl("doctor")
    assert proc.returncode == 1, proc.stdout
    assert "✓ docker engine: server" in proc.stdout
    assert "✗ kind: not on PATH: install the kind binary" in proc.stdout
    assert "free disk" in proc.stdout and "Traceback" not in proc.stderr


def test_doctor_shows_the_docker_hosts_cgroup_version(docker_client):
    proc = nppctl("doctor")
    rows = [ln.strip() for ln in proc.stdout.splitlines() if "docker cgroup:" in ln]
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # the kernel's answer: unified hierarchy
        assert rows == ["✓ docker cgroup: v2"], proc.stdout
    else:
        assert rows == [
            "✓ docker cgroup: v1: Kubernetes 1.35+ kubelets refuse it unless failCgroupV1: false, which "
            "`nppctl up` adds to the kind config it renders"
        ], proc.stdout


def test_doctor_passes_with_kind_on_path(docker_client, kind_binary, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kind").symlink_to(kind_binary)  # the real kind of the world (CI: v0.33.0)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{_path_without_kind()}")
    proc = nppctl("doctor")
    assert "✓ kind: v0." in proc.stdout, proc.stdout
    disk_ok = "✓ free disk" in proc.stdout
    assert proc.returncode == (0 if disk_ok else 1), proc.stdout
