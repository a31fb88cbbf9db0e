"""The house's layers, read from the code: every import of every module in nppctl/ (module level and
inside functions alike) must point down the layer order or stay in its own layer, and no modules may
import each other in a circle. See nppctl/__init__.py for the layers, each package's docstring for
what it may import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from nppctl.conformance.bundle import ENGINE, PACKAGE

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom. A module's layer is that of the longest prefix naming it.
LAYERS = (
    ("face", ("nppctl.cli", "nppctl.__main__")),
    ("lab", ("nppctl.lab", "nppctl.netmap", "nppctl.conformance.launch", "nppctl.conformance.bundle")),
    ("access", ("nppctl.access",)),
    ("build", ("nppctl.build",)),
    ("islands", ("nppctl.plugin", "nppctl.nodeside", "nppctl.conformance")),
    ("base", ("nppctl.errors", "nppctl.resources", "nppctl")),
)
# Each runs alone (in a node, a sandbox, a plugin executable): it imports only its own modules. An
# island is a package, or (the card's engine) the modules bundle.py ships as one script.
ISLANDS = {
    "nppctl.plugin": None,
    "nppctl.nodeside": None,
    "the card's engine": {f"{PACKAGE}.{name}" for name in ENGINE},
}


def island_of(module: str) -> str | None:
    for island, members in ISLANDS.items():
        if (module in members) if members is not None else (
                module == island or module.startswith(island + ".")):
            return island
    return None


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ROOT/nppctl."""
    found = {}
    for path in sorted((root / "nppctl").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(root: Path) -> dict[str, set[str]]:
    """Module -> the nppctl modules it imports (a `from P import name` of a module P.name counts as it)."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in known else base)
        graph[name] = {t for t in targets if t == "nppctl" or t.startswith("nppctl.")} - {name}
    return graph


def layer(module: str) -> int:
    """Index in LAYERS (0 is the top)."""
    best = max(
        ((len(prefix), at) for at, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
         if module == prefix or module.startswith(prefix + ".")),
        default=None,
    )
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def unknown(graph: dict[str, set[str]]) -> list[str]:
    """Imports of nppctl modules that do not exist (an old flat name, say nppctl.nodes)."""
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if t not in graph)


def back_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Imports pointing up the layer order, and islands importing outside themselves."""
    found = []
    for module, targets in graph.items():
        island = island_of(module)
        for target in targets:
            if target not in graph:
                continue
            if layer(target) < layer(module):
                where = f"{LAYERS[layer(module)][0]}) -> {target} ({LAYERS[layer(target)][0]}"
                found.append(f"{module} ({where})")
            elif island and island_of(target) != island:
                found.append(f"{module} (island {island}) -> {target}")
    return sorted(found)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_every_import_names_a_module_that_exists():
    assert unknown(imports(ROOT)) == []


def test_no_import_points_up_the_layers():
    assert back_arrows(imports(ROOT)) == []


def test_no_modules_import_each_other_in_a_circle():
    assert circles(imports(ROOT)) == []


def test_the_reader_sees_lazy_imports_circles_and_back_arrows(tmp_path):
    """The checks above would see what they look for: a circle through a function-level import, an
    arrow from access up to the lab, an island reaching out, an old flat name."""
    files = {
        "nppctl/__init__.py": "",
        "nppctl/errors.py": "",
        "nppctl/lab/__init__.py": "",
        "nppctl/lab/a.py": "from nppctl.lab import b\n",
        "nppctl/lab/b.py": "def f():\n    from .a import x\n",
        "nppctl/access/__init__.py": "",
        "nppctl/access/c.py": "def f():\n    from nppctl.lab.a import x\n    import nppctl.nodes\n",
        "nppctl/plugin/__init__.py": "",
        "nppctl/plugin/d.py": "from nppctl import errors\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = imports(tmp_path)
    assert circles(graph) == [["nppctl.lab.a", "nppctl.lab.b"]]
    assert back_arrows(graph) == ["nppctl.access.c (access) -> nppctl.lab.a (lab)",
                                  "nppctl.plugin.d (island nppctl.plugin) -> nppctl.errors"]
    assert unknown(graph) == ["nppctl.access.c -> nppctl.nodes"]
