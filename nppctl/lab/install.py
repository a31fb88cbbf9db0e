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

How: the nodes are probed (what their files hold, python3 there), then lab/installplan.py decides every
node's plan from the probes alone (pure: which files differ, what setup renames and removes, the keeper),
then each node's plan is applied (apply: put the files, run the node agent's setup, start the keeper).

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
from nppctl.lab.installplan import (
    KEEPER_ARGV,
    KINDNET_CONFLIST,
    KINDNET_PATH,
    InstallJob,
    InstallPlan,
    NodePlan,
    PluginFiles,
    plan_install,
    render_conflist,
)
from nppctl.nodeside.base import CNI_BIN, CNI_CONF
from nppctl.nodeside.keeper import PROGRAM as KEEPER_PROGRAM

# Where the host may hold the plugins a conflist chains after ours (e.g. portmap): copied into a
# node that lacks them (kind's node image has them; a plain Debian node image does not).
HOST_CNI_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
BUILTIN = {"nppnet": "nppnet", "skel": "nppnet-skel", "nppnet-skel": "nppnet-skel"}
TYPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def _chained(pf: PluginFiles, pod_cidr: str, uc: userconf.UserConf | None = None,
             nodes: list[str] | None = None) -> list[str]:
    """The plugin types the conflist runs besides ours (the same on every node); a user's conf is
    rendered for NODES now (its faults found before any node is probed)."""
    if uc is not None:
        rendered = userconf.render_nodes(uc, userconf.sample_contexts(nodes or ["node"], pod_cidr), pf.type)
        return list(dict.fromkeys(t for r in rendered.values() for t in r.types if t != pf.type))
    sample = subnets.Assignment(subnets.split(pod_cidr, 1)[0], "split")
    plugins = json.loads(render_conflist(pf, sample, pod_cidr))["plugins"]
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
    path = KINDNET_PATH
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
    targets = [n.name for n in (find_nodes(cluster, nodes, stopped=True) if nodes else everyone)]
    subnets.parse_cidr(pod_cidr, "--pod-cidr")
    pf = resolve_plugin(plugin)
    uc = resolve_conf(conf, pf)
    chained = {t: f"{CNI_BIN}/{t}" for t in _chained(pf, pod_cidr, uc, [n.name for n in everyone])
               if TYPE_NAME.match(t)}
    job = InstallJob(cluster, pf, uc, pod_cidr, (not pf.builtin) if record is None else record, chained,
                     subnet=subnet, node_subnets=node_subnets, keep_kindnet=keep_kindnet)

    step(f"Checking python3 on {len(everyone)} node(s)")
    building = ThreadPoolExecutor(max_workers=1)
    executable = building.submit(lambda: pf.executable)  # built while the nodes are probed
    building.shutdown(wait=False)
    probes = dict(zip([n.name for n in everyone],
                      for_each_node(everyone, lambda n: _probe_node(job, n, targets, ensure_python, step)),
                      strict=True))
    executable.result()  # a build failure raises here
    plan = plan_install(job, everyone, targets, probes, _host_plugins(job.lacking(probes, targets)))
    step(plan.headline)
    results = for_each_node(everyone, lambda n: apply(n, plan, step))
    return [r for r in results if r is not None]


def _probe_node(
    job: InstallJob, node: Node, targets: list[str], ensure_python: bool, step: Callable[[str], None]
) -> dict | NppctlError | None:
    """A target node's probe of the files install may write (python3 given by apt-get when asked), or
    the error that fails that node; another running node's plain probe (it gets routes only), or None:
    skipped (said in a step)."""
    if node.name in targets:
        if not node.running:
            return not_running(node)
        try:
            dirs = recorder.recorder_dirs() if job.recording else []
            return _probe(node, job.probe_paths(), ensure_python, step, dirs)
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


def apply(node: Node, plan: InstallPlan, step: Callable[[str], None]) -> InstallResult | None:
    """Do NODE's plan: put the files that differ beside their places, run the node agent's setup (it
    renames them over their places, makes cni0, routes, masquerade, records the install), start the
    keeper. A failure in a target node is its result (the others go on). A node not installed now gets
    its routes only (None)."""
    mine = plan.nodes.get(node.name)
    if mine is None:
        return None
    if not mine.target and mine.error is None:
        _reroute(node, mine, step)
        return None
    result = InstallResult(node.name, node.role, node.address, mine.subnet, mine.source, plan.job.pf.type,
                           plan.job.conf_path, error=mine.error)
    if mine.error is not None:
        return result
    try:
        if mine.write:
            put_files(node, mine.put)
        answer = agent.run_agent(node, "setup", mine.setup)
        started = _start_keeper(node, mine)
    except NppctlError as err:
        result.error = str(err)
        return result
    result.changes = [f"wrote {path}" for path in mine.write] + answer["changes"] + started
    result.warnings = mine.warnings + answer["warnings"] + ([plan.kindnet_warning] if plan.kindnet_warning
                                                            else [])
    result.notes = mine.notes
    return result


def _reroute(node: Node, mine: NodePlan, step: Callable[[str], None]) -> None:
    """A node not installed now: its routes to the other nodes' pods set (a step per change), or a
    step saying they were skipped."""
    try:
        for change in agent.run_agent(node, "setup", mine.setup)["changes"]:
            step(f"Rerouted {node.name} (not reinstalled): {change}")
    except NppctlError as err:
        step(f"Skipping routes on {node.name}: {err}")


def _start_keeper(node: Node, mine: NodePlan) -> list[str]:
    """The keeper running in NODE as its plan says (installplan: start or restart its systemd unit,
    or a detached exec); what was done."""
    if mine.keeper is None:
        return []
    if mine.keeper in ("start", "restart"):
        for argv in (
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "nppctl-keeper.service"],
            ["systemctl", mine.keeper, "nppctl-keeper.service"],
        ):
            res = node_run(node, argv)
            if res.code != 0:
                last = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
                raise NppctlError(f"node {node.name}: `{' '.join(argv)}` failed: {last}")
        return ["keeper enabled and started (systemd unit nppctl-keeper.service)"]
    node.container.exec_run(KEEPER_ARGV, detach=True)
    deadline = time.monotonic() + 5
    while not agent.run_agent(node, "probe", {"files": []}).get("keeper"):
        if time.monotonic() > deadline:
            raise NppctlError(
                f"node {node.name}: the keeper did not start; see {node.name}'s /var/log/nppctl-keeper.log"
            )
        time.sleep(0.1)
    return ["keeper started"]


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


