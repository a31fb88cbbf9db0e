"""`nppctl up`, read top to bottom as kind creates a cluster: check everything first (cluster.preflight)
and settle the lab's record; build the list of actions in one place, under the conditions that pick
them (up_actions); run them in order, each with the one typed context (UpContext) and each one status
line; then prove the plugin (cluster.prove_plugin). A failure or Ctrl-C ends in cluster.after_failure
(what this run made is taken back, or named with the command that removes it).

Each action is a small function below, `action(ctx, say) -> detail`: say(text) updates its spinner,
the detail ends its line. What an action finds or makes for a later one is a field of UpContext.

Interface: up(opts, steps) -> dict[str, bool] | None (Ready per node: kind provider);
up_actions(ctx) -> list[Action]; default_mounts(cluster, workers, base).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nppctl.access.providers.base import ClusterSpec, Provider, kind_node_names
from nppctl.errors import NppctlError
from nppctl.lab import kindconfig, labshape
from nppctl.lab.cluster import (
    Action,
    Steps,
    after_failure,
    choose_provider,
    preflight,
    prove_plugin,
    run_actions,
    sweep_strays,
)
from nppctl.lab.kindconfig import MOUNT_POINT
from nppctl.lab.labshape import UpOptions
from nppctl.lab.labstate import KIND_CONFIG_FILE, LabState, state_dir

Say = Callable[[str], None]


@dataclass
class UpContext:
    """What up's actions share (kind's ActionContext): what was asked, the provider, the lab's record,
    and what an earlier action found or made for a later one."""

    opts: UpOptions
    provider: Provider
    state: LabState
    existed: bool  # the cluster was there before this run
    spec: ClusterSpec  # what the provider is asked to create (prepare and node_image complete it)
    pod_cidr: str  # where the nodes' subnets come from: --pod-cidr, or a --config's podSubnet (prepare)
    cgroup: str | None = None  # the Docker host's cgroup version (kind provider)
    cgroup_note: str | None = None  # what the kind config does about cgroup v1 (prepare)
    kindnet: bool = False  # kindnet kept, and kind deploys it (prepare)
    created: bool = False  # this run created the cluster (create)
    subnets: dict[str, str] = field(default_factory=dict)  # node -> its podCIDR from the API (register)
    ready: dict[str, bool] | None = None  # Ready per node (wait_ready)


def up(opts: UpOptions, steps: Steps) -> dict[str, bool] | None:
    """Create (or keep) the cluster, label, install, wait for Ready. Returns Ready per node (kind)."""
    from nppctl.access.providers import get_provider

    recorded = LabState.load(opts.name)  # a corrupt record stops `up` before anything else
    choose_provider(opts)
    provider = get_provider(opts.provider)
    existed = preflight(opts, provider)
    state = _settle_record(opts, provider, recorded, existed)
    spec = ClusterSpec(name=opts.name, workers=opts.workers, image=opts.image)
    ctx = UpContext(opts, provider, state, existed, spec, pod_cidr=opts.pod_cidr)
    if provider.has_kubernetes:
        from nppctl.lab.kindpatches import host_cgroup_version

        if not existed:
            _inotify_line(steps)
        ctx.cgroup = host_cgroup_version()
    actions = up_actions(ctx)
    sweep_strays(steps)
    try:
        run_actions(actions, steps)
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        raise after_failure(err, opts, provider, state, existed) from err
    prove_plugin(opts.name, opts.plugin, steps)
    return ctx.ready


def up_actions(ctx: UpContext) -> list[Action]:
    """The actions of this `up`, in order: the one place that says which run, and when."""
    opts, provider = ctx.opts, ctx.provider

    def act(title: str, run: Callable[[UpContext, Say], str | None]) -> Action:
        return Action(title, functools.partial(run, ctx))

    actions = [act("Preparing config and mount folders", prepare)]
    if ctx.cgroup == "1" and not ctx.existed:  # kind is run with the config prepare rendered
        actions.append(act("Docker host on cgroup v1", cgroup_v1))
    if opts.ensure_python:
        actions.append(act("Ensuring a node image with python3", node_image))
    actions.append(act(f"Creating cluster {opts.name!r} ({provider.name})", create))
    if opts.registry_mirrors:
        actions.append(act(f"Pointing every node's containerd at registry mirrors: {_mirrors(opts)}", mirror))
    if provider.has_kubernetes:
        actions.append(act("Waiting for every node to register with the API (podCIDRs)", register))
        actions.append(act("Labelling workers node=node1, node2, ...", label))
    actions.append(act(f"Installing plugin {opts.plugin} on every node", install_plugin))
    if provider.has_kubernetes:
        actions.append(act(f"Waiting for every node to be Ready (timeout {opts.timeout:.0f}s)", wait_ready))
    return actions


# ---------------------------------------------------------------- the actions, in their order


def prepare(ctx: UpContext, say: Say) -> str:
    """The mount folders (made and recorded), the kind config (kind provider), the lab's record saved."""
    opts, spec = ctx.opts, ctx.spec
    user = None
    if opts.config is not None:
        user = kindconfig.load(opts.config, opts.name)
        spec.workers, spec.mounts = user.workers, (user.mounts if opts.mounts else {})
        ctx.pod_cidr = _config_pod_cidr(opts, user)
    elif opts.mounts:
        spec.mounts = default_mounts(opts.name, opts.workers, Path.cwd())
    for folder in spec.mounts.values():
        ctx.state.make_dir(folder)
    if ctx.provider.has_kubernetes:
        _write_kind_config(ctx, user)
    ctx.state.save()
    what = f"{spec.workers} worker(s)"
    if spec.mounts:
        what += f", {len(spec.mounts)} mount folder(s) at {MOUNT_POINT}"
    return what + (f", config {spec.config_file}" if spec.config_file else "")


