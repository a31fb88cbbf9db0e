"""Is a user's plugin file a CNI plugin? One check before anything is copied or made.

check_plugin_file(path, what) runs PATH here with CNI_COMMAND=VERSION (nodeside/cniversion.py, the
same call `status` makes in each node) and raises NppctlError with one line when it is not a runnable
executable answering a JSON object with cniVersion and supportedVersions. Used by `install`
(install.resolve_plugin), `up`'s preflight (through it) and `plugin test` (conformance/launch.py).
"""

from __future__ import annotations

from pathlib import Path

from nppctl.errors import NppctlError
from nppctl.nodeside.cniversion import ask_version


def check_plugin_file(path: Path | str, what: str = "--plugin") -> None:
    """NppctlError (one line, nothing done yet) unless PATH answers CNI VERSION when run here."""
    why = ask_version(str(Path(path).resolve()))
    if why:
        raise NppctlError(
            f"{what} {str(path)!r} is not a CNI plugin: {why}; nothing was copied (give an executable "
            "that prints a JSON object with cniVersion and supportedVersions for CNI_COMMAND=VERSION)"
        )
