"""Run a bench script inside a lab node (`--node NODE --name CLUSTER`), where the plugin really runs.

The node's own python3 runs the script, against the plugin `nppctl install` put in the node's
/opt/cni/bin and the host's reference bridge + host-local copied into the same node (so both
pay the node's exec, libc and page cache alike). Copies bench/*.py and the two reference
plugins to /var/tmp/nppctl-bench in the node; the script's output comes back when it is done.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = "/var/tmp/nppctl-bench"
NODE_PLUGIN = "/opt/cni/bin/nppnet"
REFERENCE_PLUGINS = ("bridge", "host-local")


def interpreter_of(plugin: Path) -> list[str]:
    """The shebang's argv of a plugin executable (the python it runs on)."""
    with open(plugin, "rb") as f:
        first = f.readline()
    return first[2:].decode().split() if first.startswith(b"#!") else []


def describe_python(plugin: Path) -> str:
    """'/usr/bin/python3 3.13.5, byte code ...': the python a plugin's shebang names, and which
    byte code a VERSION call runs on it (nppctl/build/record.py)."""
    import subprocess

    from nppctl.build import record

    argv = interpreter_of(plugin)
    if not argv:
        return "not a script"
    out = subprocess.run(
        [argv[0], "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    )
    version = out.stdout.strip() or out.stderr.strip()[-80:]
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    run = record.argv(str(plugin), argv[0])
    done = subprocess.run(run, input="", env=env, capture_output=True, text=True)
    try:
        how = record.summary(record.parse(done.stderr))
    except ValueError:
        how = "byte code unknown (no loader record)"
    return f"{argv[0]} {version}, {how}"


def in_node_args(argv: list[str]) -> list[str]:
    """A bench command line minus what only the host side means (--node, --name, --plugin,
    --reference-dir)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.split("=", 1)[0] in ("--node", "--name", "--plugin", "--reference-dir"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def run_in_node(cluster: str, node_name: str, script: str, argv: list[str], reference_dir: Path) -> int:
    """Copy the bench and the reference plugins into the node, run `python3 bench/<script> argv`
    there (host-only options dropped) with --plugin and --reference-dir pointing at the node's
    copies; print its output."""
    sys.path.insert(0, str(REPO))
    from nppctl.access.nodes import get_node, node_exec, node_run, put_files
    from nppctl.errors import NppctlError

    try:
        node = get_node(cluster, node_name)
        node_exec(node, ["mkdir", "-p", f"{NODE_DIR}/bench", f"{NODE_DIR}/ref"])
        code, _ = node_exec(node, ["test", "-x", NODE_PLUGIN], check=False)
        if code != 0:
            raise SystemExit(f"bench: {node.name} has no {NODE_PLUGIN}: run `nppctl install` first")
        scripts = sorted((REPO / "bench").glob("*.py"))
        files = {f"{NODE_DIR}/bench/{p.name}": (p.read_bytes(), 0o644) for p in scripts}
        for name in REFERENCE_PLUGINS:
            files[f"{NODE_DIR}/ref/{name}"] = ((reference_dir / name).read_bytes(), 0o755)
        put_files(node, files)
        command = [
            "python3",
            f"{NODE_DIR}/bench/{script}",
            "--plugin",
            NODE_PLUGIN,
            "--reference-dir",
            f"{NODE_DIR}/ref",
            *in_node_args(argv),
        ]
        print(f"in node {node.name} of cluster {cluster}: {' '.join(command)}", flush=True)
        res = node_run(node, command)
    except NppctlError as err:
        raise SystemExit(f"bench: {err}") from None
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.code
