"""What `nppctl install` does in each node, decided before anything is written: a pure plan.

From what was asked (InstallJob: the plugin, a user's conf, the pod CIDR; resolved by lab/install.py)
and each node's probe (what its files hold, its eth0 MTU, its init, whether its keeper runs, its record
of the last install), plan_install gives every node its NodePlan: the files whose content or mode
differs (each put beside its place, then renamed over it: beside()), the files to remove, the setup the
node agent makes (cni0, routes, masquerade, the node's record) and how its keeper is started. A node not
installed now gets its routes to the others only. Nothing here touches a node or Docker (the plan is
unit-tested from probes written by hand: tests/lab/test_install_plan.py); lab/install.py probes the
nodes and applies the plan.

Interface: plan_install(job, nodes, targets, probes, host_plugins) -> InstallPlan; beside(path);
render_conflist(pf, assignment, pod_cidr, mtu) -> bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from nppctl.access import agent, recorder
from nppctl.errors import NppctlError
from nppctl.lab import subnets, userconf
from nppctl.nodeside.base import CNI_BIN, CNI_CONF
from nppctl.nodeside.keeper import PROGRAM as KEEPER_PROGRAM

BRIDGE = "cni0"
OUR_CONFLISTS = ("09-nppnet.conflist", "09-nppnet-skel.conflist")
# kind's default CNI: kindnetd writes this in every node; its host-local hands pods (CoreDNS,
# local-path-provisioner) addresses from the node's podCIDR, the /24 our plugin allocates from too
KINDNET_CONFLIST = "10-kindnet.conflist"
KINDNET_PATH = f"{CNI_CONF}/{KINDNET_CONFLIST}"
# A conflist file name read back from a node's own record: checked before it is removed there as root.
CONFLIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.(conflist|conf|json)$")
KEEPER_UNIT = "/etc/systemd/system/nppctl-keeper.service"
KEEPER_ARGV = ["/usr/bin/python3", KEEPER_PROGRAM, "keep", "{}"]  # the fixed command, as PID 1 runs it
KEEPER_UNIT_TEXT = f"""[Unit]
Description=nppctl keeper: this node's routes to the other nodes' pods, kept right after restarts
After=network.target

[Service]
ExecStart={" ".join(KEEPER_ARGV)}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
""".encode()

Files = dict[str, tuple[bytes, int]]  # path in the node -> (content, mode)


@dataclass
class PluginFiles:
    type: str  # plugin type = executable name in /opt/cni/bin
    builtin: bool  # nppnet / nppnet-skel (conflist rendered for it) or a user's file
    load: Callable[[], bytes]  # reads (or builds) the executable

    @functools.cached_property
    def executable(self) -> bytes:
        return self.load()

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.executable).hexdigest()

    @property
    def conflist_name(self) -> str:
        return f"09-{self.type}.conflist"


@dataclass
class InstallJob:
    """What one install was asked, resolved before any node is probed (the same for every node)."""

    cluster: str
    pf: PluginFiles
    uc: userconf.UserConf | None  # a user's conf for a user's plugin (--conf)
    pod_cidr: str
    recording: bool  # nppctl's call recorder in front of the plugin (access/recorder.py)
    chained: dict[str, str]  # type -> path in the node, of each plugin the conflist runs after ours
    subnet: str | None = None  # --subnet (one node)
    node_subnets: dict[str, str] | None = None  # node -> its podCIDR, as the API gives it
    keep_kindnet: bool = False

    conf_name: str = field(init=False)  # the conflist's file name in /etc/cni/net.d
    conf_path: str = field(init=False)
    exe_path: str = field(init=False)  # where the runtime execs the plugin (the recorder, when recording)
    real_path: str = field(init=False)  # the plugin itself behind the recorder

    def __post_init__(self) -> None:
        self.conf_name = self.uc.name if self.uc else self.pf.conflist_name
        self.conf_path = f"{CNI_CONF}/{self.conf_name}"
        self.exe_path = f"{CNI_BIN}/{self.pf.type}"
        self.real_path = f"{recorder.REAL_DIR}/{self.pf.type}"

    @property
    def node_owns_bridge(self) -> bool:
        """nppnet makes cni0 and its masquerade on ADD; for any other plugin the node does."""
        return not (self.pf.builtin and self.pf.type == "nppnet")

    def probe_paths(self) -> list[str]:
        """The files a target node's probe reports (their sha256 and mode)."""
        return [self.exe_path, self.real_path, self.conf_path, KINDNET_PATH, *self.chained.values(),
                KEEPER_PROGRAM, KEEPER_UNIT]

    def lacking(self, probes: dict, targets: list[str]) -> list[str]:
        """The chained plugin types a target node that answered lacks (the host's copy is read for them)."""
        answered = [probes[n] for n in targets if isinstance(probes.get(n), dict)]
        return [t for t, path in self.chained.items() if any(not _sha(p["files"], path) for p in answered)]


