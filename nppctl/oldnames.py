"""The flat module names nppctl had before its layer packages (issue 20), as aliases.

`import nppctl.nodes` (or `from nppctl import artifacts`) gives the very module object of its new
home, so a monkeypatch through an old name patches the module nppctl uses. Kept for code this
branch may not touch yet: tests/plugin, tests/robustness, tests/conformance, tests/perf and
bench/ (issue 18's and the conformance split's), and their branches while they merge. nppctl's own
modules import the new names only (tests/test_layers.py fails on an old one). Remove this module
and its line in nppctl/__init__.py once nothing outside nppctl/ uses the names below.
"""

import importlib
import sys
from importlib.machinery import ModuleSpec

MOVED = {
    **{f"nppctl.{m}": f"nppctl.lab.{m}" for m in (
        "cluster", "install", "status", "checks", "services", "logs", "doctor", "subnets", "kindconfig",
        "kindpatches", "labshape")},
    **{f"nppctl.{m}": f"nppctl.access.{m}" for m in (
        "nodes", "kube", "providers", "providers.base", "providers.docker", "providers.kind", "nodeimage",
        "agent", "runtime", "throwaway", "localimages", "registrymirror")},
    "nppctl.artifacts": "nppctl.build.artifacts", "nppctl.plugincheck": "nppctl.build.plugincheck",
}


class _OldNames:
    """A meta path finder and loader: an old name loads as the module of its new name."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return ModuleSpec(name, cls) if name in MOVED else None

    @staticmethod
    def create_module(spec):
        return importlib.import_module(MOVED[spec.name])  # its own __name__ and __spec__ are kept

    @staticmethod
    def exec_module(module):
        pass


def install() -> None:
    if _OldNames not in sys.meta_path:
        sys.meta_path.insert(0, _OldNames)
