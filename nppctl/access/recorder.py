"""The CNI call recorder in a node: which files put it in front of a plugin, and which take it away.

Recording plugin TYPE: the real executable moves to REAL_DIR/TYPE, and /opt/cni/bin/TYPE becomes
nppctl/nodeside/recorder.sh rendered for TYPE (a bash script: kindest/node has bash). Records go to
CALLS_DIR (nppctl/nodeside/calls.py says their format and holds the constants used here).

Interface (install wires it; nothing here runs anything in a node):
  recorder_files(ptype, executable) -> {path: (content, mode)}   recording on: real plugin + recorder
  plain_files(ptype, executable) -> {path: (content, mode)}      recording off: the plugin in place
  recorder_dirs() -> [folder]         folders to make before put_files (the recorder makes CALLS_DIR too)
  recorder_leftovers(ptype) -> [path] what to remove after plain_files when recording is turned off
  recorder_script(ptype) -> bytes     the rendered recorder
"""

from __future__ import annotations

import re
from importlib import resources

from nppctl.nodeside.base import CNI_BIN
from nppctl.nodeside.calls import CALLS_DIR, CAP, KEEP, REAL_DIR

PLUGIN_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EXECUTABLE = 0o755


def _check(ptype: str) -> str:
    from nppctl.errors import NppctlError

    if not PLUGIN_TYPE.match(ptype):
        raise NppctlError(
            f"plugin type {ptype!r} cannot be recorded: a type is a file name of letters, digits, '.', "
            "'_' and '-' in /opt/cni/bin"
        )
    return ptype


def recorder_script(ptype: str) -> bytes:
    """nppctl/nodeside/recorder.sh with its places filled for plugin PTYPE."""
    text = resources.files("nppctl.nodeside").joinpath("recorder.sh").read_text()
    values = {"@REAL@": f"{REAL_DIR}/{_check(ptype)}", "@WRAPPER@": f"{CNI_BIN}/{ptype}",
              "@DIR@": CALLS_DIR, "@CAP@": str(CAP), "@KEEP@": str(KEEP)}
    for place, value in values.items():
        text = text.replace(place, value)
    return text.encode()


def recorder_files(ptype: str, executable: bytes) -> dict[str, tuple[bytes, int]]:
    """Recording on: the real plugin first (put_files writes in this order), then the recorder."""
    return {f"{REAL_DIR}/{_check(ptype)}": (executable, EXECUTABLE),
            f"{CNI_BIN}/{ptype}": (recorder_script(ptype), EXECUTABLE)}


def plain_files(ptype: str, executable: bytes) -> dict[str, tuple[bytes, int]]:
    """Recording off: the plugin at /opt/cni/bin/TYPE itself."""
    return {f"{CNI_BIN}/{_check(ptype)}": (executable, EXECUTABLE)}


def recorder_dirs() -> list[str]:
    return [REAL_DIR, CALLS_DIR]


def recorder_leftovers(ptype: str) -> list[str]:
    """Recording off: the real plugin's copy (the records stay, for `nppctl calls`)."""
    return [f"{REAL_DIR}/{_check(ptype)}"]
