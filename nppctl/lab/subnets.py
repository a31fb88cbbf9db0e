"""Which pod subnet each node gets, and where that choice came from.

Sources, strongest first (install reports the one used per node):
  "--subnet"   the user's --subnet (one node only)
  "installed"  the subnet in the node's installed conflist (nodes install does not touch)
  "api"        the node's spec.podCIDR from the cluster's API (kube layer)
  "split"      a deterministic split of the pod CIDR into /24s in node order
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nppctl.errors import NppctlError

SPLIT_PREFIX = 24


@dataclass(frozen=True)
class Assignment:
    subnet: str  # e.g. "10.244.1.0/24"
    source: str  # "--subnet" | "installed" | "api" | "split"

    @property
    def gateway(self) -> str:
        """The subnet's first host: the address cni0 holds."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{ipaddress.ip_network(self.subnet).prefixlen}"


def parse_cidr(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise NppctlError(
            f"{what} {text!r} is not an IPv4 network in CIDR form (e.g. 10.244.1.0/24): {err}"
        ) from err
    if net.version != 4:
        raise NppctlError(f"{what} {text!r} is IPv6: nppctl lays out IPv4 pod subnets only")
    if net.prefixlen > 30:
        raise NppctlError(f"{what} {text!r} is too small for pods: use a /30 or larger (e.g. /24)")
    return net


def split(pod_cidr: str, count: int, what: str = "--pod-cidr") -> list[str]:
    """The first `count` /24s of pod_cidr, in order (one per node: `up`'s preflight checks there are
    enough before it makes anything). WHAT names where pod_cidr came from in errors."""
    net = parse_cidr(pod_cidr, what)
    if net.prefixlen > SPLIT_PREFIX:
        raise NppctlError(f"{what} {pod_cidr} is smaller than a /{SPLIT_PREFIX}: use e.g. 10.244.0.0/16")
    available = 2 ** (SPLIT_PREFIX - net.prefixlen)
    if count > available:
        raise NppctlError(
            f"{what} {pod_cidr} holds {available} /24s, not {count} (one per node): use a larger CIDR"
        )
    subnets = net.subnets(new_prefix=SPLIT_PREFIX)
    return [str(next(subnets)) for _ in range(count)]


def assign(
    node_names: list[str],
    *,
    targets: list[str],
    pod_cidr: str,
    subnet: str | None = None,
    node_subnets: dict[str, str] | None = None,
    installed: dict[str, str] | None = None,
) -> dict[str, Assignment]:
    """A subnet for every node (node_names in node order); `targets` are the nodes being installed."""
    if subnet is not None and len(targets) != 1:
        raise NppctlError("--subnet names one node's subnet: install a single node with it (--worker NODE)")
    node_subnets = node_subnets or {}
    installed = installed or {}
    by_split = dict(zip(node_names, split(pod_cidr, len(node_names)), strict=True))
    plan: dict[str, Assignment] = {}
    for name in node_names:
        if subnet is not None and name in targets:
            plan[name] = Assignment(str(parse_cidr(subnet, "--subnet")), "--subnet")
        elif name not in targets and installed.get(name):
            plan[name] = Assignment(installed[name], "installed")
        elif node_subnets.get(name):
            plan[name] = Assignment(str(parse_cidr(node_subnets[name], f"podCIDR of {name}")), "api")
        else:
            plan[name] = Assignment(by_split[name], "split")
    _refuse_overlaps(plan)
    return plan


def _refuse_overlaps(plan: dict[str, Assignment]) -> None:
    items = list(plan.items())
    for i, (a, sa) in enumerate(items):
        for b, sb in items[i + 1 :]:
            if ipaddress.ip_network(sa.subnet).overlaps(ipaddress.ip_network(sb.subnet)):
                raise NppctlError(
                    f"pod subnets overlap: {a} {sa.subnet} ({sa.source}) and {b} {sb.subnet} ({sb.source}): "
                    "pick another --subnet or --pod-cidr"
                )
