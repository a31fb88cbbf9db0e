"""Fixtures of the robustness suite (helper prefix np2: netns np2-*, bridges np2br*, 10.202.0.0/16)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: make `tests.*` importable
    sys.path.insert(0, str(REPO))

from tests.conftest import require  # noqa: E402


@pytest.fixture
def mount_point(tmp_path):
    """A directory on which the test may mount a small tmpfs; unmounted (lazily) at the end."""
    require(os.geteuid() == 0, "root (the test mounts a small tmpfs)")
    target = tmp_path / f"np2-mnt-{uuid.uuid4().hex[:6]}"
    target.mkdir()
    mounted = []

    def mount(*options: str) -> Path:
        opts = ",".join(options) if options else "size=256k"
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "np2tmpfs", str(target)], capture_output=True
        )
        require(out.returncode == 0, f"mount tmpfs ({out.stderr.decode().strip()})")
        mounted.append(target)
        return target

    yield mount
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


@pytest.fixture(scope="session")
def nppnet_exe(root_netns, tmp_path_factory) -> Path:
    """The nppnet executable, built once per session exactly as install ships it."""
    from nppctl.build.artifacts import build_plugins

    out = tmp_path_factory.mktemp("np2build")
    built = {Path(p).name: Path(p) for p in build_plugins(out)}
    assert "nppnet" in built, built
    return built["nppnet"]


@pytest.fixture
def make_net(nppnet_exe, tmp_path):
    """make_net(index, prefix=24, **conf) -> Net on bridge np2br<index>, 10.202.<index>.0/<prefix>."""
    from tests.robustness.cni import Net

    nets = []

    def make(index: int, prefix: int = 24, **extra) -> Net:
        work = tmp_path / f"net{index}"
        work.mkdir()
        net = Net(exe=nppnet_exe, work=work, index=index, prefix=prefix, extra=extra)
        nets.append(net)
        return net

    yield make
    for net in nets:
        net.cleanup()
