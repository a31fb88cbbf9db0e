"""`nppctl map --path A B`: the hops a packet takes from pod A to pod B (or to an address), each checked
against the map read live from the nodes, the first broken one marked with why.

A packet from a pod leaves by the pod's route (its eth0, the gateway on the bridge), crosses the veth to
the bridge, meets a Service's DNAT if B is a ClusterIP (nat PREROUTING), then the node's route: on the
same bridge (the pod next door), or via the other node's address over the Docker network, FORWARD on
each node (the iptables verdict for a new ICMP echo), masquerade when it leaves the cluster CIDR, and
on the far node the route to its bridge, the veth and the pod. The reply needs the way back: B's node's
route to A's subnet.

Interface: trace(netmap, a, b) -> dict {"from", "to", "hops": [{"step", "where", "detail", "ok", "why"}],
           "broken": index of the first broken hop or None}
"""

from __future__ import annotations

import ipaddress

from nppctl.errors import NppctlError
from nppctl.netmap.firewall import Packet, Rules, matches


def _ip(cidr):
    return cidr.split("/")[0] if cidr else None


def lookup(routes: list[dict], address: str) -> dict | None:
    """The route the kernel picks for ADDRESS from `ip -j route` entries: the longest prefix."""
    best, best_len = None, -1
    ip = ipaddress.ip_address(address)
    for r in routes:
        dst = r.get("dst")
        try:
            net = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst, strict=False)
        except (TypeError, ValueError):
            continue
        if net.version == ip.version and ip in net and net.prefixlen > best_len:
            best, best_len = r, net.prefixlen
    return best


def _pods(netmap):
    for node in netmap["nodes"]:
        for pod in node["pods"]:
            yield node, pod


def find_endpoint(netmap: dict, text: str) -> tuple[dict | None, dict | None, str]:
    """(node, pod, address) for a pod name (NAME or NAMESPACE/NAME) or an address; for an address no pod
    holds, (the node whose address it is or None, None, address)."""
    try:
        address = str(ipaddress.ip_address(text))
    except ValueError:
        address = None
    if address:
        for node, pod in _pods(netmap):
            if _ip(pod["address"]) == address:
                return node, pod, address
        node = next((n for n in netmap["nodes"] if n["address"] == address), None)
        return node, None, address
    ns, _, name = text.rpartition("/")
    found = [(n, p) for n, p in _pods(netmap) if p["name"] == name and (not ns or p["namespace"] == ns)]
    if not found:
        names = ", ".join(f"{p['namespace']}/{p['name']}" for _, p in _pods(netmap)) or "none"
        raise NppctlError(
            f"no pod {text!r} attached in cluster {netmap['cluster']!r} (pods: {names}): "
            "name a pod (NAME or NAMESPACE/NAME) or an address"
        )
    if len(found) > 1:
        raise NppctlError(f"pod name {text!r} is in several namespaces: say NAMESPACE/{name}")
    node, pod = found[0]
    if not pod["address"]:
        raise NppctlError(f"pod {text} has no IPv4 address: nothing to trace")
    return node, pod, _ip(pod["address"])


class _Hops:
    def __init__(self):
        self.hops: list[dict] = []

    def add(self, step: str, where: str, detail: str, why: str | None = None) -> bool:
        self.hops.append({"step": step, "where": where, "detail": detail, "ok": why is None, "why": why})
        return why is None


def _pod_out(h: _Hops, node: dict, pod: dict, dst: str) -> None:
    label = f"{pod['namespace']}/{pod['name']}"
    h.add(
        "pod",
        label,
        f"{pod['ifname']} {pod['address']} (MAC {pod['mac']})",
        None if pod["up"] else f"{pod['ifname']} is down in the pod",
    )
    route = lookup(pod["routes"], dst)
    bridge = node["bridge"]
    if route is None:
        h.add("pod route", label, f"to {dst}", f"no route to {dst} in the pod")
    elif route.get("gateway"):
        gw = route["gateway"]
        on_bridge = gw in [_ip(a) for a in bridge.get("addresses", [])]
        h.add(
            "pod route",
            label,
            f"{route['dst']} via {gw} dev {route.get('dev')}",
            None if on_bridge else f"the pod's gateway {gw} is not on {node['short']}'s {bridge['name']}",
        )
    else:
        h.add("pod route", label, f"{route['dst']} dev {route.get('dev')} (on the link)")
    _veth(h, node, pod, "out")


def _veth(h: _Hops, node: dict, pod: dict, way: str) -> None:
    bridge = node["bridge"]
    host = pod["host_veth"]
    why = None
    if host is None:
        why = "the pod's veth has no host end in the node"
    elif not pod["host_up"]:
        why = f"{host} is down"
    elif pod["master"] != bridge["name"]:
        why = f"{host} is not on {bridge['name']}"
    pair = f"{pod['ifname']} ↔ {host}" if way == "out" else f"{host} ↔ {pod['ifname']}"
    h.add("veth", node["short"], pair + (" (hairpin)" if pod.get("hairpin") else ""), why)
    if way == "out":
        _bridge(h, node)


def _bridge(h: _Hops, node: dict) -> None:
    b = node["bridge"]
    why = None if b.get("exists") else f"no {b['name']} in the node"
    if why is None and not b.get("up"):
        why = f"{b['name']} is down"
    if why is None and b["problems"]:
        why = b["problems"][0]
    h.add("bridge", node["short"], f"{b['name']} {', '.join(b.get('addresses', [])) or 'no address'}", why)


