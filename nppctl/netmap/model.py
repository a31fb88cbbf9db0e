"""The lab's data path as one dict, read live from every node (nodeside/netmap.py through the node agent).

Per node: address on the Docker network and eth0's MTU; the config files with the one in effect (the
lowest name: what containerd and `nppctl cni` take) and why the others are not; the bridge with its
gateway and subnet; every pod attached (its address, the veth pair: host end on the bridge and the
interface in the pod, hairpin); stale veths (on the bridge, no pod behind them); the routes to the other
nodes' pod subnets; nppnet's firewall and masquerade rules. Pod names and namespaces come from the
Kubernetes API on kind (pods matched by node and address), from the `nppctl cni` runtime cache on
kindless labs (namespace `default`, the one the runtime passes). Mismatches are kept in "problems".

Interface: read_map(cluster, *, node=None) -> dict   (JSON-ready; `nppctl map --json` prints it)
Addition:  build(cluster, nodes, facts, api_pods) -> dict   the same from facts already read
"""

from __future__ import annotations

import ipaddress

from nppctl.netmap.firewall import Rules

KINDLESS_NAMESPACE = "default"  # nodeside/runtime.py passes K8S_POD_NAMESPACE=default
NPPNET_CHAINS = ("NPPNET-FORWARD", "NPPNET-POSTROUTING")
NPPCTL_MASQ = "nppctl pod masquerade"  # nodeside/nodenet.py's rule comment


