"""The container runtime's part, played inside a node: the node agent nppctl ships with each call.

This whole file runs in two places:
- on the host (imported): cni_call / cni_exec / run_agent send this file's source to a node's own
  python3, the one the plugin's shebang names (`/usr/bin/python3 - COMMAND SPEC_JSON`, source on
  stdin): one docker exec per node and task.
- in the node (as a script): the `_cmd_*` functions below do the work with `ip`/`iptables` argv
  lists and print one JSON object. Stdlib only at top level, Python 3.9 syntax.

Agent commands: probe (python3 check, file hashes, installed state), setup (cni0, routes,
masquerade, stale conflists), status (facts for `nppctl status`), cni (ADD/DEL/CHECK as a runtime
runs a conflist, result cached in /var/lib/cni/nppctl/results for DEL/CHECK's prevResult).

Interface: cni_call(cluster, node, pod, command, ifname="eth0") -> dict, cni_exec(cluster, node, pod, argv)
Additions: run_agent(node, command, spec) -> dict; POD_NAME (the pod/netns names accepted).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

CNI_BIN = "/opt/cni/bin"
CNI_CONF = "/etc/cni/net.d"
NETNS_DIR = "/var/run/netns"
RESULTS = "/var/lib/cni/nppctl/results"
STATE = "/var/lib/nppctl/installed.json"  # {"plugin": type, "conflist": file name, "subnet": ...}
POD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
CONF_EXTS = (".conf", ".conflist", ".json")
PLUGIN_TIMEOUT = 60  # seconds one plugin call may take before the runtime kills it


# ---------------------------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------------------------
class AgentError(Exception):
    """Raised in the node: becomes {"error": ...} on stdout and exit 1."""

    def __init__(self, msg, cni=None):
        super().__init__(msg)
        self.msg = msg
        self.cni = cni


def _source() -> bytes:
    with open(os.path.abspath(__file__), "rb") as f:
        return f.read()


def run_agent(node, command: str, spec: dict) -> dict:
    """Run this file in the node with the plugin's python3 (its shebang's): JSON answer or NppctlError."""
    from nppctl.artifacts import PYTHON
    from nppctl.errors import NppctlError
    from nppctl.nodes import node_run

    res = node_run(node, [PYTHON, "-", command, json.dumps(spec)], stdin=_source())
    if res.code in (126, 127) and "python3" in (res.stdout + res.stderr):
        raise NppctlError(
            f"node {node.name} has no python3 at {PYTHON}: nppnet and nppctl's node agent need it; rerun "
            f"`nppctl install --name {node.cluster} ... --ensure-python` to install it with the node's "
            "package manager (apt-get)"
        )
    if "No module named" in res.stderr:
        missing = res.stderr.strip().splitlines()[-1]
        raise NppctlError(
            f"node {node.name}'s python3 cannot import the standard library ({missing}); rerun "
            f"`nppctl install --name {node.cluster} ... --ensure-python` to install the full python3 "
            "with apt-get"
        )
    try:
        answer = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        detail = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        raise NppctlError(
            f"node {node.name}: nppctl's node agent failed ({command}, exit {res.code}): {detail}"
        )
    if "error" in answer:
        err = answer["error"]
        raise NppctlError(f"node {node.name}: {err}")
    return answer


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
    return run_agent(target, "cni", {"command": command, "pod": pod, "ifname": ifname})["result"]


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


# ---------------------------------------------------------------------------------------------
# node side (runs in the node's python3)
# ---------------------------------------------------------------------------------------------
def _run(argv, check=True):
    try:
        p = subprocess.run(argv, capture_output=True)
    except FileNotFoundError:
        raise AgentError(f"`{argv[0]}` is not installed in this node (the lab needs iproute2)") from None
    if check and p.returncode != 0:
        raise AgentError("`{}` failed: {}".format(" ".join(argv), p.stderr.decode(errors="replace").strip()))
    return p


def _ip_json(*args):
    p = _run(["ip", "-j", *args], check=False)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    return json.loads(p.stdout)


def _sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _conf_files():
    try:
        names = sorted(n for n in os.listdir(CNI_CONF) if n.endswith(CONF_EXTS))
    except OSError:
        return []
    return names


def _load_conflist(name):
    """A .conflist as is; a single-plugin .conf/.json wrapped into a list, as libcni does."""
    conf = _read_json(os.path.join(CNI_CONF, name))
    if not isinstance(conf, dict):
        raise AgentError(f"{CNI_CONF}/{name} is not valid JSON")
    if "plugins" not in conf:
        conf = {"cniVersion": conf.get("cniVersion", ""), "name": conf.get("name", ""), "plugins": [conf]}
    if not conf["plugins"]:
        raise AgentError(f"{CNI_CONF}/{name} lists no plugins")
    return conf


def _cmd_probe(spec):
    for d in spec.get("dirs", []):
        os.makedirs(d, exist_ok=True)
    files = {}
    for path in spec.get("files", []):
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = None
        files[path] = {"sha256": _sha256(path), "mode": mode}
    return {"python": sys.version.split()[0], "files": files, "state": _read_json(STATE)}


def _bridge(spec, changes):
    name, gw = spec["bridge"], spec["gateway_cidr"]
    links = _ip_json("link", "show", "dev", name)
    if not links:
        _run(["ip", "link", "add", name, "type", "bridge"])
        changes.append(f"created bridge {name}")
        links = _ip_json("link", "show", "dev", name)
    if "UP" not in links[0].get("flags", []):
        _run(["ip", "link", "set", name, "up"])
        changes.append(f"set {name} up")
    have = []
    for a in (_ip_json("-4", "addr", "show", "dev", name) or [{}])[0].get("addr_info", []):
        have.append("{}/{}".format(a["local"], a["prefixlen"]))
    if gw not in have:
        _run(["ip", "addr", "add", gw, "dev", name])
        changes.append(f"added {gw} to {name}")
    for old in have:
        if old != gw:
            _run(["ip", "addr", "del", old, "dev", name])
            changes.append(f"removed old address {old} from {name}")


def _routes(spec, changes):
    for r in spec.get("routes", []):
        now = [x for x in _ip_json("-4", "route", "show", "exact", r["dst"]) if x.get("dst") == r["dst"]]
        if any(x.get("gateway") == r["via"] for x in now):
            continue
        _run(["ip", "route", "replace", r["dst"], "via", r["via"]])
        changes.append("route {} via {}".format(r["dst"], r["via"]))
    prune = spec.get("prune")  # {"within": pod CIDR, "via": node addresses}: routes no node wants now
    if not prune:
        return
    import ipaddress

    within = ipaddress.ip_network(prune["within"])
    wanted = {(r["dst"], r["via"]) for r in spec.get("routes", [])}
    for x in _ip_json("-4", "route", "show"):
        dst, via = x.get("dst"), x.get("gateway")
        if via not in prune["via"] or (dst, via) in wanted or "/" not in str(dst):
            continue
        if ipaddress.ip_network(dst).subnet_of(within):
            _run(["ip", "route", "del", dst, "via", via])
            changes.append(f"removed stale route {dst} via {via}")


MASQ_COMMENT = "nppctl pod masquerade"


def _masquerade(spec, changes):
    """One MASQUERADE rule for this node's pods leaving the cluster CIDR; older ones of ours removed."""
    import shlex

    subnet, cluster = spec["pod_subnet"], spec["cluster_cidr"]
    rule = ["-s", subnet, "!", "-d", cluster, "-m", "comment", "--comment", MASQ_COMMENT, "-j", "MASQUERADE"]
    if _run(["iptables", "-t", "nat", "-C", "POSTROUTING", *rule], check=False).returncode != 0:
        _run(["iptables", "-t", "nat", "-A", "POSTROUTING", *rule])
        changes.append(f"masquerade {subnet} leaving {cluster}")
    listed = _run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout.decode()
    for line in listed.splitlines():
        args = shlex.split(line)
        if MASQ_COMMENT not in args or args[:1] != ["-A"]:
            continue
        src, dst = args[args.index("-s") + 1], args[args.index("-d") + 1]
        if (src, dst) != (subnet, cluster):
            _run(["iptables", "-t", "nat", "-D", *args[1:]])
            changes.append(f"removed stale masquerade of {src} leaving {dst}")


