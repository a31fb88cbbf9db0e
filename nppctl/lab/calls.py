"""`nppctl calls`: every CNI call the recorder saw in the lab's nodes, in time order, with the spec's verdict.

read(cluster, node=None, pod=None) -> list[Call]   all nodes' records merged by start time, numbered from 1
follow(cluster, node=None, pod=None, tail=10, interval=1.0, stop=None) -> Iterator[Call]
                                                  the last TAIL calls, then new ones as the nodes record them
replay(cluster, n) -> Replay                      call N run again in its node (nodeside/calls.py says how)
verdicts(call) -> list[Verdict]                   the CNI spec requirements a call's answer broke

The records are written by the recorder in front of the plugin (nppctl/nodeside/recorder.sh, installed
by nppctl/access/recorder.py) and read by the node agent (`calls`, `replay`), one exec per node.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from nppctl.access.agent import run_agent
from nppctl.access.nodes import Node, find_nodes, for_each_node
from nppctl.errors import NppctlError
from nppctl.nodeside.calls import Call

SPEC = "CNI SPEC.md"
# The SPEC.md sections (spec 1.0.0) a verdict cites.
ERRORS = "Section 2: Execution Protocol, Errors"
ADD_OP = "Section 2: Execution Protocol, ADD"
SUCCESS = "Section 5: Result Types, Success"
ERROR = "Section 5: Result Types, Error"
VERSION = "Section 5: Result Types, Version"


@dataclass
class Verdict:
    requirement: str  # what the answer broke, in one line
    section: str  # where the spec says it

    def __str__(self) -> str:
        return f"{self.requirement} ({SPEC} {self.section})"


@dataclass
class Replay:
    original: Call
    command: str
    netns: str  # where it ran
    containerid: str
    exit: int
    stdout: str
    stderr: str
    duration_ms: float
    cleanup: dict | None = None  # the DEL after a replayed ADD: exit, stdout, stderr, duration_ms
    left: list[str] = field(default_factory=list)  # what the replay could not remove

    @property
    def same(self) -> bool:
        """The replay answered as the recorded call did: same exit code, same stdout."""
        return self.exit == self.original.exit and _answer(self.stdout) == _answer(self.original.stdout)

    def as_call(self) -> Call:
        """The replay's outcome as a Call (for verdicts and rendering)."""
        o = self.original
        return Call(record="", start=time.time(), duration_ms=self.duration_ms, type=o.type, caller="replay",
                    command=self.command, containerid=self.containerid, netns=self.netns, ifname=o.ifname,
                    args=o.args, path=o.path, exit=self.exit, stdin=o.stdin, stdout=self.stdout,
                    stderr=self.stderr, node=o.node, number=o.number)

    def to_dict(self) -> dict:
        return {"call": self.original.number, "node": self.original.node, "command": self.command,
                "netns": self.netns, "containerid": self.containerid, "exit": self.exit,
                "stdout": self.stdout, "stderr": self.stderr, "duration_ms": self.duration_ms,
                "cleanup": self.cleanup, "left": self.left, "same": self.same,
                "recorded": {"exit": self.original.exit, "stdout": self.original.stdout}}


def _answer(stdout: str):
    """stdout as JSON when it is (a result compares equal whatever its spacing), else the text."""
    try:
        return json.loads(stdout)
    except ValueError:
        return stdout.strip()


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except (AttributeError, ValueError):
        return ()


def verdicts(call: Call) -> list[Verdict]:
    """The requirements of the CNI spec the call's answer broke, where recognisable."""
    found: list[Verdict] = []
    out = call.stdout.strip()
    if "stdout" in call.truncated:
        return found  # cut at the record's cap: nothing can be said of its JSON
    if not out:
        if call.exit != 0:
            found.append(Verdict(f"exit {call.exit} with nothing on stdout: a failing plugin outputs an "
                                 "error object (code, msg) on stdout", ERRORS))
        elif call.command in ("ADD", "VERSION"):
            found.append(Verdict(f"{call.command} succeeded with nothing on stdout: it must output a result",
                                 SUCCESS if call.command == "ADD" else VERSION))
        return found
    try:
        answer = json.loads(out)
    except ValueError:
        found.append(Verdict("stdout is not JSON: a plugin outputs one JSON object (a result or an error)",
                             ERRORS if call.exit else (VERSION if call.command == "VERSION" else SUCCESS)))
        return found
    if not isinstance(answer, dict):
        found.append(Verdict(f"stdout is JSON but not an object ({type(answer).__name__})",
                             ERRORS if call.exit else SUCCESS))
        return found
    if call.exit != 0:
        missing = [k for k in ("code", "msg") if k not in answer]
        if missing:
            found.append(Verdict(f"error object without {' and '.join(repr(k) for k in missing)}", ERROR))
        elif not isinstance(answer["code"], int) or isinstance(answer["code"], bool):
            found.append(Verdict(f"error code {answer['code']!r} is not a number", ERROR))
        return found
    if "code" in answer and "msg" in answer:
        found.append(Verdict(f"exit 0 with an error object on stdout (code {answer['code']!r}): a failing "
                             "plugin exits non-zero", ERRORS))
        return found
    if call.command == "VERSION":
        if not isinstance(answer.get("supportedVersions"), list):
            found.append(Verdict("VERSION result without a `supportedVersions` list", VERSION))
        return found
    if call.command != "ADD":
        return found
    if "cniVersion" not in answer:
        found.append(Verdict("ADD result without `cniVersion`", SUCCESS))
    else:
        wanted = _config_version(call.stdin)
        if wanted and answer["cniVersion"] != wanted:
            found.append(Verdict(f"ADD result's cniVersion {answer['cniVersion']!r} is not the config's "
                                 f"{wanted!r}", SUCCESS))
    version = _version(str(answer.get("cniVersion", ""))) or _version(_config_version(call.stdin) or "")
    if version >= (0, 3, 0):  # from 0.3.0 on a result lists interfaces and ips (0.2.0 had ip4/ip6)
        for key in ("ips", "interfaces"):
            if key in answer and not isinstance(answer[key], list):
                found.append(Verdict(f"ADD result's `{key}` is not a list", SUCCESS))
            elif key not in answer:
                found.append(Verdict(f"ADD result without an `{key}` list (cniVersion "
                                     f"{'.'.join(map(str, version))})", SUCCESS))
    return found


