"""`nppctl logs`: the plugin's log (/var/log/nppnet.log) of one or all nodes, or kubelet's CNI lines.

Each line comes as LogLine(node, text, error); `--follow` streams `tail -F` from every node in
threads; `--kubelet` reads `journalctl -u kubelet` and keeps the lines about CNI / pod networks.
A node without the log, journalctl or kubelet gives one explanatory line (note=True), no traceback;
a stopped node (or one nppctl cannot run a command in) gives one line with problem=True and the other
nodes' lines still come. `--follow` ends its `tail -F` processes in the nodes when it ends (Docker
leaves an exec running when its client goes).
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nppctl.access.nodes import Node, find_nodes, for_each_node, node_run, node_stream, stop_node_work
from nppctl.errors import NppctlError

PLUGIN_LOG = "/var/log/nppnet.log"
ERROR = re.compile(r"\b(error|err|fail(ed|ure)?|panic|traceback|exception)\b|\"code\"\s*:", re.IGNORECASE)
KUBELET_CNI = re.compile(r"cni|network plugin|networkplugin|sandbox|podcidr|nppnet", re.IGNORECASE)


@dataclass
class LogLine:
    node: str
    text: str
    error: bool = False
    note: bool = False  # nppctl's explanation, not a line of the log
    problem: bool = False  # the node could not be read (stopped, ...): the command ends with exit 1


def _line(node: Node, text: str) -> LogLine:
    return LogLine(node.name, text, bool(ERROR.search(text)))


def _tail_argv(tail: int | None, follow: bool) -> list[str]:
    argv = ["tail", "-n", str(tail) if tail is not None else "+1"]
    return [*argv, "-F", PLUGIN_LOG] if follow else [*argv, PLUGIN_LOG]


def _plugin_log(node: Node, tail: int | None) -> list[LogLine]:
    res = node_run(node, _tail_argv(tail, follow=False))
    if res.code != 0:
        why = "no plugin log yet (no CNI call has run there)" if "No such file" in res.stderr else res.stderr
        return [LogLine(node.name, f"{PLUGIN_LOG}: {why.strip()}", note=True)]
    return [_line(node, t) for t in res.stdout.splitlines()]


def _kubelet_log(node: Node, tail: int | None) -> list[LogLine]:
    res = node_run(node, ["journalctl", "-u", "kubelet", "--no-pager", "-o", "short-iso"])
    if res.code in (126, 127) or "executable file not found" in res.stdout:
        why = "no journalctl in this node (no systemd, so no kubelet: a kindless `--provider docker` node?)"
        return [LogLine(node.name, why, note=True)]
    lines = [t for t in res.stdout.splitlines() if t and not t.startswith("-- ")]
    if not lines:
        text = (res.stderr.strip() or "no kubelet journal in this node").splitlines()[0]
        return [LogLine(node.name, f"journalctl -u kubelet: {text}", note=True)]
    about_cni = [t for t in lines if KUBELET_CNI.search(t)]
    if tail is not None:
        about_cni = about_cni[-tail:] if tail > 0 else []
    if not about_cni:
        return [LogLine(node.name, "kubelet logged nothing about CNI", note=True)]
    return [_line(node, t) for t in about_cni]


def read(
    cluster: str, *, node: str | None = None, tail: int | None = None, kubelet: bool = False
) -> list[LogLine]:
    """The plugin log (or kubelet's CNI lines) of one node or all, node by node."""
    nodes = find_nodes(cluster, [node] if node else None, stopped=True)
    reader = _kubelet_log if kubelet else _plugin_log

    def read_one(n: Node) -> list[LogLine]:
        try:
            return reader(n, tail) if n.running else [_unreadable(n, f"node is {n.state}")]
        except NppctlError as err:
            return [_unreadable(n, str(err))]

    per_node = for_each_node(nodes, read_one)
    return [line for lines in per_node for line in lines]


def _unreadable(node: Node, why: str) -> LogLine:
    hint = f" (start it with `docker start {node.name}`)" if not node.running else ""
    return LogLine(node.name, f"cannot read its log: {why}{hint}", note=True, problem=True)


def follow(
    cluster: str,
    *,
    node: str | None = None,
    tail: int | None = 10,
    stop: threading.Event | None = None,
) -> Iterator[LogLine]:
    """Lines of the plugin logs as they are written (`tail -F` in every node) until `stop` is set."""
    nodes = find_nodes(cluster, [node] if node else None, stopped=True)
    lines: queue.Queue[LogLine] = queue.Queue()
    stop = stop or threading.Event()
    running = [n for n in nodes if n.running]
    for n in nodes:
        if not n.running:
            lines.put(_unreadable(n, f"node is {n.state}"))
    for n in running:
        threading.Thread(target=_stream, args=(n, tail, lines.put, stop), daemon=True).start()
    try:
        while not stop.is_set():
            try:
                yield lines.get(timeout=0.2)
            except queue.Empty:
                continue
    finally:  # also on Ctrl-C and when the caller stops reading: no tail left in the nodes
        stop.set()
        stop_node_work(running)


def _stream(node: Node, tail: int | None, put: Callable[[LogLine], None], stop: threading.Event) -> None:
    pending = ""
    try:
        for chunk in node_stream(node, _tail_argv(tail, follow=True)):
            if stop.is_set():
                return
            pending += chunk.decode(errors="replace")
            *complete, pending = pending.split("\n")
            for text in complete:
                if text.startswith("tail: "):
                    put(LogLine(node.name, text, note=True))
                else:
                    put(_line(node, text))
    except NppctlError as err:
        if not stop.is_set():
            put(_unreadable(node, str(err)))
