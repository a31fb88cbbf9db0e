"""`nppctl cni add|del|check|exec|ping`, host side: the container runtime nppctl plays in a node.

The chain itself runs in the node (nppctl/nodeside/runtime.py, through the node agent): this module
checks the names, finds the node and asks the agent. Pods are network namespaces /var/run/netns/<pod>.

Interface: cni_call(cluster, node, pod, command, ifname="eth0") -> dict, cni_exec(cluster, node, pod, argv)
Additions: POD_NAME (the pod/netns names accepted).
"""

from __future__ import annotations

import re

from nppctl import agent

POD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_pod(pod: str) -> None:
    from nppctl.errors import NppctlError

    if not POD_NAME.match(pod):
        raise NppctlError(
            f"pod name {pod!r} is not usable as a network namespace name: "
            "use letters, digits, '.', '_' or '-' (at most 63)"
        )


def cni_call(cluster: str, node: str, pod: str, command: str, ifname: str = "eth0") -> dict:
    """Play the runtime in the node: run its first conflist's plugins for ADD, DEL or CHECK."""
    from nppctl.errors import NppctlError
    from nppctl.nodes import get_node

    command = command.upper()
    if command not in ("ADD", "DEL", "CHECK"):
        raise NppctlError(f"CNI command {command!r} unknown: use add, del or check")
    _check_pod(pod)
    if not POD_NAME.match(ifname) or len(ifname) > 15:
        raise NppctlError(f"interface name {ifname!r} is not valid: 1-15 letters, digits, '.', '_' or '-'")
    target = get_node(cluster, node)
    return agent.run_agent(target, "cni", {"command": command, "pod": pod, "ifname": ifname})["result"]


def cni_exec(cluster: str, node: str, pod: str, argv: list[str]) -> tuple[int, str]:
    """Run argv in the pod's network namespace (`ip netns exec POD ...`): (exit code, output)."""
    from nppctl.errors import NppctlError
    from nppctl.nodes import get_node, node_exec

    _check_pod(pod)
    if not argv:
        raise NppctlError("no command given: `nppctl cni exec --node NODE POD -- CMD ...`")
    target = get_node(cluster, node)
    code, out = node_exec(target, ["ip", "netns", "exec", pod, *argv], check=False)
    if code != 0 and "Cannot open network namespace" in out:
        raise NppctlError(
            f"pod {pod} has no network namespace on {target.name}: "
            f"run `nppctl cni add --name {cluster} --node {target.short} {pod}` first"
        )
    return code, out