@dataclass
class NodePlan:
    """What install does in one node. A target with no error gets files, setup and keeper; a node not
    installed now (target False) only the setup of its routes."""

    node: str
    role: str
    address: str
    subnet: str
    source: str  # where the subnet came from (lab/subnets.py)
    target: bool = True
    error: str | None = None  # its probe failed: nothing is done there, its result says why
    write: Files = field(default_factory=dict)  # the files whose content or mode differs in the node
    setup: dict = field(default_factory=dict)  # the node agent's setup (nodeside/nodenet.py)
    keeper: str | None = None  # how its keeper is started: start, restart (systemd), exec; None: as it is
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about a user's conf (lab/userconf.py)

    @property
    def put(self) -> Files:
        """The files to write, each at its place beside the one setup renames it over."""
        return {beside(path): data for path, data in self.write.items()}


@dataclass
class InstallPlan:
    job: InstallJob
    headline: str  # the step that says what is installed where
    nodes: dict[str, NodePlan]  # node order; a node missing is skipped (stopped, or no agent there)
    kindnet_warning: str | None = None  # kindnet active and kept on purpose: every target's result says so


def plan_install(
    job: InstallJob, nodes: list, targets: list[str], probes: dict,
    host_plugins: dict[str, bytes] | None = None,
) -> InstallPlan:
    """Every node's plan (NODES: the cluster's, in node order, each with name, role and address) from
    its probe (PROBES: node -> the agent's probe answer, an NppctlError, or None: skipped). TARGETS are
    the nodes installed now; HOST_PLUGINS the chained plugins the host can give (type -> executable).
    Raises NppctlError when no node may be written: kindnet active (unless kept), subnets that
    overlap, a user's conf that does not render for every node."""
    kindnet_warning = _kindnet_check(job, probes, targets)
    installed = {name: _subnet_or_none(recorded(p, "subnet"))
                 for name, p in probes.items() if isinstance(p, dict)}
    assignment = subnets.assign([n.name for n in nodes], targets=targets, pod_cidr=job.pod_cidr,
                                subnet=job.subnet, node_subnets=job.node_subnets, installed=installed)
    rendered = _render_confs(job, nodes, targets, assignment, probes)
    prune = {"within": job.pod_cidr, "via": [o.address for o in nodes if o.address]}
    plans = {}
    for node in nodes:
        probe, mine = probes.get(node.name), assignment[node.name]
        if probe is None:
            continue
        plan = plans[node.name] = NodePlan(node.name, node.role, node.address, mine.subnet, mine.source,
                                           target=node.name in targets)
        routes = [{"dst": assignment[o.name].subnet, "via": o.address, "peer": o.name}
                  for o in nodes if o.name != node.name and o.address]
        if isinstance(probe, NppctlError):
            plan.error = str(probe)
        elif not plan.target:
            plan.setup = {"routes": routes, "prune": prune}
        else:
            try:
                _plan_target(job, plan, probe, mine, {"routes": routes, "prune": prune},
                             rendered.get(node.name), host_plugins or {})
            except NppctlError as err:
                plan.error = str(err)
    return InstallPlan(job, _headline(job, len(targets)), plans, kindnet_warning)