def _forwarding(changes, warnings):
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


def _cmd_setup(spec):
    changes, warnings = [], []
    if spec.get("bridge"):
        _bridge(spec, changes)
    _routes(spec, changes)
    if spec.get("pod_subnet") and spec.get("masquerade", True):
        if shutil.which("iptables"):
            _masquerade(spec, changes)
        else:
            warnings.append("no iptables in this node: pod traffic leaving the cluster is not masqueraded")
    if spec.get("bridge"):
        _forwarding(changes, warnings)
    for path in spec.get("remove", []):
        if os.path.exists(path):
            os.unlink(path)
            changes.append(f"removed {path}")
    if spec.get("state") and _read_json(STATE) != spec["state"]:
        _write_json(STATE, spec["state"])
    return {"changes": changes, "warnings": warnings}


def _cmd_status(spec):
    conf = None
    files = _conf_files()
    first = files[0] if files else None
    types, subnet = [], None
    if first:
        try:
            conf = _load_conflist(first)
        except AgentError:
            conf = None
    if conf:
        for p in conf["plugins"]:
            types.append(
                {
                    "type": p.get("type"),
                    "present": os.access(os.path.join(CNI_BIN, str(p.get("type"))), os.X_OK),
                }
            )
            ipam = p.get("ipam") or {}
            subnet = subnet or p.get("subnet") or ipam.get("subnet") or _range_subnet(ipam)
    bridge = {"exists": False}
    links = _ip_json("link", "show", "dev", spec.get("bridge", "cni0"))
    if links:
        addrs = (_ip_json("-4", "addr", "show", "dev", spec.get("bridge", "cni0")) or [{}])[0].get(
            "addr_info", []
        )
        bridge = {
            "exists": True,
            "up": "UP" in links[0].get("flags", []),
            "addresses": ["{}/{}".format(a["local"], a["prefixlen"]) for a in addrs],
        }
    routes = [{"dst": r.get("dst"), "via": r.get("gateway")} for r in _ip_json("-4", "route", "show")]
    return {
        "python": sys.version.split()[0],
        "conf_files": files,
        "conflist": first,
        "plugins": types,
        "subnet": subnet,
        "bridge": bridge,
        "routes": routes,
        "state": _read_json(STATE),
    }


