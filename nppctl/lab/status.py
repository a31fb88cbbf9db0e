"""`nppctl status`: what each node has of the lab, read from the nodes themselves.

Per node: role, address, pod subnet (from the first conflist; else, as for a course-style conf with
subnet_network/subnet_node, the subnet nppctl's install recorded), plugin and conflist installed (each
plugin of the conflist answered CNI VERSION in the node: nodeside/cniversion.py), whose plugin it is
(built-in nppnet / nppnet-skel or the user's file, from the install record when that record describes
the conflist in use) with the sha256 of its executable in the node and the user's conf file,
python3, cni0 up with the subnet's gateway (where nppnet owns cni0 it makes it at every ADD: no
cni0 before the first pod is right), a route to every other node's pod subnet via that node's address
(missing ones listed), whether the keeper runs, and Ready when the caller passes it (kube layer).

A node that is not running (stopped, paused, ...) is a row too: its container state and the problem;
the other nodes still report their data.

Interface: status(cluster, *, ready: dict[str, bool] | None = None) -> list[NodeStatus];
           report(cluster) -> list[NodeStatus] (`nppctl status`: Ready from the API when it answers)
Addition: NodeStatus.to_dict(), NodeStatus.ok, NodeStatus.state (the container's state)
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field

from nppctl.access import agent
from nppctl.access.nodes import Node, for_each_node, list_nodes, not_running
from nppctl.errors import NppctlError


@dataclass
class NodeStatus:
    node: str
    role: str
    address: str
    state: str = "running"  # the node container's state: running, exited, paused, ...
    subnet: str | None = None
    plugin: str | None = None  # types of the first conflist's plugins, comma-separated
    plugin_present: bool = False  # every listed plugin in /opt/cni/bin answered CNI VERSION in the node
    plugin_problem: str | None = None  # why not: "<type>: <reason>" of the first one that did not
    plugin_origin: str | None = None  # "built-in" or "user" (nppctl installed it); None: not nppctl's record
    plugin_sha256: str | None = None  # sha256 of the first plugin's executable in the node
    recorded: bool = False  # nppctl's call recorder stands in front of the first plugin (`nppctl calls`)
    conf_source: str | None = None  # the user's conf file the conflist was rendered from (--conf)
    conflist: str | None = None  # the first conf file in /etc/cni/net.d (what a runtime uses)
    python3: str | None = None  # its version, None when absent
    bridge_up: bool = False
    bridge_exists: bool = False
    bridge_by: str | None = None  # who makes cni0 and the masquerade: "plugin" (nppnet, on ADD) or "node"
    gateway: str | None = None  # the address cni0 should hold
    gateway_ok: bool = False
    keeper: bool | None = None  # nppctl's keeper runs in the node (restores routes after a restart)
    routes_missing: list[str] = field(default_factory=list)  # "<subnet> via <address>"
    ready: bool | None = None  # None: the API did not answer (or no Kubernetes)
    not_ready_why: str | None = None  # why a NotReady node's kubelet has no runtime, when its journal says
    problem: str | None = None

    @property
    def routes_ok(self) -> bool:
        return not self.routes_missing

    @property
    def bridge_pending(self) -> bool:
        """cni0 not (yet) with the gateway where the plugin makes it, as it does at every ADD: no
        cni0 before the first pod, or the old gateway after a subnet change, is right, not a fault."""
        return self.bridge_by == "plugin" and not (self.bridge_up and self.gateway_ok)

    @property
    def bridge_ok(self) -> bool:
        return self.bridge_pending or (self.bridge_up and self.gateway_ok)

    @property
    def ok(self) -> bool:
        return bool(
            self.state == "running" and not self.problem
            and self.subnet and self.plugin_present and self.python3 and self.bridge_ok
            and self.routes_ok and self.ready is not False
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["routes_ok"] = self.routes_ok
        d["bridge_ok"] = self.bridge_ok
        d["bridge_pending"] = self.bridge_pending
        d["ok"] = self.ok
        return d


def _facts(node: Node) -> dict | NppctlError:
    if not node.running:
        return not_running(node)
    try:
        return agent.run_agent(node, "status", {"bridge": "cni0"})
    except NppctlError as err:
        return err


def _origin(f: dict) -> tuple[str | None, str | None]:
    """(plugin_origin, conf_source) from nppctl's install record, when it describes the conflist in use
    (not one put there by hand or by kindnet)."""
    state = f.get("state")
    types = [str(p["type"]) for p in f["plugins"]]
    if not isinstance(state, dict) or not types or state.get("plugin") != types[0] or (
            state.get("conflist") != f["conflist"]):
        return None, None
    builtin = state.get("builtin", state.get("plugin") in ("nppnet", "nppnet-skel"))  # older records
    source = state.get("conf_source")
    return ("built-in" if builtin else "user"), (str(source) if source else None)


def _recorded_subnet(f: dict) -> str | None:
    state = f.get("state")
    value = state.get("subnet") if isinstance(state, dict) else None
    try:
        return str(ipaddress.ip_network(str(value))) if value else None
    except ValueError:
        return None


def _gateway(subnet: str) -> str | None:
    try:
        net = ipaddress.ip_network(subnet)
        return f"{next(net.hosts())}/{net.prefixlen}"
    except (ValueError, StopIteration):
        return None


def report(cluster: str) -> list[NodeStatus]:
    """`nppctl status`: status() with Ready from the cluster's API (lab/api.py: None when none answers),
    and for each running NotReady node the reason its containerd gives, when known (_not_ready_why)."""
    from nppctl.lab import api

    found = status(cluster, ready=api.ready(cluster))
    if any(st.ready is False and st.state == "running" for st in found):
        nodes = {n.name: n for n in list_nodes(cluster, stopped=True) if n.running}
        for st in found:
            if st.ready is False and st.node in nodes:
                st.not_ready_why = _not_ready_why(nodes[st.node])
    return found


# containerd's CRI plugin cannot start without a watcher on /etc/cni/net.d: kubelet then finds no runtime
INOTIFY_FAILED = "failed to create fsnotify watcher: too many open files"


def _not_ready_why(node: Node) -> str | None:
    """Why NODE's kubelet has no container runtime, from containerd's journal since its last start."""
    from nppctl.access.nodes import node_run
    from nppctl.lab.doctor import INOTIFY_FIX

    journal = node_run(node, ["journalctl", "-u", "containerd", "-b", "--no-pager", "-o", "cat", "-n", "400"])
    if journal.code != 0:
        return None
    lines = journal.stdout.splitlines()
    starts = [i for i, ln in enumerate(lines) if "starting containerd" in ln]
    since = lines[starts[-1]:] if starts else lines
    if any(INOTIFY_FAILED in ln for ln in since):
        return (f"containerd has no CRI: it could not watch its CNI config ({INOTIFY_FAILED}), so the "
                f"kubelet finds no runtime: raise the host's limits, {INOTIFY_FIX}, then "
                f"`docker restart {node.name}`")
    return None


def status(cluster: str, *, ready: dict[str, bool] | None = None) -> list[NodeStatus]:
    """The lab's state on every node of `cluster`, in node order."""
    nodes = list_nodes(cluster, stopped=True)
    facts = for_each_node(nodes, _facts, keep_errors=True)
    out = []
    for node, f in zip(nodes, facts, strict=True):
        st = NodeStatus(node=node.name, role=node.role, address=node.address, state=node.state)
        if ready is not None:
            st.ready = ready.get(node.name, ready.get(node.short))
        if isinstance(f, NppctlError):
            st.problem = str(f)
            out.append(st)
            continue
        st.python3 = f["python"]
        st.subnet = f["subnet"] or _recorded_subnet(f)
        st.conflist = f["conflist"]
        st.plugin = ",".join(str(p["type"]) for p in f["plugins"]) or None
        st.plugin_sha256 = f["plugins"][0].get("sha256") if f["plugins"] else None
        st.recorded = bool(f["plugins"] and f["plugins"][0].get("recorded"))
        st.plugin_origin, st.conf_source = _origin(f)
        failing = [f"{p['type']}: {p.get('version_error') or 'not executable'}" for p in f["plugins"]
                   if not p["present"] or p.get("version_error")]
        st.plugin_present = bool(f["plugins"]) and not failing
        st.plugin_problem = failing[0] if failing else None
        st.bridge_up = bool(f["bridge"].get("up"))
        st.bridge_exists = bool(f["bridge"].get("exists"))
        st.bridge_by = (f.get("state") or {}).get("bridge_by")
        st.keeper = f.get("keeper")
        st.gateway = _gateway(st.subnet) if st.subnet else None
        st.gateway_ok = st.gateway is not None and st.gateway in f["bridge"].get("addresses", [])
        out.append(st)
    by_name = {st.node: st for st in out}
    for node, f in zip(nodes, facts, strict=True):
        if isinstance(f, NppctlError):
            continue
        have = {(r["dst"], r["via"]) for r in f["routes"]}
        for other in nodes:
            sub = by_name[other.name].subnet
            if other.name != node.name and sub and other.address and (sub, other.address) not in have:
                by_name[node.name].routes_missing.append(f"{sub} via {other.address}")
    return out
