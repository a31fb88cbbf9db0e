"""`nppctl install`: put a CNI plugin and its conflist on kind nodes and wire the nodes together.

Per node: check python3 (`--ensure-python` installs it with apt-get), copy the plugin executable
to /opt/cni/bin (0755) and its conflist (with the node's eth0 MTU) to
/etc/cni/net.d/09-<type>.conflist with put_archive (only files whose content differs), route every
other node's pod subnet via that node's address, load br_netfilter where the node can. cni0 and the
masquerade of pod traffic leaving the cluster CIDR have one owner: nppnet makes both itself on ADD;
for any other plugin (the skeleton, a student's own, which expect cni0 to exist) the node makes them.
Then the keeper (nppctl/nodeside/keeper.py) is installed and running in every target node, so the
node keeps all this right by itself after a restart or a peer's moved address: a systemd unit where
systemd is PID 1 (kind nodes), else started now with a detached exec (the docker provider's
entrypoint starts it at every container start). Nodes in parallel; a second run changes nothing
(InstallResult.changes is empty).

A user's plugin may bring its own config (conf=FILE, `--conf`): FILE rendered per node
(lab/userconf.py: every node's render checked before any node is written) goes to
/etc/cni/net.d/<its own name> instead of 09-<type>.conflist; the node still makes cni0 and the
masquerade. The node's record (nodeside STATE) says whose plugin and conf are installed (builtin,
conf_source, plugin_sha256) for `nppctl status`.

Interface: install(cluster, *, nodes, plugin, subnet, pod_cidr, node_subnets, ensure_python, keep_kindnet,
conf, on_step) -> list[InstallResult] (target nodes, node order); install_lab(cluster, ...) is
`nppctl install`: the same with the pod CIDRs the cluster's API gives, when it answers (lab/api.py).
A node that fails (stopped, no python3, a command failing in it) is a result with its error
(InstallResult.outcome "failed"); every other node is still installed.
Addition: resolve_plugin(plugin) -> PluginFiles; resolve_conf(conf, pf) -> UserConf | None;
check_conf(conf, pf, pod_cidr, nodes) (up's preflight).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nppctl.access import agent, recorder
from nppctl.access.nodes import Node, find_nodes, for_each_node, list_nodes, node_run, not_running, put_files
from nppctl.errors import NppctlError
from nppctl.lab import subnets, userconf
from nppctl.nodeside.base import CNI_BIN, CNI_CONF
from nppctl.nodeside.keeper import PROGRAM as KEEPER_PROGRAM

BRIDGE = "cni0"
# Where the host may hold the plugins a conflist chains after ours (e.g. portmap): copied into a
# node that lacks them (kind's node image has them; a plain Debian node image does not).
HOST_CNI_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
BUILTIN = {"nppnet": "nppnet", "skel": "nppnet-skel", "nppnet-skel": "nppnet-skel"}
OUR_CONFLISTS = ("09-nppnet.conflist", "09-nppnet-skel.conflist")
# kind's default CNI: kindnetd writes this in every node; its host-local hands pods (CoreDNS,
# local-path-provisioner) addresses from the node's podCIDR, the /24 our plugin allocates from too
KINDNET_CONFLIST = "10-kindnet.conflist"
TYPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
class InstallResult:
    node: str
    role: str
    address: str
    subnet: str
    source: str  # where the subnet came from (lab/subnets.py)
    plugin: str
    conflist: str
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about a user's conf (lab/userconf.py)
    error: str | None = None  # why this node failed (the others are installed anyway)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def outcome(self) -> str:
        """done (something changed), unchanged, or failed."""
        return "failed" if self.error else ("done" if self.changes else "unchanged")


def resolve_plugin(plugin: str) -> PluginFiles:
    """nppnet / skel from nppctl.build.artifacts, or a user's executable file (its name is its type).

    Checked now as far as it can be without running it (nppctl.build.plugincheck: a #! script or a
    binary); it is asked CNI VERSION in each node, where it will run, before it replaces anything
    (nodeside/nodenet.py plugin_answers). The executable itself is built or read when first asked for
    (install does that while it probes the nodes).
    """
    if plugin in BUILTIN:
        return PluginFiles(BUILTIN[plugin], True, functools.partial(_built, BUILTIN[plugin]))
    path = Path(plugin).expanduser()
    if not path.is_file():
        raise NppctlError(
            f"--plugin {plugin!r} is neither nppnet, skel nor an existing file: give a plugin's path"
        )
    if not TYPE_NAME.match(path.name):
        raise NppctlError(
            f"plugin file name {path.name!r} cannot be a CNI type: rename it (letters, digits, ._-)"
        )
    from nppctl.build.plugincheck import check_plugin_file

    check_plugin_file(path, "--plugin")
    return PluginFiles(path.name, False, path.read_bytes)


def resolve_conf(conf: str | Path | None, pf: PluginFiles) -> userconf.UserConf | None:
    """A user's config for a user's plugin, loaded and checked as far as it can be without a node;
    refused for nppnet and the skeleton (their conflist is nppctl's)."""
    if conf is None:
        return None
    if pf.builtin:
        raise NppctlError(
            f"--conf is for your own plugin: {pf.type}'s conflist is nppctl's; give --plugin PATH with "
            "--conf, or drop --conf"
        )
    return userconf.load(conf, rivals=(KINDNET_CONFLIST,))


def check_conf(
    conf: str | Path, pf: PluginFiles, pod_cidr: str, nodes: list[str]
) -> userconf.UserConf | None:
    """up's preflight: --conf for plugin PF, rendered and checked for NODES (the pod CIDR split)."""
    uc = resolve_conf(conf, pf)
    if uc is not None:
        userconf.render_nodes(uc, userconf.sample_contexts(nodes, pod_cidr), pf.type)
    return uc


def _built(ptype: str) -> bytes:
    """The executable as artifacts.build_plugins writes it (the same sources give the same bytes,
    so an unchanged plugin is never rewritten on a node)."""
    from nppctl.build import artifacts

    with tempfile.TemporaryDirectory(prefix="nppctl-build-") as out:
        built = {path.name: path for path in artifacts.build_plugins(Path(out))}
        if ptype not in built:
            raise NppctlError(f"the plugin build did not produce {ptype}: reinstall nppctl")
        return built[ptype].read_bytes()


def _conflist(
    pf: PluginFiles, assignment: subnets.Assignment, pod_cidr: str, mtu: int | None = None
) -> bytes:
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


def _chained(pf: PluginFiles, pod_cidr: str, uc: userconf.UserConf | None = None,
             nodes: list[str] | None = None) -> list[str]:
    """The plugin types the conflist runs besides ours (the same on every node); a user's conf is
    rendered for NODES now (its faults found before any node is probed)."""
    if uc is not None:
        rendered = userconf.render_nodes(uc, userconf.sample_contexts(nodes or ["node"], pod_cidr), pf.type)
        return list(dict.fromkeys(t for r in rendered.values() for t in r.types if t != pf.type))
    sample = subnets.Assignment(subnets.split(pod_cidr, 1)[0], "split")
    plugins = json.loads(_conflist(pf, sample, pod_cidr))["plugins"]
    return [str(p["type"]) for p in plugins[1:]]


def _host_plugins(types: list[str]) -> dict[str, bytes]:
    """The chained plugins the host has, type -> executable."""
    found = {}
    for t in types:
        for d in HOST_CNI_DIRS:
            path = Path(d) / t
            if path.is_file() and os.access(path, os.X_OK):
                found[t] = path.read_bytes()
                break
    return found


def _files_to_write(
    wanted: dict[str, tuple[bytes, int]], chained: dict[str, str], have: dict[str, dict]
) -> tuple[dict[str, tuple[bytes, int]], list[str]]:
    """The wanted files whose content or mode differs in the node, plus chained plugins it lacks
    (copied from the host when it has them; else a warning)."""
    def differs(path: str, data: bytes, mode: int) -> bool:
        now = have.get(path) or {}
        return now.get("sha256") != hashlib.sha256(data).hexdigest() or now.get("mode") != mode

    stale = {path: (data, mode) for path, (data, mode) in wanted.items() if differs(path, data, mode)}
    lacking = [t for t, path in chained.items() if not have.get(path, {}).get("sha256")]
    from_host = _host_plugins(lacking)
    warnings = []
    for t in lacking:
        if t in from_host:
            stale[chained[t]] = (from_host[t], 0o755)
        else:
            warnings.append(f"the conflist chains {t}, missing in the node and on this host: ADD fails")
    return stale, warnings


def _probe(node: Node, paths: list[str], ensure_python: bool, step, dirs: list[str]) -> dict:
    spec = {"dirs": [CNI_BIN, CNI_CONF, os.path.dirname(KEEPER_PROGRAM), *dirs], "files": paths}
    try:
        return agent.run_agent(node, "probe", spec)
    except NppctlError as err:
        if not ensure_python or "python3" not in str(err):
            raise
    step(f"Installing python3 in {node.name} with apt-get")
    _ensure_python(node)
    return agent.run_agent(node, "probe", spec)


def _ensure_python(node: Node) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if node_run(node, ["apt-get", "--version"]).code != 0:
        raise NppctlError(f"node {node.name} has no apt-get: install python3 in its image yourself")
    for argv in (
        ["dpkg", "--configure", "-a"],  # finishes what an interrupted run (Ctrl-C) left half done
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3"],
    ):
        res = node_run(node, argv, env=env)
        if res.code != 0:
            last = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
            raise NppctlError(f"node {node.name}: `{' '.join(argv)}` failed: {last}")


def wait_kindnet(cluster: str, timeout: float, interval: float = 0.5) -> list[str]:
    """Poll until kindnet's conflist is on every node (kindnet kept: its DaemonSet writes it a while
    after each node has its podCIDR), so that install sees it; returns the node names."""
    import time

    path = f"{CNI_CONF}/{KINDNET_CONFLIST}"
    deadline = time.monotonic() + timeout
    while True:
        everyone = list_nodes(cluster)
        lacking = [n.name for n in everyone if node_run(n, ["test", "-e", path]).code != 0]
        if not lacking:
            return [n.name for n in everyone]
        _kindnet_cannot_start(cluster)
        if time.monotonic() > deadline:
            raise NppctlError(
                f"kindnet was kept but wrote no {path} on {', '.join(lacking)} in {timeout:.0f}s: "
                f"see `kubectl -n kube-system logs ds/kindnet`, or recreate without --keep-kindnet"
            )
        time.sleep(interval)


def _kindnet_cannot_start(cluster: str) -> None:
    """NppctlError when kindnet's pods cannot get their image (a node image without kindnetd, no registry
    giving it): kindnet would never run, so waiting for its conflist is pointless."""
    from nppctl.access import kube

    try:
        stuck = kube.image_pull_failures(cluster, "kube-system", "app=kindnet")
    except NppctlError:
        return  # the API is not answering yet: the wait goes on
    if stuck:
        raise NppctlError(
            f"kindnet was kept but its pods cannot start: {', '.join(stuck)}; the node image does not "
            "hold kindnetd and no registry gives it: recreate without --keep-kindnet (nppctl's keeper "
            "routes the nodes), or use a node image that holds kindnetd (kindest/node does)"
        )


def _kindnet_check(
    cluster: str, pf: PluginFiles, probes: dict, targets: list[str], path: str, keep: bool
) -> str | None:
    """Refuse a real plugin on nodes where kindnet is active (its conflist is there), unless kindnet is
    kept on purpose; then the warning each node's result carries. The skeleton allocates nothing."""
    active = [
        n for n in targets
        if isinstance(probes.get(n), dict) and (probes[n]["files"].get(path) or {}).get("sha256")
    ]
    if not active or pf.type == "nppnet-skel":
        return None
    reason = (
        f"kindnet (kind's default CNI, {path}) is active on {', '.join(active)}: its host-local already "
        "handed pods (CoreDNS, local-path-provisioner) addresses from each node's podCIDR, the /24 "
        f"{pf.type} allocates from, so pods would get duplicate addresses"
    )
    if keep:
        return reason + " (kept on purpose with --keep-kindnet; our 09- conflist sorts first and wins)"
    raise NppctlError(
        f"{reason}. Recreate the cluster without kindnet: `nppctl down --name {cluster}` then "
        f"`nppctl up --name {cluster} ...` (or `--config FILE`) without --keep-kindnet; or pass "
        "--keep-kindnet to proceed on purpose"
    )


def _plugin_owns_bridge(pf: PluginFiles) -> bool:
    """nppnet makes cni0 and its masquerade on ADD; for any other plugin the node does."""
    return pf.builtin and pf.type == "nppnet"


def _render_confs(
    uc: userconf.UserConf | None, pf: PluginFiles, everyone: list[Node], targets: list[str],
    plan: dict[str, subnets.Assignment], probes: dict, pod_cidr: str,
) -> dict[str, userconf.RenderedConf]:
    """The user's conf rendered for every target node that answered its probe (node_index: its place
    in node order), all checked before any node is written; {} without a user's conf."""
    if uc is None:
        return {}
    contexts = [
        userconf.NodeContext.of(n.name, index, plan[n.name].subnet, pod_cidr=pod_cidr, bridge=BRIDGE,
                                mtu=probes[n.name].get("mtu"))
        for index, n in enumerate(everyone)
        if n.name in targets and isinstance(probes.get(n.name), dict)
    ]
    return userconf.render_nodes(uc, contexts, pf.type)


def _record(
    pf: PluginFiles, conf_name: str, uc: userconf.UserConf | None, subnet: str, node_owns: bool
) -> dict:
    """What the node keeps of this install (nodeside STATE), read back by install and `nppctl status`."""
    return {
        "plugin": pf.type,
        "builtin": pf.builtin,
        "plugin_sha256": pf.sha256,
        "conflist": conf_name,
        "conf_source": uc.source if uc else None,
        "subnet": subnet,
        "bridge_by": "node" if node_owns else "plugin",
    }


def _plugin_files(pf: PluginFiles, recording: bool) -> dict[str, tuple[bytes, int]]:
    """The plugin's executable at /opt/cni/bin/TYPE, or (recording) behind nppctl's call recorder."""
    if recording:
        return recorder.recorder_files(pf.type, pf.executable)
    return recorder.plain_files(pf.type, pf.executable)


def _keeper_files(probe: dict) -> dict[str, tuple[bytes, int]]:
    files = {KEEPER_PROGRAM: (agent.script(), 0o755)}
    if probe.get("init") == "systemd":
        files[KEEPER_UNIT] = (KEEPER_UNIT_TEXT, 0o644)
    return files


def beside(path: str) -> str:
    """Where a file is put before setup renames it over PATH: a hidden name in the same folder that no
    reader takes for it (libcni reads only .conf/.conflist/.json; a runtime execs plugins by type)."""
    folder, name = os.path.split(path)
    return f"{folder}/.{name}.nppctl-new"


def _beside(stale: dict[str, tuple[bytes, int]]) -> tuple[dict[str, tuple[bytes, int]], list[list[str]]]:
    """The files to put, each beside its place, and the renames setup makes, in order: put_archive
    removes a file and writes it anew, so in between containerd could find no config (or read half of
    one), a runtime no plugin, a keeper re-executing itself half its program; a rename is atomic."""
    return ({beside(path): data for path, data in stale.items()},
            [[beside(path), path] for path in stale])


def _start_keeper(node: Node, probe: dict, unit_written: bool) -> list[str]:
    """The keeper running in NODE (never two: the keeper itself refuses a second); what was done."""
    if probe.get("init") == "systemd":
        if not unit_written and probe.get("keeper"):
            return []
        for argv in (
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "nppctl-keeper.service"],
            ["systemctl", "restart" if probe.get("keeper") else "start", "nppctl-keeper.service"],
        ):
            res = node_run(node, argv)
            if res.code != 0:
                last = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
                raise NppctlError(f"node {node.name}: `{' '.join(argv)}` failed: {last}")
        return ["keeper enabled and started (systemd unit nppctl-keeper.service)"]
    if probe.get("keeper"):
        return []  # a changed program restarts itself
    node.container.exec_run(KEEPER_ARGV, detach=True)
    deadline = time.monotonic() + 5
    while not agent.run_agent(node, "probe", {"files": []}).get("keeper"):
        if time.monotonic() > deadline:
            raise NppctlError(
                f"node {node.name}: the keeper did not start; see {node.name}'s /var/log/nppctl-keeper.log"
            )
        time.sleep(0.1)
    return ["keeper started"]


