"""The node agent, host side: run nppctl/nodeside/ in a node with the node's own python3.

Every call ships the node-side modules' sources inside a short loader on stdin
(`/usr/bin/python3 - COMMAND SPEC_JSON`, the interpreter the plugin's shebang names), one docker
exec per node and task, and reads back the one JSON object the agent prints. Nothing is left in
the node but what the command itself changes.

Interface: run_agent(node, command, spec) -> dict (the answer; NppctlError on failure)
           ping(node, targets, *, pod=None, timeout=2.0) -> list[dict]   ICMP echo from node or pod
Additions: pod_ping(cluster, node, pod, addresses, count) -> list[dict]   `nppctl cni ping`
           tcp_serve(node, pod, port, reply, lifetime) -> dict   blocks: the agent call is the server
           tcp_stop(node, pod, port), tcp_connect(node, targets, *, pod, expect, timeout) -> list[dict]
           service(node, spec) -> dict   ClusterIP rules shaped as kube-proxy's (nodeside/kubeproxy.py)
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

NODESIDE = Path(__file__).resolve().parents[1] / "nodeside"
POD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # a `cni add` pod: its netns name

# The loader: nodeside's modules are importable as package `nodeside` from SOURCES (no files written).
_LOADER = '''
import importlib.abc, importlib.util, sys
class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "nodeside" or (name.startswith("nodeside.") and name[9:] in SOURCES):
            return importlib.util.spec_from_loader(name, self, is_package=name == "nodeside")
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        key = module.__name__[9:] or "__init__"
        exec(compile(SOURCES[key], "<nodeside/%s.py>" % key, "exec"), module.__dict__)
sys.meta_path.insert(0, _Sources())
from nodeside import main
sys.exit(main.run(sys.argv))
'''


@functools.cache
def script() -> bytes:
    """The program a node's python3 reads from stdin: every nodeside module's source, then the loader."""
    sources = {p.stem: p.read_text() for p in sorted(NODESIDE.glob("*.py"))}
    return (f"SOURCES = {sources!r}\n" + _LOADER).encode()


def run_agent(node, command: str, spec: dict) -> dict:
    """Run agent COMMAND with SPEC in NODE: its JSON answer, or NppctlError with the reason and the fix."""
    from nppctl.access.nodes import node_run
    from nppctl.build.artifacts import PYTHON
    from nppctl.errors import NppctlError

    res = node_run(node, [PYTHON, "-", command, json.dumps(spec)], stdin=script())
    # 126/127: the engine could not start PYTHON (its message, naming it, sometimes never reaches us)
    said = (res.stdout + res.stderr).strip()
    if res.code in (126, 127) and (not said or "python3" in said):
        raise NppctlError(
            f"node {node.name} has no python3 at {PYTHON}: nppnet and nppctl's node agent need it; rerun "
            f"`nppctl install --name {node.cluster} ... --ensure-python` to install it with the node's "
            "package manager (apt-get)"
        )
    if "No module named" in res.stderr:
        missing = res.stderr.strip().splitlines()[-1]
        raise NppctlError(
            f"node {node.name}'s python3 cannot import the standard library ({missing}); rerun "
            f"`nppctl install --name {node.cluster} ... --ensure-python` to install the full python3 "
            "with apt-get"
        )
    try:
        answer = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        detail = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        raise NppctlError(
            f"node {node.name}: nppctl's node agent failed ({command}, exit {res.code}): {detail}"
        )
    if "error" in answer:
        raise NppctlError(f"node {node.name}: {answer['error']}")
    return answer


def ping(node, targets: list[str], *, pod: str | None = None, timeout: float = 2.0) -> list[dict]:
    """ICMP echo to each target from NODE, or from its pod POD's namespace (a `cni add` pod):
    [{"address", "ok", "rtt_ms", "detail"}] in target order."""
    spec = {"targets": list(targets), "timeout": timeout}
    if pod is not None:
        spec["pod"] = pod
    return run_agent(node, "ping", spec)["replies"]


def pod_ping(cluster: str, node: str, pod: str, addresses: list[str], count: int = 1,
             timeout: float = 2.0) -> list[dict]:
    """`nppctl cni ping`: COUNT echo requests to each address from `cni add` pod POD on NODE, in the order
    ping sends them (each address COUNT times in a row); each reply dict also holds its "seq"."""
    from nppctl.access.nodes import get_node
    from nppctl.errors import NppctlError

    if not POD_NAME.match(pod):
        raise NppctlError(f"pod name {pod!r} is not a `cni add` pod name: letters, digits, '.', '_' or '-'")
    if not addresses or count < 1:
        raise NppctlError(
            "name an address to ping and a count of 1 or more: `nppctl cni ping --node NODE POD ADDRESS`"
        )
    target = get_node(cluster, node)
    order = [a for a in addresses for _ in range(count)]
    try:
        replies = ping(target, order, pod=pod, timeout=timeout)
    except NppctlError as err:
        if "no network namespace" in str(err):
            raise NppctlError(
                f"pod {pod} has no network namespace on {target.name}: "
                f"run `nppctl cni add --name {cluster} --node {target.short} {pod}` first"
            ) from None
        raise
    for i, reply in enumerate(replies):
        reply["seq"] = i % count + 1
    return replies


def tcp_serve(node, pod: str, port: int, reply: str, lifetime: float) -> dict:
    """Serve TCP PORT in pod POD's namespace until tcp_stop or LIFETIME seconds: blocks meanwhile (run it in a
    thread). Every connection is answered with "REPLY PEER-ADDRESS"; returns {"peers", "stopped"}."""
    spec = {"pod": pod, "port": port, "reply": reply, "lifetime": lifetime}
    return run_agent(node, "tcp-serve", spec)


def tcp_stop(node, pod: str, port: int) -> bool:
    """End pod POD's TCP server on PORT; whether one was running."""
    return bool(run_agent(node, "tcp-stop", {"pod": pod, "port": port}).get("stopped"))


def tcp_connect(node, targets: list[tuple[str, int]], *, pod: str | None = None, expect: str = "",
                timeout: float = 2.0) -> list[dict]:
    """One TCP connection per (address, port) from NODE or its pod POD: [{"address", "port", "ok", "ms",
    "reply", "detail"}], ok when the server's line starts with EXPECT."""
    spec = {"targets": [{"address": a, "port": p} for a, p in targets], "expect": expect, "timeout": timeout}
    if pod is not None:
        spec["pod"] = pod
    return run_agent(node, "tcp-connect", spec)["results"]


def service(node, spec: dict) -> dict:
    """Add (spec["action"] == "add") or remove ("del") the ClusterIP rules of nodeside/kubeproxy.py."""
    return run_agent(node, "service", spec)
