"""Fixtures of the robustness suite (helper prefix np2: netns np2-*, bridges np2br*, 10.202.0.0/16)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: make `tests.*` importable
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def nppnet_exe(root_netns, plugins) -> Path:
    """The nppnet executable, built once per session exactly as install ships it."""
    return plugins / "nppnet"


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
