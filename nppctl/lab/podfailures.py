"""Pods left ContainerCreating because the CNI plugin failed: which pod, which call, what the plugin said.

kubelet reports a failed sandbox as a FailedCreatePodSandBox event whose message is containerd's, with the
plugin's own error at its end, e.g.
  ... failed to setup network for sandbox "4f1c...": plugin type="nppnet" name="nppnet" failed (add): <msg>
This module reads those events through the API (access/kube.py) and splits each message into the sandbox
(CNI_CONTAINERID), the plugin type, the command and the plugin's message.

Where the recorder is in front of the plugin (access/recorder.py), each pod is matched with the recorded
call that failed (same CNI_CONTAINERID and command; the latest): its number for `nppctl calls --show N`
and the plugin's own words from its stdout or stderr (lab/calls.message).

Interface: stuck_pods(cluster) -> list[StuckPod] | None (None: no API answers)
Addition: parse(message) -> dict (sandbox, plugin, command, said)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from nppctl.errors import NppctlError

SANDBOX = re.compile(r'sandbox "?([0-9a-f]{12,64})"?')
PLUGIN = re.compile(r'plugin type="([^"]+)"(?: name="[^"]*")? failed \((add|delete|del|check)\): (.*)$', re.S)


@dataclass
class StuckPod:
    namespace: str
    name: str
    node: str | None
    sandbox: str | None  # the CNI_CONTAINERID of the failing call
    plugin: str | None  # the plugin type containerd named
    command: str | None  # ADD, DEL or CHECK
    said: str  # the plugin's own message (the runtime's whole message when it cannot be split)
    count: int  # how many times kubelet saw it fail
    last_seen: str | None
    call: int | None = None  # the failing call's number in `nppctl calls` (None: not recorded)

    def to_dict(self) -> dict:
        return asdict(self)


def parse(message: str) -> dict:
    """The parts of a FailedCreatePodSandBox message (missing parts None; said = the whole message then)."""
    sandbox = SANDBOX.search(message)
    plugin = PLUGIN.search(message)
    command = plugin.group(2).upper() if plugin else None
    return {
        "sandbox": sandbox.group(1) if sandbox else None,
        "plugin": plugin.group(1) if plugin else None,
        "command": "DEL" if command == "DELETE" else command,
        "said": plugin.group(3).strip() if plugin else " ".join(message.split()),
    }


def stuck_pods(cluster: str) -> list[StuckPod] | None:
    """Every pod of CLUSTER waiting for a sandbox the plugin failed to network; None without an API."""
    from nppctl.lab import api

    if api.kindless(cluster):
        return None
    from nppctl.access import kube

    try:
        if not kube.answers(cluster):
            return None
        failures = kube.sandbox_failures(cluster)
    except NppctlError:
        return None
    pods = [
        StuckPod(namespace=f["namespace"], name=f["name"], node=f["node"], count=f["count"],
                 last_seen=f["last_seen"], **parse(f["message"]))
        for f in failures
    ]
    if pods:
        _recorded_calls(cluster, pods)
    return pods


def _recorded_calls(cluster: str, pods: list[StuckPod]) -> None:
    """Each pod's failing call from the records, when the recorder saw it: its number, and the plugin's
    own words in place of the runtime's quote of them."""
    from nppctl.lab import calls

    try:
        recorded = calls.read(cluster)
    except NppctlError:
        return
    for pod in pods:
        failed = [c for c in recorded if not c.ok and c.containerid == pod.sandbox
                  and (pod.command is None or c.command == pod.command)]
        if failed:
            pod.call = failed[-1].number
            pod.command = failed[-1].command
            pod.said = calls.message(failed[-1]) or pod.said