def _range_subnet(ipam):
    for rs in ipam.get("ranges") or []:
        for r in rs:
            if r.get("subnet"):
                return r["subnet"]
    return None


def _find_plugin(ptype):
    path = os.path.join(CNI_BIN, str(ptype))
    if not os.access(path, os.X_OK):
        raise AgentError(f"failed to find plugin {ptype!r} in path [{CNI_BIN}]")
    return path


def _invoke(plugin, conf, env, timeout):
    argv = [_find_plugin(plugin["type"])]
    try:
        p = subprocess.run(
            argv, input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        what = f"plugin {plugin['type']} {env['CNI_COMMAND']}"
        raise AgentError(f"{what} did not finish in {timeout}s: killed") from None
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        try:
            err = json.loads(out)
        except ValueError:
            err = None
        if not isinstance(err, dict):
            err = {"code": 999, "msg": out or p.stderr.decode(errors="replace").strip() or "no output"}
        details = f" ({err['details']})" if err.get("details") else ""
        what = f"plugin {plugin['type']} {env['CNI_COMMAND']} failed"
        raise AgentError(f"{what}: code {err.get('code')}: {err.get('msg')}{details}", cni=err)
    if not out:
        return None
    try:
        return json.loads(out)
    except ValueError:
        what = f"plugin {plugin['type']} {env['CNI_COMMAND']}"
        raise AgentError(f"{what} printed no JSON: {out[:200]}") from None


def _cmd_cni(spec):
    command, pod, ifname = spec["command"], spec["pod"], spec["ifname"]
    netns = os.path.join(NETNS_DIR, pod)
    cache = os.path.join(RESULTS, f"{pod}-{ifname}.json")
    if command in ("ADD", "CHECK") and not os.path.exists(netns):
        if command == "CHECK":
            raise AgentError(f"pod {pod} has no network namespace: run `nppctl cni add` first")
        _run(["ip", "netns", "add", pod])
        _run(["ip", "-n", pod, "link", "set", "lo", "up"])  # loopback is the runtime's part, not the plugin's
    files = _conf_files()
    if not files:
        raise AgentError(f"no network config in {CNI_CONF}: run `nppctl install` first")
    conflist = _load_conflist(files[0])
    env = dict(
        os.environ,
        CNI_COMMAND=command,
        CNI_CONTAINERID=pod,
        CNI_NETNS=netns,
        CNI_IFNAME=ifname,
        CNI_PATH=CNI_BIN,
        CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
    )
    cached = _read_json(cache)
    prev = cached.get("result") if isinstance(cached, dict) else None
    if command == "CHECK" and prev is None:
        raise AgentError(f"no cached ADD result for pod {pod}: run `nppctl cni add` first")
    plugins = list(conflist["plugins"])
    result = None
    if command == "DEL":
        plugins.reverse()
        result = prev
    elif command == "ADD":
        prev = None
    for plugin in plugins:
        conf = dict(plugin, name=conflist.get("name", ""), cniVersion=conflist.get("cniVersion", ""))
        if prev is not None:
            conf["prevResult"] = prev
        out = _invoke(plugin, conf, env, spec.get("timeout", PLUGIN_TIMEOUT))
        if command == "ADD":
            if not isinstance(out, dict):
                raise AgentError("plugin {} ADD printed no result".format(plugin["type"]))
            prev = result = out
    if command == "ADD":
        _write_json(cache, {"conflist": files[0], "result": result})
    if command == "DEL":
        if os.path.exists(cache):
            os.unlink(cache)
        if os.path.exists(netns):
            _run(["ip", "netns", "del", pod])
        result = {}
    return {"result": result or {}, "conflist": files[0]}


def _agent_main(argv):
    commands = {"probe": _cmd_probe, "setup": _cmd_setup, "status": _cmd_status, "cni": _cmd_cni}
    try:
        answer = commands[argv[1]](json.loads(argv[2]))
        code = 0
    except AgentError as err:
        answer, code = {"error": err.msg, "cni": err.cni}, 1
    sys.stdout.write(json.dumps(answer) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(_agent_main(sys.argv))
