"""The wheel carries the plugin package and the top-level data folders install needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once for the module."""
    out = tmp_path_factory.mktemp("wheels")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("nppctl-*.whl")
    return path


def test_wheel_ships_plugin_and_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nppctl/plugin/__init__.py" in names
    assert "nppctl/cli/app.py" in names
    assert "nppctl/nodeside/recorder.sh" in names  # the CNI call recorder install puts in nodes
    for folder in ("templates", "cluster-configs", "pod-configs"):
        shipped = {n for n in names if n.startswith(f"nppctl/{folder}/")}
        files = [p for p in (REPO / folder).rglob("*") if p.is_file()]
        in_repo = {f"nppctl/{folder}/{p.relative_to(REPO / folder)}" for p in files}
        assert in_repo, f"{folder}/ is empty in the checkout"
        assert shipped == in_repo


def test_installed_wheel_builds_the_plugin_and_renders_templates(wheel, tmp_path):
    """From a wheel install (not the checkout): resources and the plugin build work outside the repo."""
    venv, out = tmp_path / "venv", tmp_path / "out"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    inst = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True
    )
    assert inst.returncode == 0, inst.stderr
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}

    def nppctl(*args: str) -> subprocess.CompletedProcess:
        argv = [venv / "bin" / "nppctl", *args]
        return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)

    where = subprocess.run(
        [python, "-c", "import nppctl.resources as r; print(r.resource_dir('templates'))"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(REPO) not in where.stdout
    recorder = subprocess.run(
        [python, "-c", "from nppctl.access.recorder import recorder_script; "
         "import sys; sys.stdout.write(recorder_script('nppnet').decode())"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )
    assert recorder.returncode == 0, recorder.stderr
    assert recorder.stdout.startswith("#!/bin/bash\n")
    assert "real=/opt/cni/bin/.nppctl-real/nppnet\n" in recorder.stdout
    conf = nppctl("plugin", "conf", "--subnet", "10.244.7.0/24")
    assert conf.returncode == 0, conf.stderr
    assert '"subnet": "10.244.7.0/24"' in conf.stdout
    build = nppctl("plugin", "build", "--out", str(out))
    assert build.returncode == 0, build.stderr
    version = subprocess.run(
        [out / "nppnet"], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "VERSION"},
        input="", capture_output=True, text=True,
    )
    assert version.returncode == 0, version.stdout + version.stderr
    assert "1.0.0" in version.stdout
