"""What `up` was asked for, compared with the lab that is there.

An option counts as asked when the user gave it: UpOptions.given names the options given on the
command line (the CLI passes it; typer's None defaults tell them apart); a library caller that leaves
given None asks for every option whose value differs from UpOptions' default. A --config always asks
for its nodes. Plain `nppctl up --name X` asks for nothing, so an existing whole lab is kept whatever
its shape.

What is there: the nodes (containers) and their roles, read live; the provider, node image and pod
CIDR the lab was made with, from its state record (LabState.asked, written when `up` creates it).
A lab without such a record (made before nppctl kept one) is compared by its nodes only. Nodes
asked for nothing: a lab whose nodes are not those it was made as (its record) is half made.

Interface: UpOptions (what `up` takes); asked(opts, option) -> bool; shape(opts) -> dict (what to record);
           difference(opts, provider, state) -> str | None (one line, None: keep it);
           half_made(provider, name) -> str | None (why the lab there is not whole)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nppctl.errors import NppctlError, one_line

ASKABLE = ("workers", "provider", "image", "pod_cidr")


@dataclass
class UpOptions:
    name: str = "kind"
    config: Path | None = None
    workers: int = 2
    plugin: str = "nppnet"
    conf: Path | None = None  # the user's plugin's own config (lab/userconf.py), rendered per node
    record: bool | None = None  # nppctl's call recorder in front of the plugin (None: a user's plugin)
    pod_cidr: str = "10.244.0.0/16"
    keep_kindnet: bool = False
    mounts: bool = True
    provider: str = "kind"
    image: str | None = None
    timeout: float = 300.0
    ensure_python: bool = True  # a node image without python3 gets it (access/nodeimage, else apt per node)
    # --registry-mirror as given ([REGISTRY=]URL); up's preflight makes them access.registrymirror.Mirror
    registry_mirrors: tuple = ()
    # the options the user gave (the CLI fills it); None: those that differ from the defaults (labshape)
    given: frozenset[str] | None = None


def asked(opts, option: str) -> bool:
    """OPTION (an UpOptions field) was asked for: given on the command line, or (given None) not
    UpOptions' default."""
    if opts.given is not None:
        return option in opts.given
    return getattr(opts, option) != getattr(UpOptions, option)


def roles(opts) -> list[str]:
    """The node roles `up` makes: the --config's nodes, else a control plane and --workers workers."""
    if opts.config is not None:
        from nppctl.lab import kindconfig

        return list(kindconfig.load(opts.config, opts.name).roles)
    return ["control-plane"] + ["worker"] * opts.workers


def pod_cidr(opts) -> str:
    """The pod CIDR the lab gets: a --config's podSubnet, else --pod-cidr."""
    if opts.config is not None:
        from nppctl.lab import kindconfig

        return kindconfig.load(opts.config, opts.name).pod_subnet
    return opts.pod_cidr


def shape(opts) -> dict:
    """What to record in the state file when `up` creates the lab."""
    return {"roles": roles(opts), "provider": opts.provider, "image": opts.image, "pod_cidr": pod_cidr(opts)}


def describe(node_roles: list[str]) -> str:
    """['control-plane', 'worker', 'worker'] -> '3 nodes (control-plane, 2 workers)'."""
    count = Counter(node_roles)
    parts = []
    for role in ("control-plane", "worker", *sorted(set(count) - {"control-plane", "worker"})):
        n = count.get(role, 0)
        if n:
            parts.append(role if n == 1 else f"{n} {role}s")
    total = len(node_roles)
    return f"{total} node{'s' if total != 1 else ''} ({', '.join(parts) or 'none'})"


def difference(opts, provider, state) -> str | None:
    """Why existing cluster opts.name is not the lab asked for (half made, other nodes, provider,
    image, pod CIDR), as one line with the way out; None when it is (keep it)."""
    from nppctl.access.nodes import list_nodes

    name = opts.name
    remove = f"remove it with `nppctl down --purge --name {name}` and run `nppctl up` again"
    way_out = f"{remove} (`nppctl up --name {name}` alone keeps it as it is); nothing was changed"
    problem = half_made(provider, name)
    if problem:
        return f"cluster {name!r} exists but is half made ({problem}): {remove}; nothing was changed"
    try:
        there = [n.role for n in list_nodes(name, stopped=True)]
    except NppctlError as err:
        return f"cluster {name!r} cannot be read ({err}): {way_out}"
    recorded = state.asked if state is not None else {}
    diffs = []
    if opts.config is not None or asked(opts, "workers"):
        want = roles(opts)
        if Counter(want) != Counter(there):
            diffs.append(f"has {describe(there)}, asked: {describe(want)}")
    elif recorded.get("roles") and Counter(recorded["roles"]) != Counter(there):
        made_as = describe(list(recorded["roles"]))
        return (f"cluster {name!r} exists but is half made (has {describe(there)}, made as {made_as}): "
                f"{remove}; nothing was changed")
    if asked(opts, "image") and recorded.get("image", opts.image) != opts.image:
        diffs.append(f"its nodes are of image {recorded.get('image') or 'the default'}, asked: {opts.image}")
    if (opts.config is not None or asked(opts, "pod_cidr")) and recorded.get("pod_cidr"):
        want_cidr = pod_cidr(opts)
        if recorded["pod_cidr"] != want_cidr:
            diffs.append(f"has pod CIDR {recorded['pod_cidr']}, asked: {want_cidr}")
    if not diffs:
        return None
    return f"cluster {name!r} " + "; ".join(diffs) + f": {way_out}"


def half_made(provider, name: str) -> str | None:
    """Why an existing cluster NAME is not whole (a node stopped, no control plane, no kubeconfig after
    an interrupted or failed `kind create`), or None."""
    from nppctl.access.nodes import list_nodes

    try:
        nodes = list_nodes(name, stopped=True)
    except NppctlError as err:
        return one_line(err)
    stopped = [f"{n.name} is {n.state}" for n in nodes if not n.running]
    if stopped:
        return ", ".join(stopped)
    if not any(n.role == "control-plane" for n in nodes):
        return "no control-plane node"
    if provider.has_kubernetes:
        try:
            if not (provider.kubeconfig(name) or "").strip():
                return "kind gives no kubeconfig for it"
        except NppctlError:
            return "kind gives no kubeconfig for it"
    return None