def cgroup_v1(ctx: UpContext, say: Say) -> str | None:
    """The one line of a cgroup v1 Docker host: what the kind config prepare rendered does about it."""
    return ctx.cgroup_note


def node_image(ctx: UpContext, say: Say) -> str:
    from nppctl.access.nodeimage import image_for_up

    if ctx.provider.exists(ctx.opts.name):
        return "cluster exists: its nodes keep their image"
    chosen = image_for_up(ctx.provider, ctx.opts.image, say, ctx.opts.config)
    ctx.spec.image = chosen.image  # None: left to kind
    return chosen.describe()


def create(ctx: UpContext, say: Say) -> str:
    name, provider = ctx.opts.name, ctx.provider
    if provider.exists(name):
        problem = labshape.half_made(provider, name)
        if problem:
            raise NppctlError(
                f"cluster {name!r} exists but is half made ({problem}): remove it with "
                f"`nppctl down --purge --name {name}`, then run `nppctl up` again"
            )
        return "exists, kept"
    provider.progress = say  # the provider's own progress lines (kind's) under the spinner
    provider.create(ctx.spec)
    ctx.created = True
    return f"provider {provider.name}"


def mirror(ctx: UpContext, say: Say) -> str:
    from nppctl.access import registrymirror

    mirrors = ctx.opts.registry_mirrors
    done = registrymirror.write_hosts(ctx.opts.name, mirrors)
    counts = {what: sum(v == what for v in done.values()) for what in ("written", "unchanged")}
    files = ", ".join(registrymirror.hosts_file(r) for r in registrymirror.by_registry(mirrors))
    return f"{files} on {len(done)} node(s) (" + ", ".join(
        f"{n} {what}" for what, n in counts.items() if n) + ")"


def register(ctx: UpContext, say: Say) -> str:
    from nppctl.access import kube

    ctx.subnets = kube.wait_registered(ctx.opts.name, ctx.opts.timeout)
    detail = ", ".join(f"{n} {cidr}" for n, cidr in ctx.subnets.items())
    if ctx.kindnet and ctx.created:  # let kindnet lay its conflist first
        from nppctl.lab import install

        say("waiting for kindnet's conflist on every node")
        install.wait_kindnet(ctx.opts.name, ctx.opts.timeout)
        detail += "; kindnet kept and active"
    return detail


def label(ctx: UpContext, say: Say) -> str:
    from nppctl.access import kube

    applied = kube.label_nodes(ctx.opts.name)
    return ", ".join(f"{n} {k}={v}" for n, labels in applied.items() for k, v in labels.items()) or "none"


def install_plugin(ctx: UpContext, say: Say) -> str:
    from nppctl.lab import install

    opts = ctx.opts
    subnets = ctx.subnets or None  # the API's podCIDRs, read once every node registered
    done = install.install(
        opts.name,
        plugin=opts.plugin,
        pod_cidr=ctx.pod_cidr,
        node_subnets=subnets,
        ensure_python=opts.ensure_python,
        keep_kindnet=opts.keep_kindnet,
        conf=opts.conf,
        record=opts.record,
        on_step=say,
    )
    failed = [r for r in done if r.outcome == "failed"]
    if failed:
        reasons = "; ".join(f"{r.node}: {r.error}" for r in failed)
        raise NppctlError(f"install failed on {len(failed)} of {len(done)} node(s), the others are done: "
                          f"{reasons}")
    source = "subnets from the API's spec.podCIDR" if subnets else f"subnets split from {ctx.pod_cidr}"
    warned = list(dict.fromkeys(w for r in done for w in r.warnings if "kindnet" in w))
    noted = list(dict.fromkeys(n for r in done for n in r.notes))
    return (f"{len(done)} node(s), {source}" + "".join(f"; warning: {w}" for w in warned)
            + "".join(f"; note: {n}" for n in noted))


