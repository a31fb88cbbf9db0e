"""The card's engine as one script for `python3 - SPEC_JSON`, where the card runs (launch.py).

The engine is several modules of this package (ENGINE, in the order they import one another), and
neither the sandbox's python3 nor a lab node's has nppctl installed. So script() writes a short
loader followed by each module's source: the loader makes each one a module under its own name
(nppctl.conformance.NAME), so that their imports of one another work there as they do here, then
runs card.main(). Host side; it reads the files next to it.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "nppctl.conformance"
# each module after those it imports; a module of checks of your own goes last (checklist.py)
ENGINE = ("checklist", "node", "cni", "results", "checks", "sandbox", "card")

LOADER = '''\
import sys
import types


def _package(name):
    module = types.ModuleType(name)
    module.__path__ = []
    sys.modules[name] = module


def _module(name, filename, source):
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)


_package("nppctl")
_package({package!r})
sys.modules["nppctl"].conformance = sys.modules[{package!r}]
'''


def script() -> bytes:
    """The loader, each module of ENGINE's source in order, and the call of card.main(sys.argv)."""
    parts = [LOADER.format(package=PACKAGE)]
    for name in ENGINE:
        source = (HERE / f"{name}.py").read_text()
        parts.append(f"_module({PACKAGE + '.' + name!r}, {name + '.py'!r}, {source!r})\n")
    parts.append(f"sys.exit(sys.modules[{PACKAGE + '.card'!r}].main(sys.argv))\n")
    return "".join(parts).encode()
