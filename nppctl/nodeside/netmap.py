"""`map`: the node's data path as netlink shows it right now (`ip -j`), for `nppctl map`.

Raw facts only, interpreted on the host (nppctl/netmap/): eth0, the config files in /etc/cni/net.d
(in the order a runtime considers them), every bridge and veth of the node, its IPv4 routes, every
named network namespace (/var/run/netns: `cni add` pods, containerd's cni-* sandboxes) with its
links, addresses and routes, the `nppctl cni` runtime cache, both iptables tables (`-S`) and the
forwarding switches. Nothing is changed in the node.
"""

import os

from .base import CNI_CONF, conf_files, ip_json, read_json, run
from .facts import _first_line
from .runtime import RESULTS, SEP

FLAGS = {
    "ip_forward": "/proc/sys/net/ipv4/ip_forward",
    "bridge_nf_call_iptables": "/proc/sys/net/bridge/bridge-nf-call-iptables",
}


def _link(raw, addrs=None):
    """One link, the fields the map uses; hairpin from the bridge port data (`-d`)."""
    info = raw.get("linkinfo") or {}
    port = info.get("info_slave_data") or {}
    link = {
        "ifindex": raw.get("ifindex"),
        "ifname": raw.get("ifname"),
        "kind": info.get("info_kind"),
        "master": raw.get("master"),
        "up": "UP" in raw.get("flags", []),
        "operstate": raw.get("operstate"),
        "mtu": raw.get("mtu"),
        "mac": raw.get("address"),
        "link_index": raw.get("link_index"),
        "link_netnsid": raw.get("link_netnsid"),
        "ifalias": raw.get("ifalias"),
        "hairpin": port.get("hairpin"),
    }
    if addrs is not None:
        link["addresses"] = addrs
    return link


def _addresses(raw):
    return [
        "{}/{}".format(a["local"], a["prefixlen"])
        for a in raw.get("addr_info", [])
        if a.get("family") == "inet"
    ]


def _routes(*netns):
    prefix = ["-n", netns[0]] if netns else []
    keep = ("dst", "gateway", "dev", "scope", "prefsrc", "protocol")
    return [{k: r[k] for k in keep if k in r} for r in ip_json(*prefix, "-4", "route", "show")]


def _namespace(name, nsid):
    """A named namespace's links (with addresses) and routes, as `ip -n NAME -j` shows them."""
    links = [_link(raw, _addresses(raw)) for raw in ip_json("-n", name, "-d", "addr", "show")]
    return {"name": name, "id": nsid, "links": links, "routes": _routes(name)}


def _conf(name):
    conf = read_json(os.path.join(CNI_CONF, name))
    if not isinstance(conf, dict):
        return {"file": name, "error": "not valid JSON"}
    plugins = conf.get("plugins") if isinstance(conf.get("plugins"), list) else [conf]
    entries = [p for p in plugins if isinstance(p, dict)]
    out = {"file": name, "name": conf.get("name"), "types": [str(p.get("type")) for p in entries]}
    for p in entries:
        ipam = p.get("ipam") if isinstance(p.get("ipam"), dict) else {}
        ranges = [r for rs in ipam.get("ranges") or [] for r in rs if isinstance(r, dict)]
        subnet = p.get("subnet") or ipam.get("subnet") or next((r.get("subnet") for r in ranges), None)
        for key, value in (
            ("subnet", subnet),
            ("bridge", p.get("bridge")),
            ("gateway", p.get("gateway")),
            ("cluster_cidr", p.get("clusterCIDR")),
            ("ip_masq", p.get("ipMasq")),
        ):
            if value is not None and key not in out:
                out[key] = value
    return out


def _cache():
    try:
        names = sorted(os.listdir(RESULTS))
    except OSError:
        return []
    out = []
    for name in names:
        parts = name[: -len(".json")].split(SEP) if name.endswith(".json") else []
        if len(parts) != 3:
            continue
        data = read_json(os.path.join(RESULTS, name)) or {}
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        ips = [i.get("address") for i in result.get("ips") or [] if isinstance(i, dict)]
        out.append({"network": parts[0], "pod": parts[1], "ifname": parts[2], "ips": ips})
    return out


def _iptables(table):
    p = run(["iptables", "-w", "-t", table, "-S"], check=False)
    if p.returncode != 0:
        return None
    return p.stdout.decode(errors="replace").splitlines()


def read(spec):
    eth0 = (ip_json("addr", "show", "dev", "eth0") or [{}])[0]
    links = [_link(raw) for raw in ip_json("-d", "link", "show")]
    addrs = {raw.get("ifname"): _addresses(raw) for raw in ip_json("-4", "addr", "show")}
    for link in links:
        link["addresses"] = addrs.get(link["ifname"], [])
    netns = [_namespace(ns["name"], ns.get("id")) for ns in ip_json("netns", "list")]
    return {
        "eth0": {"addresses": _addresses(eth0), "mtu": eth0.get("mtu"), "up": "UP" in eth0.get("flags", [])},
        "conf_dir": CNI_CONF,
        "conflists": [_conf(name) for name in conf_files()],
        "links": [x for x in links if x["kind"] in ("bridge", "veth") or x["ifname"] == "eth0"],
        "routes": _routes(),
        "netns": netns,
        "cache": _cache(),
        "iptables": {"filter": _iptables("filter"), "nat": _iptables("nat")},
        "flags": {k: _first_line(v) for k, v in FLAGS.items()},
    }
