"""Helpers of the node tests (cluster names all start with np3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASH_PLUGIN = Path(__file__).resolve().parent / "plugins" / "np3bridge"


def nppctl(*args: str, timeout: float = 120, **env_vars: str) -> subprocess.CompletedProcess:
    """Run the CLI as a user does (`python3 -m nppctl ...`); text output, never raises."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "nppctl", *args], capture_output=True, text=True, timeout=timeout, env=env,
        cwd=REPO,
    )