def _config_version(stdin: str) -> str | None:
    try:
        conf = json.loads(stdin)
    except ValueError:
        return None
    return conf.get("cniVersion") if isinstance(conf, dict) else None


def message(call: Call) -> str:
    """The plugin's own words about a failure: the error object's msg (and details), else stderr's last
    line, else stdout's."""
    try:
        answer = json.loads(call.stdout)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("msg"):
        details = answer.get("details")
        return f"{answer['msg']}: {details}" if details else str(answer["msg"])
    for text in (call.stderr, call.stdout):
        lines = [t for t in text.strip().splitlines() if t.strip()]
        if lines:
            return lines[-1].strip()
    return ""


def _node_calls(node: Node, since: str = "", pod: str | None = None) -> list[Call]:
    answer = run_agent(node, "calls", {"since": since, "pod": pod or ""})
    found = [Call.from_dict(d) for d in answer["calls"]]
    for call in found:
        call.node = node.name
    return found


def _merged(per_node: list[list[Call]], first: int = 1) -> list[Call]:
    found = sorted((c for calls in per_node for c in calls), key=lambda c: (c.start, c.node, c.record))
    for at, call in enumerate(found, first):
        call.number = at
    return found


def _running(cluster: str, node: str | None) -> list[Node]:
    nodes = find_nodes(cluster, [node] if node else None, stopped=True)
    stopped = [n for n in nodes if not n.running]
    if node and stopped:
        raise NppctlError(f"node {stopped[0].name} is {stopped[0].state}: start it with "
                          f"`docker start {stopped[0].name}`")
    return [n for n in nodes if n.running]


def read(cluster: str, node: str | None = None, pod: str | None = None) -> list[Call]:
    """Every recorded call of the lab (or of NODE, or of POD: "ns/name" or "name"), numbered in time
    order. Numbers count every call of the lab, so a filtered list keeps the numbers `--replay` takes."""
    per_node = for_each_node(_running(cluster, None), lambda n: _node_calls(n))
    found = _merged(per_node)
    nodes = {n.name for n in _running(cluster, node)} if node else None
    return [c for c in found if (nodes is None or c.node in nodes) and _pod_matches(c, pod)]


def _pod_matches(call: Call, pod: str | None) -> bool:
    return not pod or pod in (call.pod, call.pod.partition("/")[2])


def follow(cluster: str, node: str | None = None, pod: str | None = None, *, tail: int = 10,
           interval: float = 1.0, stop: threading.Event | None = None) -> Iterator[Call]:
    """The last TAIL calls, then each new call as the nodes record it (polled every INTERVAL seconds),
    until STOP is set or the caller stops reading (Ctrl-C)."""
    stop = stop or threading.Event()
    nodes = _running(cluster, node)
    seen = read(cluster, node, None)
    last = {n.name: max((c.record for c in seen if c.node == n.name), default="") for n in nodes}
    count = max((c.number for c in seen), default=0)
    shown = [c for c in seen if _pod_matches(c, pod)]
    yield from shown[-tail:] if tail > 0 else []
    while not stop.wait(interval):
        per_node = for_each_node(nodes, lambda n: _node_calls(n, last[n.name]))
        new = _merged(per_node, count + 1)
        for call in new:
            last[call.node] = max(last[call.node], call.record)
        count += len(new)
        for call in new:
            if _pod_matches(call, pod):
                yield call


def replay(cluster: str, n: int) -> Replay:
    """Run call N (its number in `nppctl calls`) again in its node, with its environment and stdin."""
    found = read(cluster)
    if not 1 <= n <= len(found):
        raise NppctlError(f"no call {n} on record in cluster {cluster} (calls 1 to {len(found)}): list them "
                          f"with `nppctl calls --name {cluster}`")
    call = found[n - 1]
    target = next(x for x in _running(cluster, call.node))
    answer = run_agent(target, "replay", {"record": call.record, "tag": str(n)})
    outcome = answer["outcome"]
    return Replay(original=call, command=answer["command"], netns=answer["netns"],
                  containerid=answer["containerid"], exit=outcome["exit"], stdout=outcome["stdout"],
                  stderr=outcome["stderr"], duration_ms=outcome["duration_ms"], cleanup=answer["cleanup"],
                  left=answer["left"])
