"""Is a user's plugin file a CNI plugin? What can be told on this host without running it.

check_plugin_file(path, what) raises NppctlError with one line unless PATH is an executable file that a
kernel can start: a #! script or an ELF binary. It never runs the file here: a student's plugin run on
the host could write anywhere. Where it runs, it is asked CNI VERSION first (nodeside/cniversion.py):
in each node before install puts it in place (nodeside/nodenet.py plugin_answers), in the card's
sandbox or node (conformance/). Used by `install` (install.resolve_plugin), `up`'s preflight (through
it) and `plugin test` (conformance/launch.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from nppctl.errors import NppctlError

STARTS = (b"#!", b"\x7fELF")


def check_plugin_file(path: Path | str, what: str = "--plugin") -> None:
    """NppctlError (one line, nothing done yet) unless PATH is an executable #! script or binary."""
    path = Path(path)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise NppctlError(
            f"{what} {str(path)!r} is not an executable file: give a plugin's path (chmod +x it)"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(STARTS):
        raise NppctlError(
            f"{what} {str(path)!r} is not a CNI plugin: cannot be run (Exec format error); nothing was "
            "copied (give an executable: a #! script or a binary)"
        )