def _forward(h: _Hops, node: dict, src: str, dst: str, iif: str, oif: str) -> None:
    if iif == oif and node["flags"].get("bridge_nf_call_iptables") != "1":
        h.add(
            "FORWARD", node["short"], f"{src} → {dst} bridged on {iif} (bridge netfilter off: not filtered)"
        )
        return
    if node["iptables"]["filter"] is None:
        h.add("FORWARD", node["short"], "iptables unreadable", "cannot read the node's filter table")
        return
    verdict = Rules(node["iptables"]["filter"]).verdict("FORWARD", Packet(src, dst, iif, oif))
    h.add(
        "FORWARD",
        node["short"],
        f"{src} → {dst} in {iif} out {oif}: {verdict.why()}",
        None if verdict.accepted else f"FORWARD dropped it: {verdict.why()}",
    )


def _node_route(
    h: _Hops, node: dict, dst: str, target: dict | None, src: str, step: str = "route"
) -> dict | None:
    if node["flags"].get("ip_forward") != "1":
        h.add(step, node["short"], "IPv4 forwarding", "IPv4 forwarding is off in the node")
        return None
    route = lookup(node["ip_routes"], dst)
    if route is None:
        h.add(step, node["short"], f"to {dst}", f"no route to {dst}")
        return None
    text = (
        route["dst"]
        + (f" via {route['gateway']}" if route.get("gateway") else "")
        + f" dev {route.get('dev')}"
    )
    why = None
    if target is not None and target is not node:
        subnet = target.get("subnet") or "?"
        if route["dst"] == "default":
            why = (
                f"no route to {subnet} ({target['short']}'s pods): it would leave by the default route"
                f" via {route.get('gateway')}"
            )
        elif route.get("gateway") != target["address"]:
            why = f"route via {route.get('gateway')}, but {target['short']} is at {target['address']}"
    elif target is node and route.get("dev") != node["bridge"]["name"]:
        why = f"{dst} should go to {node['bridge']['name']}, the route says {route.get('dev')}"
    h.add(step, node["short"], text, why)
    return route


def _service(h: _Hops, node: dict, dst: str) -> str:
    """DNAT in the source node's nat table: the first endpoint address, or DST when none applies."""
    if not node["iptables"]["nat"]:
        return dst
    found = Rules(node["iptables"]["nat"]).dnat(dst)
    if not found:
        return dst
    chains = " → ".join(r.target for r in found[0][1][:-1] if r.target) or found[0][1][-1].chain
    endpoints = ", ".join(f for f, _ in found)
    h.add("Service DNAT", node["short"], f"{dst} → {endpoints} ({chains})")
    return found[0][0].rsplit(":", 1)[0]


def trace(netmap: dict, a: str, b: str) -> dict:
    node_a, pod_a, src = find_endpoint(netmap, a)
    if pod_a is None:
        raise NppctlError(
            f"{a} is no pod's address: the path starts at a pod (NAME, NAMESPACE/NAME or its address)"
        )
    _, _, dst = find_endpoint(netmap, b)
    h = _Hops()
    _pod_out(h, node_a, pod_a, dst)
    dst = _service(h, node_a, dst)
    node_b, pod_b, _ = find_endpoint(netmap, dst)
    if pod_b is None and node_b is None:  # an address outside the lab's nodes and pods
        route = _node_route(h, node_a, dst, None, src)
        if route:
            _forward(h, node_a, src, dst, node_a["bridge"]["name"], route.get("dev"))
            _masquerade(h, node_a, src, dst)
        return _done(a, b, h)
    bridge_a = node_a["bridge"]["name"]
    if node_b is node_a and pod_b is not None:
        _forward(h, node_a, src, dst, bridge_a, bridge_a)
        _pod_in(h, node_a, pod_b)
        return _done(a, b, h)
    route = _node_route(h, node_a, dst, node_b, src)
    oif = route.get("dev") if route else "eth0"
    _forward(h, node_a, src, dst, bridge_a, oif)
    _masquerade(h, node_a, src, dst)
    link_why = None if node_b["state"] == "running" else f"{node_b['name']} is {node_b['state']}"
    h.add(
        "kind network",
        f"{node_a['short']} → {node_b['short']}",
        f"{node_a['short']} eth0 {node_a['address']} → {node_b['short']} eth0 {node_b['address']}",
        link_why,
    )
    if pod_b is None:
        return _done(a, b, h)  # a node's own address: delivered to its eth0
    _node_route(h, node_b, dst, node_b, src)
    _forward(h, node_b, src, dst, "eth0", node_b["bridge"]["name"])
    _bridge(h, node_b)
    _pod_in(h, node_b, pod_b)
    _node_route(h, node_b, src, node_a, dst, step="reply route")
    return _done(a, b, h)


def _pod_in(h: _Hops, node: dict, pod: dict) -> None:
    _veth(h, node, pod, "in")
    why = None if pod["up"] else f"{pod['ifname']} is down in the pod"
    if why is None and pod["problems"]:
        why = pod["problems"][0]
    h.add("pod", f"{pod['namespace']}/{pod['name']}", f"{pod['ifname']} {pod['address']}", why)


def _masquerade(h: _Hops, node: dict, src: str, dst: str) -> None:
    cidr = node.get("cluster_cidr") or node.get("subnet")
    try:
        inside = cidr and ipaddress.ip_address(dst) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        inside = False
    if inside:
        return
    rules = Rules(node["iptables"]["nat"]).masquerades()
    hit = next((r for r in rules if matches(r, Packet(src, dst))), None)
    h.add(
        "masquerade",
        node["short"],
        f"{src} leaving {cidr}: " + (hit.short if hit else "no rule"),
        None if hit else f"no masquerade rule for {src} leaving {cidr}",
    )


def _done(a: str, b: str, h: _Hops) -> dict:
    broken = next((i for i, hop in enumerate(h.hops) if not hop["ok"]), None)
    return {"from": a, "to": b, "hops": h.hops, "broken": broken}