def _net(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        return None


def _ip(cidr: str | None) -> str | None:
    return cidr.split("/")[0] if cidr else None


def _gateway(conf: dict) -> str | None:
    if conf.get("gateway"):
        return str(conf["gateway"])
    net = _net(conf.get("subnet"))
    return str(next(net.hosts())) if net and net.num_addresses > 2 else None


def _conflists(confs: list[dict]) -> tuple[list[dict], dict | None]:
    out, first = [], None
    for conf in confs:
        entry = dict(conf)
        if first is None and "error" not in conf:
            first = entry
            entry["in_effect"] = True
            entry["why"] = "lowest file name: the one a runtime takes"
        else:
            entry["in_effect"] = False
            entry["why"] = conf.get("error") or f"ignored: {first['file']} sorts before it"
        out.append(entry)
    return out, first


def _bridge(facts: dict, conf: dict | None) -> dict:
    name = (conf or {}).get("bridge") or "cni0"
    link = next((x for x in facts["links"] if x["ifname"] == name), None)
    gateway = _gateway(conf or {})
    subnet = (conf or {}).get("subnet")
    bridge = {"name": name, "exists": link is not None, "subnet": subnet, "gateway": gateway, "problems": []}
    if link is None:
        return bridge
    bridge.update(
        up=link["up"],
        mtu=link["mtu"],
        mac=link["mac"],
        addresses=link["addresses"],
        ifindex=link["ifindex"],
        kind=link["kind"],
    )
    net = _net(subnet)
    if not link["up"]:
        bridge["problems"].append(f"{name} is down")
    if gateway and net and f"{gateway}/{net.prefixlen}" not in link["addresses"]:
        bridge["problems"].append(f"{name} lacks the gateway {gateway}/{net.prefixlen} of {subnet}")
    for cidr in link["addresses"]:
        if net and ipaddress.ip_address(_ip(cidr)) not in net:
            bridge["problems"].append(f"{name} holds {cidr}, outside the node's subnet {subnet}")
    return bridge


def _attachments(facts: dict) -> list[dict]:
    """Every pod-side veth of a named namespace, paired with its host end (by ifindex and nsid)."""
    by_index = {x["ifindex"]: x for x in facts["links"]}
    out = []
    for ns in facts["netns"]:
        for inner in ns["links"]:
            if inner["kind"] != "veth" or inner["link_netnsid"] != 0:
                continue  # lo, or a veth whose peer is not in the node's namespace
            host = by_index.get(inner["link_index"])
            if host is not None and ns.get("id") is not None and host.get("link_netnsid") != ns["id"]:
                host = None
            gateway = next((r.get("gateway") for r in ns["routes"] if r.get("dst") == "default"), None)
            out.append(
                {
                    "netns": ns["name"],
                    "ifname": inner["ifname"],
                    "address": inner["addresses"][0] if inner["addresses"] else None,
                    "addresses": inner["addresses"],
                    "mac": inner["mac"],
                    "up": inner["up"],
                    "mtu": inner["mtu"],
                    "gateway": gateway,
                    "routes": ns["routes"],
                    "host_veth": host["ifname"] if host else None,
                    "host_ifindex": host["ifindex"] if host else None,
                    "host_up": host["up"] if host else None,
                    "master": host["master"] if host else None,
                    "hairpin": host["hairpin"] if host else None,
                    "ifalias": host["ifalias"] if host else None,
                }
            )
    return out


def _pod_names(node_name: str, facts: dict, atts: list[dict], api_pods: list[dict] | None) -> list[dict]:
    """Attachments named: by the API's pods on this node (kind) or the runtime cache (kindless)."""
    if api_pods is not None:
        mine = [p for p in api_pods if p["node"] == node_name and p.get("ip")]
        by_ip = {p["ip"]: p for p in mine}
        for att in atts:
            pod = next((by_ip[_ip(a)] for a in att["addresses"] if _ip(a) in by_ip), None)
            att["name"], att["namespace"] = (pod["name"], pod["namespace"]) if pod else (None, None)
        seen = {(a["namespace"], a["name"]) for a in atts}
        return [p for p in mine if (p["namespace"], p["name"]) not in seen]
    cache = {(c["pod"], c["ifname"]): c for c in facts["cache"]}
    for att in atts:
        entry = cache.pop((att["netns"], att["ifname"]), None)
        att["name"], att["namespace"] = (att["netns"], KINDLESS_NAMESPACE) if entry else (None, None)
        att["cached_ips"] = entry["ips"] if entry else []
    return [
        {"name": c["pod"], "namespace": KINDLESS_NAMESPACE, "ip": _ip((c["ips"] or [None])[0])}
        for c in cache.values()
    ]


def _pod_problems(att: dict, bridge: dict, mtu: int | None) -> list[str]:
    problems = []
    net = _net(bridge.get("subnet"))
    if not att["address"]:
        problems.append(f"{att['ifname']} has no IPv4 address")
    elif net and ipaddress.ip_address(_ip(att["address"])) not in net:
        problems.append(f"address {att['address']} is outside the node's subnet {bridge['subnet']}")
    if not att["up"]:
        problems.append(f"{att['ifname']} in the pod is down")
    if att["host_veth"] is None:
        problems.append("no host end of its veth in the node")
    else:
        if not att["host_up"]:
            problems.append(f"host end {att['host_veth']} is down")
        if att["master"] != bridge["name"]:
            problems.append(
                f"host end {att['host_veth']} is not on {bridge['name']} "
                f"({'on ' + att['master'] if att['master'] else 'on no bridge'})"
            )
    if bridge.get("gateway") and att["gateway"] and att["gateway"] != bridge["gateway"]:
        problems.append(f"default route via {att['gateway']}, not the bridge's {bridge['gateway']}")
    if mtu and att["mtu"] and att["mtu"] > mtu:
        problems.append(f"MTU {att['mtu']} above the node's {mtu}")
    cached = [c for c in att.get("cached_ips", []) if c]
    if cached and att["address"] not in cached:
        problems.append(f"the runtime recorded {', '.join(cached)}, the pod holds {att['address']}")
    return problems


def _firewall(facts: dict) -> dict:
    filt, nat = Rules(facts["iptables"]["filter"]), Rules(facts["iptables"]["nat"])
    ours = [r.text for c in NPPNET_CHAINS for r in filt.rules(c) + nat.rules(c)]
    masq = [r.text for r in nat.masquerades() if r.chain == "NPPNET-POSTROUTING" or r.comment == NPPCTL_MASQ]
    return {
        "readable": facts["iptables"]["filter"] is not None,
        "forward_policy": filt.policy("FORWARD"),
        "forward_jump": any(r.target == "NPPNET-FORWARD" for r in filt.rules("FORWARD")),
        "rules": [x for x in ours if x not in masq],
        "masquerade": masq,
    }


def _node(node, facts: dict, api_pods: list[dict] | None) -> dict:
    eth0 = facts["eth0"]
    confs, conf = _conflists(facts["conflists"])
    bridge = _bridge(facts, conf)
    atts = _attachments(facts)
    missing = _pod_names(node.name, facts, atts, api_pods)
    pods, stale = [], []
    for att in atts:
        if att["name"] is None:
            if att["master"] == bridge["name"]:
                att["why"] = "on the bridge, but no pod holds it (namespace {}, {})".format(
                    att["netns"], att["address"] or "no address"
                )
                stale.append(att)
            continue
        att["problems"] = _pod_problems(att, bridge, eth0["mtu"])
        pods.append(att)
    on_bridge = {p["host_veth"] for p in pods} | {s["host_veth"] for s in stale}
    for link in facts["links"]:
        if link["kind"] == "veth" and link["master"] == bridge["name"] and link["ifname"] not in on_bridge:
            stale.append(
                {
                    "host_veth": link["ifname"],
                    "host_ifindex": link["ifindex"],
                    "netns": None,
                    "address": None,
                    "ifalias": link["ifalias"],
                    "hairpin": link["hairpin"],
                    "why": "on the bridge, its peer in no pod's namespace",
                }
            )
    problems = list(bridge["problems"])
    if not eth0["addresses"]:
        problems.append("eth0 has no IPv4 address")
    for pod in missing:
        problems.append(
            f"pod {pod['namespace']}/{pod['name']} ({pod.get('ip') or 'no address'}) "
            "has no interface in this node"
        )
    if conf is None:
        problems.append(f"no usable network config in {facts['conf_dir']}")
    fw = _firewall(facts)
    if conf and conf.get("ip_masq") and bridge["exists"] and not fw["masquerade"]:
        problems.append("the conflist asks for ipMasq but no masquerade rule is in nat POSTROUTING")
    if facts["flags"].get("ip_forward") != "1":
        problems.append("IPv4 forwarding is off: pods cannot reach other nodes")
    pods.sort(key=lambda p: (p["namespace"], p["name"]))
    return {
        "name": node.name,
        "short": node.short,
        "role": node.role,
        "state": node.state,
        "address": node.address,
        "eth0": eth0["addresses"],
        "mtu": eth0["mtu"],
        "conf_dir": facts["conf_dir"],
        "conflists": confs,
        "subnet": (conf or {}).get("subnet"),
        "cluster_cidr": (conf or {}).get("cluster_cidr"),
        "plugin": ",".join((conf or {}).get("types", [])) or None,
        "bridge": bridge,
        "pods": pods,
        "stale_veths": stale,
        "ip_routes": facts["routes"],
        "firewall": fw,
        "flags": facts["flags"],
        "problems": problems,
        "iptables": facts["iptables"],
    }


def _routes(nodes: list[dict]) -> None:
    """Each node's routes within the pod network, named by the node they lead to; missing, misdirected
    (a node that moved) and stale ones become problems."""
    cidrs = [_net(n["cluster_cidr"] or n["subnet"]) for n in nodes if n.get("subnet")]
    by_addr = {n["address"]: n for n in nodes if n["address"]}
    by_subnet = {n["subnet"]: n for n in nodes if n.get("subnet")}
    seen: dict[str, str] = {}
    for node in nodes:
        if "ip_routes" not in node:
            continue
        if node.get("subnet") in seen:
            node["problems"].append(f"wrong subnet: {node['subnet']} is {seen[node['subnet']]}'s too")
        elif node.get("subnet"):
            seen[node["subnet"]] = node["name"]
        routes = []
        for r in node["ip_routes"]:
            dst, via = r.get("dst"), r.get("gateway")
            net = _net(dst) if dst != "default" else None
            if net is None or not any(c and net.subnet_of(c) for c in cidrs if c.version == net.version):
                continue
            entry = {"dst": dst, "via": via, "dev": r.get("dev"), "to": None, "problems": []}
            owner = by_subnet.get(dst)
            if owner is not None and owner is node:
                entry["to"] = "local"
                if r.get("dev") != node["bridge"]["name"]:
                    entry["problems"].append(
                        f"the node's own subnet goes to {r.get('dev')}, not {node['bridge']['name']}"
                    )
            elif owner is not None:
                entry["to"] = owner["name"]
                if via != owner["address"]:
                    at = by_addr.get(via)
                    entry["problems"].append(
                        f"via {via}, which is {at['name']}'s address"
                        if at
                        else f"via {via}, no node's address: {owner['name']} is at {owner['address']} now "
                        "(a node that moved)"
                    )
            else:
                entry["problems"].append(f"{dst} is no node's pod subnet (a stale route)")
            routes.append(entry)
        for other in nodes:
            if other is node or not other.get("subnet") or not other["address"]:
                continue
            if not any(r["dst"] == other["subnet"] for r in routes):
                routes.append(
                    {
                        "dst": other["subnet"],
                        "via": None,
                        "dev": None,
                        "to": other["name"],
                        "problems": [f"no route to {other['subnet']} ({other['name']}'s pods)"],
                    }
                )
        node["routes"] = routes


def build(cluster: str, nodes, facts: list, api_pods: list[dict] | None) -> dict:
    """The map from facts already read: FACTS[i] is node NODES[i]'s `map` answer, or the error it gave."""
    out = []
    for node, f in zip(nodes, facts, strict=True):
        if isinstance(f, Exception):
            out.append(
                {
                    "name": node.name,
                    "short": node.short,
                    "role": node.role,
                    "state": node.state,
                    "address": node.address,
                    "problems": [str(f)],
                    "pods": [],
                    "stale_veths": [],
                    "routes": [],
                    "conflists": [],
                    "bridge": None,
                }
            )
            continue
        out.append(_node(node, f, api_pods))
    _routes(out)
    return {
        "cluster": cluster,
        "source": "kubernetes" if api_pods is not None else "runtime-cache",
        "nodes": out,
        "problems": sum((_all_problems(n) for n in out), []),
    }


def _all_problems(node: dict) -> list[str]:
    found = [f"{node['name']}: {p}" for p in node["problems"]]
    for pod in node["pods"]:
        found += [f"{node['name']}: pod {pod['namespace']}/{pod['name']}: {p}" for p in pod["problems"]]
    found += [f"{node['name']}: stale veth {s['host_veth']}: {s['why']}" for s in node["stale_veths"]]
    for r in node["routes"]:
        found += [f"{node['name']}: route {r['dst']}: {p}" for p in r["problems"]]
    return found


def kindless(nodes) -> bool:
    """Whether the nodes are the docker provider's (no Kubernetes API behind them)."""
    from nppctl.access.providers.docker import LABEL_PROVIDER, DockerProvider

    return all(n.container.labels.get(LABEL_PROVIDER) == DockerProvider.name for n in nodes)


def read_map(cluster: str, *, node: str | None = None) -> dict:
    """The map of CLUSTER read from its nodes now; with NODE, only that node is kept (all are read:
    routes and paths need every node's subnet and address)."""
    from nppctl.access import agent
    from nppctl.access.nodes import find_nodes, for_each_node, list_nodes, not_running

    nodes = list_nodes(cluster, stopped=True)
    keep = {n.name for n in find_nodes(cluster, [node], stopped=True)} if node else None

    def facts(n):
        if not n.running:
            return not_running(n)
        return agent.run_agent(n, "map", {})

    read = for_each_node(nodes, facts, keep_errors=True)
    api_pods = None
    if not kindless(nodes):
        from nppctl.access import kube

        api_pods = kube.list_pods(cluster)
    result = build(cluster, nodes, read, api_pods)
    if keep is not None:
        result["nodes"] = [n for n in result["nodes"] if n["name"] in keep]
        result["problems"] = sum((_all_problems(n) for n in result["nodes"]), [])
    return result