def wait_ready(ctx: UpContext, say: Say) -> str:
    from nppctl.access import kube

    ctx.ready = kube.wait_ready(ctx.opts.name, ctx.opts.timeout)
    return f"{len(ctx.ready)} node(s) Ready"


# ---------------------------------------------------------------- what the actions use


def default_mounts(cluster: str, workers: int, base: Path) -> dict[str, Path]:
    """The course's mount folders: tmp/cp, tmp/w1, tmp/w2, ... (under tmp/<cluster>/ unless it is `kind`)."""
    root = base / "tmp" if cluster == "kind" else base / "tmp" / cluster
    names = kind_node_names(cluster, ["control-plane"] + ["worker"] * workers)
    folders = ["cp"] + [f"w{i}" for i in range(1, workers + 1)]
    return {node: (root / folder).resolve() for node, folder in zip(names, folders, strict=True)}


def _settle_record(opts: UpOptions, provider: Provider, recorded: LabState | None, existed: bool) -> LabState:
    """The lab's record for this run: an existing cluster must be the lab asked for (else one line saying
    how it differs; nothing is written before this), a new one is recorded as asked (a record left by
    a lab gone without --purge is replaced)."""
    state = recorded or LabState(name=opts.name, provider=opts.provider)
    if state.provider != opts.provider and existed:
        raise NppctlError(
            f"cluster {opts.name!r} was made by the {state.provider} provider: "
            f"run `nppctl down --name {opts.name}` first, or pass --provider {state.provider}"
        )
    if existed:
        differs = labshape.difference(opts, provider, state)
        if differs:
            raise NppctlError(differs)
    else:
        state.asked = labshape.shape(opts)
    state.provider = opts.provider
    return state


def _write_kind_config(ctx: UpContext, user: kindconfig.KindConfig | None) -> None:
    """The kind config the cluster is created with, written to the state folder: USER's copy (kindnet
    disabled unless kept, hostPaths absolute) or nppctl's own, with the patches this host needs."""
    from nppctl.lab import kindpatches

    opts = ctx.opts
    patches = kindpatches.for_up(ctx.cgroup, opts.registry_mirrors, user.data if user is not None else None)
    ctx.cgroup_note = patches.cgroup_note
    if user is not None:
        text = kindconfig.render_copy(user, opts.name, opts.keep_kindnet, opts.mounts, patches)
    else:
        text = kindconfig.render_kind_config(
            opts.name, ctx.spec.mounts, opts.workers, opts.pod_cidr, opts.keep_kindnet, patches
        )
    ctx.spec.config_file = ctx.state.write_file(state_dir(opts.name) / KIND_CONFIG_FILE, text)
    ctx.kindnet = opts.keep_kindnet and not (user is not None and user.disable_default_cni)


def _mirrors(opts: UpOptions) -> str:
    """--registry-mirror as the mirror action's title names it: registry → its mirrors."""
    from nppctl.access import registrymirror

    return "; ".join(f"{registry} → {', '.join(urls)}"
                     for registry, urls in registrymirror.by_registry(opts.registry_mirrors).items())


def _inotify_line(steps: Steps) -> None:
    """One warning line before a kind cluster is created on a host whose inotify limits are below kind's
    recommendation (lab/doctor.py says why and the remedy)."""
    from nppctl.lab.doctor import inotify_low

    low = inotify_low()
    if low:
        steps.line(f"warning: {low}")


def _config_pod_cidr(opts: UpOptions, user: kindconfig.KindConfig) -> str:
    """The pod CIDR of `up --config`: the config's networking.podSubnet (kind's default without one),
    which kind allocates the nodes' podCIDRs from; a different --pod-cidr is refused."""
    if opts.pod_cidr not in (UpOptions.pod_cidr, user.pod_subnet):
        raise NppctlError(
            f"--pod-cidr {opts.pod_cidr} differs from {user.path}'s networking.podSubnet {user.pod_subnet}: "
            "drop --pod-cidr, or set podSubnet in the config"
        )
    return user.pod_subnet
