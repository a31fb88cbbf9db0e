"""`nppctl doctor` on this machine: real engine, kind found or not on PATH, per provider (kind,
docker), the node image row and the local node images usable as --image."""

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


def _kind_on_path(kind_binary, tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kind").symlink_to(kind_binary)  # the real kind of the world (CI: v0.33.0)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{_path_without_kind()}")


def _row(proc, name: str) -> str:
    rows = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()[2:].startswith(f"{name}:")]
    assert len(rows) == 1, proc.stdout
    return rows[0]


def test_doctor_passes_with_kind_on_path(docker_client, kind_binary, node_image, tmp_path, monkeypatch):
    _kind_on_path(kind_binary, tmp_path, monkeypatch)
    proc = nppctl("doctor", "--image", node_image)
    assert "✓ kind: v0." in proc.stdout, proc.stdout
    assert _row(proc, "node image") == f"✓ node image: {node_image} on this machine"
    disk_ok = "✓ free disk" in proc.stdout
    assert proc.returncode == (0 if disk_ok else 1), proc.stdout


def test_doctor_for_kind_checks_the_image_the_installed_kind_would_use(docker_client, kind_binary, tmp_path,
                                                                       monkeypatch):
    import docker

    from nppctl.access.nodeimage import kind_binary_image

    _kind_on_path(kind_binary, tmp_path, monkeypatch)
    default = kind_binary_image(str(kind_binary))  # kindest/node:vX@sha256:..., read from the binary
    assert default, kind_binary
    proc = nppctl("doctor")
    row = _row(proc, "node image")
    try:
        present = bool(docker_client.images.get(default))
    except docker.errors.ImageNotFound:
        present = False
    if present:
        assert row == f"✓ node image: {default} on this machine", proc.stdout
    else:  # this machine pulls nothing: kind could not start from its default image, said how to fix
        assert row.startswith(f"✗ node image: {default} is not on this machine and cannot be pulled ("), row
        assert row.endswith("or pass --image with a local node image (listed below)"), row
        assert proc.returncode == 1, proc.stdout


def test_doctor_for_docker_passes_without_kind(docker_client, node_image, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_kind())
    proc = nppctl("doctor", "--provider", "docker", "--image", node_image)
    assert "kind:" not in proc.stdout, proc.stdout  # the docker provider needs no kind
    assert _row(proc, "docker engine").startswith("✓ docker engine: server")
    assert _row(proc, "node image") == f"✓ node image: {node_image} on this machine"
    disk_ok = "✓ free disk" in proc.stdout
    assert proc.returncode == (0 if disk_ok else 1), (proc.stdout, proc.stderr)


def test_doctor_lists_the_local_node_images(docker_client, node_image, python_node_image, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_kind())
    proc = nppctl("doctor", "--provider", "docker")
    row = _row(proc, "local node images (--image)")
    listed = row.split(": ", 1)[1].split(", ")
    assert node_image in listed and python_node_image in listed, row  # kind-built, nppctl-derived
    others = [t for i in docker_client.images.list() for t in i.tags if "busybox" in t or "nginx" in t]
    assert not set(others) & set(listed), row  # images that are not node images stay out
