"""What the node and the pods hold, as iproute2 tells it: links, addresses, routes, namespaces.

A pod is a network namespace of the node, /var/run/netns/NAME (cni.Pod). Standard library only,
Python 3.9 syntax: this runs wherever the card runs.
"""

import ipaddress
import json
import subprocess

NETNS_DIR = "/var/run/netns"


def run(argv, check=False, timeout=30, data=None):
    p = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip()
        raise RuntimeError("`{}` failed: {}".format(" ".join(argv), err))
    return p


def ip_json(*args):
    p = run(["ip", "-j", *args])
    if p.returncode != 0 or not p.stdout.strip():
        return []
    return json.loads(p.stdout)


def node_links():
    """name -> kind of every link of the node."""
    links = {}
    for link in ip_json("-d", "link", "show"):
        links[link.get("ifname")] = (link.get("linkinfo") or {}).get("info_kind") or ""
    return links


def pod_links(pod):
    """name -> {"mac", "mtu", "addrs": [ip_interface]} inside the pod's namespace."""
    found = {}
    for link in ip_json("-n", pod.name, "addr", "show"):
        addrs = []
        for a in link.get("addr_info", []):
            try:
                addrs.append(ipaddress.ip_interface("{}/{}".format(a["local"], a["prefixlen"])))
            except (KeyError, ValueError):
                pass
        found[link.get("ifname")] = {"mac": link.get("address"), "mtu": link.get("mtu"), "addrs": addrs}
    return found


def pod_routes(pod):
    routes = []
    for family in ("-4", "-6"):
        for r in ip_json("-n", pod.name, family, "route", "show"):
            dst = r.get("dst")
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            try:
                routes.append((ipaddress.ip_network(dst, strict=False), r.get("gateway")))
            except ValueError:
                pass
    return routes


def netns_add(names):
    if names:
        batch = "".join(f"netns add {n}\n" for n in names).encode()
        run(["ip", "-batch", "-"], check=True, data=batch)
        batch = "".join(f"-n {n} link set lo up\n" for n in names).encode()
        run(["ip", "-batch", "-"], data=batch)


def netns_del(names):
    if names:
        run(["ip", "-force", "-batch", "-"], data="".join(f"netns del {n}\n" for n in names).encode())
