"""What a node holds of the lab: `probe` (before install writes) and `status` (for `nppctl status`)."""

import os
import sys

from .base import CNI_BIN, CNI_CONF, STATE, AgentError, conf_files, ip_json, load_conflist, read_json, sha256

REAL_DIR = os.path.join(CNI_BIN, ".nppctl-real")  # a user's plugin behind nppctl's call recorder


def _first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return None


def probe(spec):
    """python3's version, sha256 and mode of the asked files, the installed state, PID 1's name
    (systemd or not), whether a keeper runs, eth0's MTU; makes spec["dirs"]."""
    from .keeper import running

    for d in spec.get("dirs", []):
        os.makedirs(d, exist_ok=True)
    files = {}
    for path in spec.get("files", []):
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = None
        files[path] = {"sha256": sha256(path), "mode": mode}
    mtu = _first_line("/sys/class/net/eth0/mtu")
    return {
        "python": sys.version.split()[0],
        "files": files,
        "state": read_json(STATE),
        "init": _first_line("/proc/1/comm"),
        "keeper": running(),
        "mtu": int(mtu) if mtu and mtu.isdigit() else None,
    }


def _range_subnet(ipam):
    for rs in ipam.get("ranges") or []:
        for r in rs:
            if r.get("subnet"):
                return r["subnet"]
    return None


def _real_plugin(ptype):
    """The plugin's own executable: REAL_DIR/<type> where a recording wrapper stands in front of it at
    CNI_BIN/<type>, else CNI_BIN/<type>."""
    real = os.path.join(REAL_DIR, ptype)
    return real if os.path.isfile(real) else os.path.join(CNI_BIN, ptype)


def status(spec):
    """The node's lab facts; each plugin of the first conflist is asked CNI VERSION (cniversion.py) and
    its executable's sha256 given (_real_plugin)."""
    from .cniversion import ask_version
    from .keeper import running

    files = conf_files()
    first = files[0] if files else None
    conf, types, subnet = None, [], None
    if first:
        try:
            conf = load_conflist(first)
        except AgentError:
            conf = None
    if conf:
        for p in conf["plugins"]:
            path = os.path.join(CNI_BIN, str(p.get("type")))
            real = _real_plugin(str(p.get("type")))
            present = os.access(path, os.X_OK) and os.access(real, os.X_OK)
            # asked of the plugin itself: a recorder in front of it would file status's VERSION as a call
            why = ask_version(real) if present else "not executable in " + CNI_BIN
            types.append({"type": p.get("type"), "present": present, "version_error": why,
                          "sha256": sha256(real), "recorded": real != path})
            ipam = p.get("ipam") or {}
            subnet = subnet or p.get("subnet") or ipam.get("subnet") or _range_subnet(ipam)
    name = spec.get("bridge", "cni0")
    bridge = {"exists": False}
    links = ip_json("link", "show", "dev", name)
    if links:
        addrs = (ip_json("-4", "addr", "show", "dev", name) or [{}])[0].get("addr_info", [])
        bridge = {
            "exists": True,
            "up": "UP" in links[0].get("flags", []),
            "addresses": ["{}/{}".format(a["local"], a["prefixlen"]) for a in addrs],
        }
    routes = [{"dst": r.get("dst"), "via": r.get("gateway")} for r in ip_json("-4", "route", "show")]
    return {
        "python": sys.version.split()[0],
        "conf_dir": CNI_CONF,
        "conf_files": files,
        "conflist": first,
        "plugins": types,
        "subnet": subnet,
        "bridge": bridge,
        "routes": routes,
        "state": read_json(STATE),
        "keeper": running(),
    }
