"""What a plugin's answers are held to: an ADD result against its cniVersion's result type, the
result against what the pod and the node hold, an error object against the spec's.

Standard library only, Python 3.9 syntax: this runs wherever the card runs.
"""

import ipaddress

from nppctl.conformance.cni import tail, vtuple
from nppctl.conformance.node import ip_json, pod_links, pod_routes


def ip_of(cidr):
    try:
        return str(ipaddress.ip_interface(cidr).ip) if cidr else None
    except ValueError:
        return None


def gateway(result):
    for ip in (result or {}).get("ips") or []:
        if isinstance(ip, dict) and ip.get("gateway"):
            return str(ip["gateway"])
    return None


def error_problems(c):
    problems = []
    if c.timed_out:
        return [f"no answer in {c.seconds:.0f}s (killed)"]
    if c.rc == 0:
        problems.append("exit code 0")
    err = c.obj
    if err is None:
        problems.append(f"no JSON error object on stdout ({tail(c.out, 120)!r})")
    else:
        if not isinstance(err.get("code"), int) or isinstance(err.get("code"), bool):
            problems.append("the error object has no integer code")
        if not isinstance(err.get("msg"), str):
            problems.append("the error object has no msg")
    return problems


def _listed(result, key, problems):
    value = result.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(f"{key} is not a list")
    return []


def result_problems(result, version, pod):
    """Where the ADD result breaks the result type of its cniVersion."""
    problems = []
    if str(result.get("cniVersion")) != version:
        problems.append(f"cniVersion {result.get('cniVersion')!r}, the config's is {version}")
    interfaces = _listed(result, "interfaces", problems)
    for i, iface in enumerate(interfaces):
        if not isinstance(iface, dict) or not isinstance(iface.get("name"), str) or not iface.get("name"):
            problems.append(f"interfaces[{i}] has no name")
            continue
        for key, kind in (("mac", str), ("sandbox", str), ("mtu", int)):
            if key in iface and not isinstance(iface[key], kind):
                problems.append(f"interfaces[{i}].{key} is not a {kind.__name__}")
    named = [i for i in interfaces if isinstance(i, dict) and i.get("name") == pod.ifname]
    if not any(i.get("sandbox") == pod.netns for i in named):
        problems.append(f"no interface {pod.ifname} with sandbox {pod.netns}")
    ips = _listed(result, "ips", problems)
    if not ips:
        problems.append("no ips")
    for i, ip in enumerate(ips):
        if not isinstance(ip, dict):
            problems.append(f"ips[{i}] is not an object")
            continue
        try:
            iface = ipaddress.ip_interface(ip.get("address"))
            if "/" not in str(ip.get("address")):
                raise ValueError
        except (ValueError, TypeError):
            problems.append(f"ips[{i}].address {ip.get('address')!r} is not a CIDR address")
            iface = None
        if "gateway" in ip:
            try:
                ipaddress.ip_address(ip["gateway"])
            except (ValueError, TypeError):
                problems.append(f"ips[{i}].gateway {ip['gateway']!r} is not an IP")
        if "interface" in ip:
            index = ip["interface"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(interfaces):
                problems.append(f"ips[{i}].interface {index!r} is not an index into interfaces")
        if vtuple(version) < (1, 0, 0):
            if ip.get("version") not in ("4", "6"):
                problems.append(f"ips[{i}].version {ip.get('version')!r}: {version} wants \"4\" or \"6\"")
            elif iface is not None and ip["version"] != str(iface.version):
                problems.append(f"ips[{i}].version {ip['version']} for an IPv{iface.version} address")
    routes = _listed(result, "routes", problems)
    for i, r in enumerate(routes):
        try:
            ipaddress.ip_network(r.get("dst"), strict=False)
            if "/" not in str(r.get("dst")):
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            problems.append(f"routes[{i}].dst {r.get('dst') if isinstance(r, dict) else r!r} is not a CIDR")
            continue
        if "gw" in r:
            try:
                ipaddress.ip_address(r["gw"])
            except (ValueError, TypeError):
                problems.append(f"routes[{i}].gw {r['gw']!r} is not an IP")
    if "dns" in result and not isinstance(result["dns"], dict):
        problems.append("dns is not an object")
    return problems


def truth_problems(result, pod):
    """Where what the result claims differs from the pod's namespace and the node."""
    problems = []
    inside = pod_links(pod)
    links = {link.get("ifname"): link for link in ip_json("link", "show")}
    interfaces = [i for i in result.get("interfaces") or [] if isinstance(i, dict)]
    for iface in interfaces:
        name = iface.get("name")
        if iface.get("sandbox"):
            have = inside.get(name)
            where = "the pod"
            mac = have and have["mac"]
            mtu = have and have["mtu"]
        else:
            have = links.get(name)
            where = "the node"
            mac = have and have.get("address")
            mtu = have and have.get("mtu")
        if have is None:
            problems.append(f"interface {name} is not in {where}")
            continue
        if iface.get("mac") and str(iface["mac"]).lower() != str(mac).lower():
            problems.append(f"{name} in {where} has MAC {mac}, the result says {iface['mac']}")
        if isinstance(iface.get("mtu"), int) and iface["mtu"] and iface["mtu"] != mtu:
            problems.append(f"{name} in {where} has MTU {mtu}, the result says {iface['mtu']}")
    for ip in result.get("ips") or []:
        try:
            want = ipaddress.ip_interface(ip.get("address"))
        except (ValueError, TypeError, AttributeError):
            continue
        index = ip.get("interface")
        target = interfaces[index] if isinstance(index, int) and 0 <= index < len(interfaces) else None
        if target is not None and not target.get("sandbox"):
            continue  # an address on a node interface: not the pod's
        names = [target.get("name")] if target is not None else list(inside)
        if not any(want in (inside.get(n) or {}).get("addrs", []) for n in names):
            problems.append(f"{want} is not on {'/'.join(map(str, names))} in the pod")
    routes = pod_routes(pod)
    for r in result.get("routes") or []:
        try:
            dst = ipaddress.ip_network(r.get("dst"), strict=False)
        except (ValueError, TypeError, AttributeError):
            continue
        gw = r.get("gw")  # omitted: a gateway of the plugin's choosing
        if not any(d == dst and (not gw or g == gw) for d, g in routes):
            problems.append(f"route to {dst}" + (f" via {gw}" if gw else "") + " is not in the pod")
    return problems