def _plan_target(job: InstallJob, plan: NodePlan, probe: dict, mine: subnets.Assignment, routing: dict,
                 rendered: userconf.RenderedConf | None, host_plugins: dict[str, bytes]) -> None:
    """PLAN of a node installed now: its files, what setup renames and removes, its keeper."""
    pf = job.pf
    conflist = rendered.data if job.uc else render_conflist(pf, mine, job.pod_cidr, probe.get("mtu"))
    wanted = {**_plugin_files(pf, job.recording), job.conf_path: (conflist, 0o644), **_keeper_files(probe)}
    plan.write, plan.warnings = _files_to_write(wanted, job.chained, probe["files"], host_plugins)
    previous = recorded(probe, "conflist")
    if previous is not None and not CONFLIST_NAME.match(str(previous)):
        plan.warnings.append(f"ignored the conflist name {previous!r} in the node's record (not a file name)")
        previous = None
    remove = {f"{CNI_CONF}/{c}" for c in (*OUR_CONFLISTS, previous) if c} - {job.conf_path}
    if not job.recording:
        remove |= set(recorder.recorder_leftovers(pf.type))
    owns = job.node_owns_bridge
    plan.setup = {
        "bridge": BRIDGE,
        "make_bridge": owns,
        "gateway_cidr": mine.gateway_cidr,
        **routing,
        "pod_subnet": mine.subnet,
        "cluster_cidr": job.pod_cidr,
        "masquerade": owns,
        "remove": sorted(remove),
        "rename": [[beside(path), path] for path in plan.write],
        "version_of": job.real_path if job.recording else job.exe_path,
        "keeper": True,
        "state": dict(_record(job, mine.subnet), recorded=job.recording),
    }
    plan.keeper = _keeper_start(probe, KEEPER_UNIT in plan.write)
    plan.notes = [*job.uc.notes, *rendered.notes] if job.uc else []


def _headline(job: InstallJob, count: int) -> str:
    pf = job.pf
    owned = f"{BRIDGE}, routes, masquerade" if job.node_owns_bridge else f"routes ({pf.type} makes {BRIDGE})"
    yours = f" with your {job.conf_name}" if job.uc else ""
    return f"Installing {pf.type}{yours} on {count} node(s): files, {owned}, keeper"


def render_conflist(
    pf: PluginFiles, assignment: subnets.Assignment, pod_cidr: str, mtu: int | None = None
) -> bytes:
    """The conflist nppctl writes for PF in a node with ASSIGNMENT's subnet."""
    from nppctl.build import artifacts

    text = artifacts.render_conflist(
        assignment.subnet,
        plugin=pf.type if pf.builtin else "nppnet",
        gateway=assignment.gateway,
        bridge=BRIDGE,
        mtu=mtu,
        cluster_cidr=pod_cidr,
    )
    if not pf.builtin:
        conf = json.loads(text)
        conf["name"] = pf.type
        # the student's plugin alone, as the course's conflist has it (nothing chained after it)
        conf["plugins"] = [dict(conf["plugins"][0], type=pf.type)]
        text = json.dumps(conf, indent=2) + "\n"
    return text.encode()


def _sha(have: dict, path: str) -> str | None:
    return (have.get(path) or {}).get("sha256")


def _files_to_write(
    wanted: Files, chained: dict[str, str], have: dict[str, dict], host_plugins: dict[str, bytes]
) -> tuple[Files, list[str]]:
    """The wanted files whose content or mode differs in the node, plus chained plugins it lacks
    (copied from the host when it has them; else a warning)."""
    def differs(path: str, data: bytes, mode: int) -> bool:
        now = have.get(path) or {}
        return now.get("sha256") != hashlib.sha256(data).hexdigest() or now.get("mode") != mode

    stale = {path: (data, mode) for path, (data, mode) in wanted.items() if differs(path, data, mode)}
    warnings = []
    for t, path in chained.items():
        if _sha(have, path):
            continue
        if t in host_plugins:
            stale[path] = (host_plugins[t], 0o755)
        else:
            warnings.append(f"the conflist chains {t}, missing in the node and on this host: ADD fails")
    return stale, warnings


