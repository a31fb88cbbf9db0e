"""The node's own part of the pod network, as `nppctl install` sets it up (`setup` command).

cni0 with the subnet's gateway address, a route to every other node's pod subnet via that node's
address (stale ones pruned), one MASQUERADE rule for pods leaving the cluster CIDR, IPv4 forwarding,
stale conflists removed, the installed state recorded. Each step changes only what differs and
reports what it changed, so a second run reports nothing.
"""

import ipaddress
import os
import shlex
import shutil

from .base import STATE, ip_json, read_json, run, write_json

MASQ_COMMENT = "nppctl pod masquerade"


def bridge(spec, changes):
    name, gw = spec["bridge"], spec["gateway_cidr"]
    links = ip_json("link", "show", "dev", name)
    if not links:
        run(["ip", "link", "add", name, "type", "bridge"])
        changes.append(f"created bridge {name}")
        links = ip_json("link", "show", "dev", name)
    if "UP" not in links[0].get("flags", []):
        run(["ip", "link", "set", name, "up"])
        changes.append(f"set {name} up")
    have = []
    for a in (ip_json("-4", "addr", "show", "dev", name) or [{}])[0].get("addr_info", []):
        have.append("{}/{}".format(a["local"], a["prefixlen"]))
    if gw not in have:
        run(["ip", "addr", "add", gw, "dev", name])
        changes.append(f"added {gw} to {name}")
    for old in have:
        if old != gw:
            run(["ip", "addr", "del", old, "dev", name])
            changes.append(f"removed old address {old} from {name}")


def routes(spec, changes):
    for r in spec.get("routes", []):
        now = [x for x in ip_json("-4", "route", "show", "exact", r["dst"]) if x.get("dst") == r["dst"]]
        if any(x.get("gateway") == r["via"] for x in now):
            continue
        run(["ip", "route", "replace", r["dst"], "via", r["via"]])
        changes.append("route {} via {}".format(r["dst"], r["via"]))
    prune = spec.get("prune")  # {"within": pod CIDR, "via": node addresses}: routes no node wants now
    if not prune:
        return
    within = ipaddress.ip_network(prune["within"])
    wanted = {(r["dst"], r["via"]) for r in spec.get("routes", [])}
    for x in ip_json("-4", "route", "show"):
        dst, via = x.get("dst"), x.get("gateway")
        if via not in prune["via"] or (dst, via) in wanted or "/" not in str(dst):
            continue
        if ipaddress.ip_network(dst).subnet_of(within):
            run(["ip", "route", "del", dst, "via", via])
            changes.append(f"removed stale route {dst} via {via}")


def masquerade(spec, changes):
    """One MASQUERADE rule for this node's pods leaving the cluster CIDR; older ones of ours removed."""
    subnet, cluster = spec["pod_subnet"], spec["cluster_cidr"]
    rule = ["-s", subnet, "!", "-d", cluster, "-m", "comment", "--comment", MASQ_COMMENT, "-j", "MASQUERADE"]
    if run(["iptables", "-t", "nat", "-C", "POSTROUTING", *rule], check=False).returncode != 0:
        run(["iptables", "-t", "nat", "-A", "POSTROUTING", *rule])
        changes.append(f"masquerade {subnet} leaving {cluster}")
    listed = run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout.decode()
    for line in listed.splitlines():
        args = shlex.split(line)
        if MASQ_COMMENT not in args or args[:1] != ["-A"]:
            continue
        src, dst = args[args.index("-s") + 1], args[args.index("-d") + 1]
        if (src, dst) != (subnet, cluster):
            run(["iptables", "-t", "nat", "-D", *args[1:]])
            changes.append(f"removed stale masquerade of {src} leaving {dst}")


def forwarding(changes, warnings):
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return
    try:
        with open(path, "w") as f:
            f.write("1")
        changes.append("enabled IPv4 forwarding")
    except OSError:
        warnings.append("IPv4 forwarding is off and /proc/sys is read-only: pods cannot reach other nodes")


def setup(spec):
    changes, warnings = [], []
    if spec.get("bridge"):
        bridge(spec, changes)
    routes(spec, changes)
    if spec.get("pod_subnet") and spec.get("masquerade", True):
        if shutil.which("iptables"):
            masquerade(spec, changes)
        else:
            warnings.append("no iptables in this node: pod traffic leaving the cluster is not masqueraded")
    if spec.get("bridge"):
        forwarding(changes, warnings)
    for path in spec.get("remove", []):
        if os.path.exists(path):
            os.unlink(path)
            changes.append(f"removed {path}")
    if spec.get("state") and read_json(STATE) != spec["state"]:
        write_json(STATE, spec["state"])
    return {"changes": changes, "warnings": warnings}