def install(
    cluster: str,
    *,
    nodes: list[str] | None = None,
    plugin: str = "nppnet",
    subnet: str | None = None,
    pod_cidr: str = "10.244.0.0/16",
    node_subnets: dict[str, str] | None = None,
    ensure_python: bool = False,
    keep_kindnet: bool = False,
    conf: str | Path | None = None,
    record: bool | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[InstallResult]:
    """Install `plugin` on `nodes` (None: all) of `cluster`; see the module docstring. RECORD puts nppctl's
    call recorder in front of the plugin (access/recorder.py; None: for a user's plugin, not a built-in)."""
    step = on_step or (lambda _msg: None)
    step(f"Finding the nodes of cluster {cluster}")
    everyone = list_nodes(cluster, stopped=True)
    targets = find_nodes(cluster, nodes, stopped=True) if nodes else everyone
    target_names = [n.name for n in targets]
    subnets.parse_cidr(pod_cidr, "--pod-cidr")
    pf = resolve_plugin(plugin)
    uc = resolve_conf(conf, pf)
    conf_name = uc.name if uc else pf.conflist_name
    exe_path = f"{CNI_BIN}/{pf.type}"
    recording = (not pf.builtin) if record is None else record
    real_path = f"{recorder.REAL_DIR}/{pf.type}"
    conf_path = f"{CNI_CONF}/{conf_name}"
    chained = {t: f"{CNI_BIN}/{t}" for t in _chained(pf, pod_cidr, uc, [n.name for n in everyone])
               if TYPE_NAME.match(t)}
    kindnet_path = f"{CNI_CONF}/{KINDNET_CONFLIST}"
    node_owns = not _plugin_owns_bridge(pf)

    step(f"Checking python3 on {len(everyone)} node(s)")
    building = ThreadPoolExecutor(max_workers=1)
    executable = building.submit(lambda: pf.executable)  # built while the nodes are probed
    building.shutdown(wait=False)

    def probe(node: Node) -> dict | NppctlError | None:
        if node.name in target_names:
            if not node.running:
                return not_running(node)
            try:
                paths = [exe_path, real_path, conf_path, kindnet_path, *chained.values(), KEEPER_PROGRAM,
                         KEEPER_UNIT]
                return _probe(node, paths, ensure_python, step, recorder.recorder_dirs() if recording else [])
            except NppctlError as err:
                return err  # this node fails; the others go on
        if not node.running:
            step(f"Skipping routes on {node.name}: it is {node.state}")
            return None
        try:  # nodes not installed now only get routes: skip those the agent cannot run on
            return agent.run_agent(node, "probe", {"files": []})
        except NppctlError as err:
            step(f"Skipping routes on {node.name}: {err}")
            return None

    probes = dict(zip([n.name for n in everyone], for_each_node(everyone, probe), strict=True))
    executable.result()  # a build failure raises here
    kindnet_warning = _kindnet_check(cluster, pf, probes, target_names, kindnet_path, keep_kindnet)
    recorded = {name: _recorded(p, "subnet") for name, p in probes.items() if isinstance(p, dict)}
    installed = {name: _subnet_or_none(value) for name, value in recorded.items()}
    plan = subnets.assign(
        [n.name for n in everyone],
        targets=target_names,
        pod_cidr=pod_cidr,
        subnet=subnet,
        node_subnets=node_subnets,
        installed=installed,
    )
    rendered = _render_confs(uc, pf, everyone, target_names, plan, probes, pod_cidr)
    owned = f"{BRIDGE}, routes, masquerade" if node_owns else f"routes ({pf.type} makes {BRIDGE})"
    yours = f" with your {conf_name}" if uc else ""
    step(f"Installing {pf.type}{yours} on {len(targets)} node(s): files, {owned}, keeper")

    def failed(node: Node, err: NppctlError) -> InstallResult:
        mine = plan[node.name]
        return InstallResult(node.name, node.role, node.address, mine.subnet, mine.source, pf.type, conf_path,
                             error=str(err))

    def apply(node: Node) -> InstallResult | None:
        if isinstance(probes[node.name], NppctlError):
            return failed(node, probes[node.name])
        if probes[node.name] is None:
            return None
        try:
            return _apply(node)
        except NppctlError as err:
            if node.name in target_names:
                return failed(node, err)
            step(f"Skipping routes on {node.name}: {err}")
            return None

    def _apply(node: Node) -> InstallResult | None:
        others = [o for o in everyone if o.name != node.name and o.address]
        routes = [{"dst": plan[o.name].subnet, "via": o.address, "peer": o.name} for o in others]
        prune = {"within": pod_cidr, "via": [o.address for o in everyone if o.address]}
        if node.name not in target_names:
            for change in agent.run_agent(node, "setup", {"routes": routes, "prune": prune})["changes"]:
                step(f"Rerouted {node.name} (not reinstalled): {change}")
            return None
        mine = plan[node.name]
        facts = probes[node.name]
        conflist = rendered[node.name].data if uc else _conflist(pf, mine, pod_cidr, facts.get("mtu"))
        wanted = {**_plugin_files(pf, recording), conf_path: (conflist, 0o644), **_keeper_files(facts)}
        stale, warnings = _files_to_write(wanted, chained, facts["files"])
        if stale:
            put_files(node, _beside(stale)[0])
        previous = _recorded(probes[node.name], "conflist")
        if previous is not None and not CONFLIST_NAME.match(str(previous)):
            warnings.append(f"ignored the conflist name {previous!r} in the node's record (not a file name)")
            previous = None
        remove = {f"{CNI_CONF}/{c}" for c in (*OUR_CONFLISTS, previous) if c} - {conf_path}
        if not recording:
            remove |= set(recorder.recorder_leftovers(pf.type))
        answer = agent.run_agent(
            node,
            "setup",
            {
                "bridge": BRIDGE,
                "make_bridge": node_owns,
                "gateway_cidr": mine.gateway_cidr,
                "routes": routes,
                "prune": prune,
                "pod_subnet": mine.subnet,
                "cluster_cidr": pod_cidr,
                "masquerade": node_owns,
                "remove": sorted(remove),
                "rename": _beside(stale)[1],
                "version_of": real_path if recording else exe_path,
                "keeper": True,
                "state": dict(_record(pf, conf_name, uc, mine.subnet, node_owns), recorded=recording),
            },
        )
        started = _start_keeper(node, facts, KEEPER_UNIT in stale)
        return InstallResult(
            node=node.name,
            role=node.role,
            address=node.address,
            subnet=mine.subnet,
            source=mine.source,
            plugin=pf.type,
            conflist=conf_path,
            changes=[f"wrote {p}" for p in stale] + answer["changes"] + started,
            warnings=warnings + answer["warnings"] + ([kindnet_warning] if kindnet_warning else []),
            notes=[*uc.notes, *rendered[node.name].notes] if uc else [],
        )

    return [r for r in for_each_node(everyone, apply) if r is not None]


def install_lab(
    cluster: str, *, on_step: Callable[[str], None] | None = None, **options
) -> list[InstallResult]:
    """`nppctl install`: install(cluster, **OPTIONS) with each node's pod CIDR from the cluster's API when
    it answers (a step of its own), else --pod-cidr split; a kindless lab has no API, and no step
    pretends to ask it."""
    from nppctl.lab import api

    node_subnets = None
    if not api.kindless(cluster):
        (on_step or (lambda _msg: None))(f"Asking cluster {cluster}'s API for pod CIDRs")
        node_subnets = api.pod_cidrs(cluster)
    return install(cluster, node_subnets=node_subnets, on_step=on_step, **options)


def _subnet_or_none(value) -> str | None:
    """A subnet read back from a node's record, when it is one (else the node is given a new one)."""
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value))) if value else None
    except ValueError:
        return None


def _recorded(probe: dict, key: str):
    """A value of the install record the node keeps (its own state: read back, so checked by the caller)."""
    state = probe.get("state")
    return state.get(key) if isinstance(state, dict) else None