def _kindnet_check(job: InstallJob, probes: dict, targets: list[str]) -> str | None:
    """Refuse a real plugin on nodes where kindnet is active (its conflist is there), unless kindnet is
    kept on purpose; then the warning each node's result carries. The skeleton allocates nothing."""
    pf, path = job.pf, KINDNET_PATH
    active = [n for n in targets if isinstance(probes.get(n), dict) and _sha(probes[n]["files"], path)]
    if not active or pf.type == "nppnet-skel":
        return None
    reason = (
        f"kindnet (kind's default CNI, {path}) is active on {', '.join(active)}: its host-local already "
        "handed pods (CoreDNS, local-path-provisioner) addresses from each node's podCIDR, the /24 "
        f"{pf.type} allocates from, so pods would get duplicate addresses"
    )
    if job.keep_kindnet:
        return reason + " (kept on purpose with --keep-kindnet; our 09- conflist sorts first and wins)"
    raise NppctlError(
        f"{reason}. Recreate the cluster without kindnet: `nppctl down --name {job.cluster}` then "
        f"`nppctl up --name {job.cluster} ...` (or `--config FILE`) without --keep-kindnet; or pass "
        "--keep-kindnet to proceed on purpose"
    )


def _render_confs(
    job: InstallJob, nodes: list, targets: list[str], assignment: dict[str, subnets.Assignment], probes: dict
) -> dict[str, userconf.RenderedConf]:
    """The user's conf rendered for every target node that answered its probe (node_index: its place
    in node order), all checked before any node is written; {} without a user's conf."""
    if job.uc is None:
        return {}
    contexts = [
        userconf.NodeContext.of(n.name, index, assignment[n.name].subnet, pod_cidr=job.pod_cidr,
                                bridge=BRIDGE, mtu=probes[n.name].get("mtu"))
        for index, n in enumerate(nodes)
        if n.name in targets and isinstance(probes.get(n.name), dict)
    ]
    return userconf.render_nodes(job.uc, contexts, job.pf.type)


def _record(job: InstallJob, subnet: str) -> dict:
    """What the node keeps of this install (nodeside STATE), read back by install and `nppctl status`."""
    pf, uc = job.pf, job.uc
    return {
        "plugin": pf.type,
        "builtin": pf.builtin,
        "plugin_sha256": pf.sha256,
        "conflist": job.conf_name,
        "conf_source": uc.source if uc else None,
        "subnet": subnet,
        "bridge_by": "node" if job.node_owns_bridge else "plugin",
    }


def _plugin_files(pf: PluginFiles, recording: bool) -> Files:
    """The plugin's executable at /opt/cni/bin/TYPE, or (recording) behind nppctl's call recorder."""
    if recording:
        return recorder.recorder_files(pf.type, pf.executable)
    return recorder.plain_files(pf.type, pf.executable)


def _keeper_files(probe: dict) -> Files:
    files = {KEEPER_PROGRAM: (agent.script(), 0o755)}
    if probe.get("init") == "systemd":
        files[KEEPER_UNIT] = (KEEPER_UNIT_TEXT, 0o644)
    return files


def _keeper_start(probe: dict, unit_written: bool) -> str | None:
    """How the keeper comes to run in a node (never two: the keeper itself refuses a second): its
    systemd unit started, or restarted (a new unit, or a keeper not running as the unit says), a
    detached exec where systemd is not PID 1; None when it runs as it should (a changed program
    restarts itself)."""
    if probe.get("init") == "systemd":
        if not unit_written and probe.get("keeper"):
            return None
        return "restart" if probe.get("keeper") else "start"
    return None if probe.get("keeper") else "exec"


def beside(path: str) -> str:
    """Where a file is put before setup renames it over PATH: a hidden name in the same folder that no
    reader takes for it (libcni reads only .conf/.conflist/.json; a runtime execs plugins by type).
    put_archive removes a file and writes it anew, so in between containerd could find no config (or
    read half of one), a runtime no plugin, a keeper re-executing itself half its program; a rename
    is atomic."""
    folder, name = os.path.split(path)
    return f"{folder}/.{name}.nppctl-new"


def recorded(probe: dict, key: str):
    """A value of the install record the node keeps (its own state: read back, so checked by the caller)."""
    state = probe.get("state")
    return state.get(key) if isinstance(state, dict) else None


def _subnet_or_none(value) -> str | None:
    """A subnet read back from a node's record, when it is one (else the node is given a new one)."""
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value))) if value else None
    except ValueError:
        return None
