"""Where the files shipped beside the code live: templates/, cluster-configs/, pod-configs/.

In a wheel they sit inside the package (force-included by pyproject.toml); in a source
checkout (editable install, tests) they sit at the repository's top level.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder `name` (templates, cluster-configs, pod-configs), packaged or in the checkout."""
    for base in (_PKG, _PKG.parent):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"nppctl resource folder {name!r} not found next to {_PKG}")
