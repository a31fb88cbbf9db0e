"""The wheel carries the plugin package and the top-level data folders install needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_plugin_and_templates(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("nppctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nppctl/plugin/__init__.py" in names
    assert "nppctl/cli.py" in names
    for folder in ("templates", "cluster-configs", "pod-configs"):
        shipped = {n for n in names if n.startswith(f"nppctl/{folder}/")}
        files = [p for p in (REPO / folder).rglob("*") if p.is_file()]
        in_repo = {f"nppctl/{folder}/{p.relative_to(REPO / folder)}" for p in files}
        assert in_repo, f"{folder}/ is empty in the checkout"
        assert shipped == in_repo
