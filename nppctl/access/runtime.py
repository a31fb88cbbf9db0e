"""`nppctl cni add|del|check|exec|ping`, host side: the container runtime nppctl plays in a node.

The chain itself runs in the node (nppctl/nodeside/runtime.py, through the node agent): this module
checks the names, finds the node and asks the agent. Pods are network namespaces /var/run/netns/<pod>.

Interface: cni_call(cluster, node, pod, command, ifname="eth0") -> dict, cni_exec(cluster, node, pod, argv)
Additions: POD_NAME (the pod/netns names accepted; its home is agent.py, which checks them too).
"""

from __future__ import annotations

import re

from nppctl.access import agent
from nppctl.access.agent import POD_NAME

PORT = re.compile(r"^(\d{1,5}):(\d{1,5})(?:/(tcp|udp|sctp))?$", re.IGNORECASE)
BANDWIDTH = re.compile(r"^(\d{1,12}[kKmMgG]?)(?:/(\d{1,12}[kKmMgG]?))?$")


def _check_pod(pod: str) -> None:
    from nppctl.errors import NppctlError

    if not POD_NAME.match(pod):
        raise NppctlError(
            f"pod name {pod!r} is not usable as a network namespace name: "
            "use letters, digits, '.', '_' or '-' (at most 63)"
        )


def port_mapping(text: str) -> dict:
    """HOST:CONTAINER[/PROTO] as the portMappings capability argument (kubelet's hostPort)."""
    from nppctl.errors import NppctlError

    match = PORT.match(text)
    ports = [int(p) for p in match.group(1, 2)] if match else []
    if not ports or not all(1 <= p <= 65535 for p in ports):
        raise NppctlError(
            f"--port {text!r} is not HOST:CONTAINER[/tcp|udp|sctp] with ports 1-65535 (e.g. 8080:80)"
        )
    return {"hostPort": ports[0], "containerPort": ports[1], "protocol": (match.group(3) or "tcp").lower()}


def bandwidth(text: str) -> dict:
    """RATE[/BURST] in bits per second and bits (k, M, G suffixes) as the bandwidth capability argument,
    the same limit both ways (as the kubernetes.io/ingress-bandwidth and egress-bandwidth annotations)."""
    from nppctl.errors import NppctlError

    match = BANDWIDTH.match(text)
    if not match:
        raise NppctlError(f"--bandwidth {text!r} is not RATE[/BURST] in bits (e.g. 10M or 10M/1M)")
    rate = _bits(match.group(1))
    burst = _bits(match.group(2)) if match.group(2) else rate
    if rate <= 0 or burst <= 0:
        raise NppctlError(f"--bandwidth {text!r}: rate and burst must be above 0")
    return {"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}


def _bits(text: str) -> int:
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[text[-1].lower() if text[-1].isalpha() else ""]
    return int(text.rstrip("kKmMgG")) * scale


def cni_call(
    cluster: str,
    node: str,
    pod: str,
    command: str,
    ifname: str = "eth0",
    *,
    ports: list[str] | None = None,
    rate: str | None = None,
) -> dict:
    """Play the runtime in the node: run its first conflist's plugins for ADD, DEL or CHECK.

    ports (HOST:CONTAINER[/PROTO]) and rate (RATE[/BURST]) are the capability arguments a runtime
    passes (portMappings, bandwidth): a plugin gets them in runtimeConfig when its entry declares
    the capability. DEL and CHECK reuse the ones ADD had."""
    from nppctl.access.nodes import get_node
    from nppctl.errors import NppctlError

    command = command.upper()
    if command not in ("ADD", "DEL", "CHECK"):
        raise NppctlError(f"CNI command {command!r} unknown: use add, del or check")
    _check_pod(pod)
    if not POD_NAME.match(ifname) or len(ifname) > 15:
        raise NppctlError(f"interface name {ifname!r} is not valid: 1-15 letters, digits, '.', '_' or '-'")
    capability_args = {}
    if ports:
        capability_args["portMappings"] = [port_mapping(p) for p in ports]
    if rate:
        capability_args["bandwidth"] = bandwidth(rate)
    if capability_args and command != "ADD":
        raise NppctlError("--port and --bandwidth go with `cni add`: DEL and CHECK reuse what ADD had")
    target = get_node(cluster, node)
    spec = {"command": command, "pod": pod, "ifname": ifname, "capability_args": capability_args}
    return agent.run_agent(target, "cni", spec)["result"]


def cni_exec(cluster: str, node: str, pod: str, argv: list[str]) -> tuple[int, str]:
    """Run argv in the pod's network namespace (`ip netns exec POD ...`): (exit code, output)."""
    from nppctl.access.nodes import get_node, node_exec
    from nppctl.errors import NppctlError

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
