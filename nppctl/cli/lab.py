"""The lab's commands, in the order a student uses them: `nppctl up | install | label | status | check |
logs | down`, and `doctor` (this machine). Each parses, calls one function of nppctl.lab, renders
with nppctl.cli.render; nothing here imports docker or kubernetes at module level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nppctl.cli import render

RECORD_HELP = ("Put nppctl's call recorder in front of the plugin: every CNI call (environment, stdin, "
               "stdout, stderr, exit code, time) for `nppctl calls` [default: on for your plugin, off for "
               "nppnet and skel].")
CONF_HELP = ("Your plugin's own config (with --plugin PATH): a .conf/.conflist/.json, plain or a Jinja2 "
             "template (.j2), rendered per node; installed under its own name.")


def up(
    name: str = typer.Option("kind", "--name", help=render.NAME_HELP),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            help="A kind cluster config (e.g. cluster-configs/*.yaml); kind gets a copy without "
            "kindnet unless --keep-kindnet; its podSubnet is the pod CIDR.",
        ),
    ] = None,
    workers: int | None = typer.Option(
        None, "--workers", min=0, show_default="2",
        help="Workers besides the control plane (no --config: its nodes are the lab's).",
    ),
    plugin: str = typer.Option(
        "nppnet", "--plugin", help="nppnet, skel (the skeleton) or PATH to your plugin."
    ),
    conf: Path | None = typer.Option(None, "--conf", metavar="FILE", help=CONF_HELP),
    record: bool | None = typer.Option(None, "--record/--no-record", show_default=False, help=RECORD_HELP),
    pod_cidr: str | None = typer.Option(
        None, "--pod-cidr", show_default="10.244.0.0/16", help="The cluster's pod network."
    ),
    keep_kindnet: bool = typer.Option(
        False, "--keep-kindnet", help="Leave kind's own CNI (kindnet) enabled; install then only warns."
    ),
    mounts: bool = typer.Option(True, "--mounts/--no-mounts", help="Mount tmp/cp, tmp/w1, ... at /npp-temp."),
    provider: str | None = typer.Option(
        None, "--provider", show_default="kind, or the existing lab's",
        help="kind (Kubernetes) or docker (nodes only, no kubelet).",
    ),
    image: str | None = typer.Option(
        None, "--image", help="Node image (kind's --image; the docker provider's), or the base of the "
        "one derived with python3 when it has none (--ensure-python)."
    ),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait for every node to be Ready."),
    ensure_python: bool = typer.Option(
        True,
        "--ensure-python/--no-ensure-python",
        help="Give the nodes python3, the plugin's interpreter, which kindest/node lacks since kind "
        "v0.32: nodes from an image derived from the node image with it (built once), else apt-get in "
        "each node that lacks it.",
    ),
    registry_mirrors: Annotated[
        list[str] | None,
        typer.Option(
            "--registry-mirror",
            metavar="URL",
            help="A pull-through cache of Docker Hub (http[s]://HOST[:PORT]) every node's containerd "
            "pulls docker.io images through; repeat for several, tried in order (kind provider).",
        ),
    ] = None,
) -> None:
    """Create the cluster, label workers, install the plugin, wait until Ready (labels and Ready: the
    kind provider; the docker provider's nodes have no Kubernetes), then prove the plugin: ADD, ping,
    CHECK and DEL of a throwaway pod in each node.

    An existing lab is kept when it is what the options given ask for (--workers or --config's nodes,
    --provider, --image, --pod-cidr; options left out ask for nothing); else up says how it differs
    and changes nothing."""
    from nppctl.lab import cluster
    from nppctl.lab.labshape import UpOptions
    from nppctl.lab.up import up as up_lab

    given = {k for k, v in {"workers": workers, "pod_cidr": pod_cidr, "provider": provider,
                            "image": image}.items() if v is not None}
    defaults = UpOptions()
    opts = UpOptions(
        name=name,
        config=config,
        workers=defaults.workers if workers is None else workers,
        plugin=plugin,
        conf=conf,
        record=record,
        pod_cidr=pod_cidr or defaults.pod_cidr,
        keep_kindnet=keep_kindnet,
        mounts=mounts,
        provider=provider or defaults.provider,
        image=image,
        timeout=timeout,
        ensure_python=ensure_python,
        registry_mirrors=tuple(registry_mirrors or ()),
        given=frozenset(given),
    )
    console = render.console()
    provider = cluster.choose_provider(opts)
    console.print(f"Bringing up lab {name!r} with the {provider} provider ...")
    with render.Steps(console) as steps:
        up_lab(opts, steps)
    _print_status(name)  # end with the table `nppctl status` prints
    if provider == "docker":
        console.print(
            "[yellow]note:[/] the docker provider gives node containers only: "
            "no kubelet, no API server, no pods (so no `label`, no kubectl). "
            "Pods are `cni add` namespaces: "
            f"`nppctl cni add --name {name} --node worker pod1`, then `nppctl check --name {name}`.",
            soft_wrap=True,
        )


def install_cmd(
    name: str = typer.Option("kind", "--name", "-n", help=render.NAME_HELP),
    worker: list[str] = typer.Option(None, "--worker", "-w", help="Node to install on (repeat it)."),
    all_nodes: bool = typer.Option(False, "--all", help="Install on every node (control plane too)."),
    plugin: str = typer.Option("nppnet", "--plugin", help="nppnet, skel, or the path of your own plugin."),
    conf: Path | None = typer.Option(None, "--conf", metavar="FILE", help=CONF_HELP),
    record: bool | None = typer.Option(None, "--record/--no-record", show_default=False, help=RECORD_HELP),
    subnet: str | None = typer.Option(None, "--subnet", help="Pod subnet of the one node installed."),
    pod_cidr: str = typer.Option("10.244.0.0/16", "--pod-cidr", help="Cluster pod CIDR split into /24s."),
    ensure_python: bool = typer.Option(
        False, "--ensure-python", help="apt-get install python3 where it is missing."
    ),
    keep_kindnet: bool = typer.Option(
        False, "--keep-kindnet", help="Install even where kindnet is active (duplicate pod addresses)."
    ),
    wide: bool = typer.Option(False, "--wide", help=render.WIDE_INSTALL_HELP),
) -> None:
    """Install a CNI plugin on nodes: executable, conflist, cni0, routes between nodes, masquerade; then
    prove it works: ADD, ping, CHECK and DEL of a throwaway pod in each node."""
    from rich.markup import escape

    from nppctl.errors import NppctlError
    from nppctl.lab.install import install_lab

    if bool(worker) == all_nodes:
        raise NppctlError("name the nodes to install on: --worker NODE (repeatable) or --all")
    console = render.console()
    with render.Steps(console) as steps:
        results = install_lab(
            name, nodes=worker or None, plugin=plugin, subnet=subnet, pod_cidr=pod_cidr,
            ensure_python=ensure_python, keep_kindnet=keep_kindnet, conf=conf, record=record,
            on_step=steps.step,
        )
    console.print(render.install_table(name, results, wide))
    for r in results:
        for change in r.changes:
            console.print(f"[dim]{escape(r.node)}: {escape(change)}[/]")
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {escape(r.node)}: {escape(w)}")
    for note in dict.fromkeys(n for r in results for n in r.notes):  # the same for every node: once
        console.print(f"[dim]note:[/] {escape(note)}")
    failed = [r for r in results if r.outcome == "failed"]
    if len(failed) == 1 and len(results) == 1:
        raise NppctlError(failed[0].error or "install failed")
    if failed:
        raise NppctlError(f"install failed on {len(failed)} of {len(results)} node(s), the others are done: "
                          + "; ".join(r.error or r.node for r in failed))
    from nppctl.lab.cluster import prove_plugin

    with render.Steps(console) as steps:
        prove_plugin(name, plugin, steps, [r.node for r in results])


def label(
    name: str = typer.Option("kind", "--name", help=render.NAME_HELP),
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NODE=KEY=VALUE",
            help="A label for one node; default node=node1, node=node2, ... on workers.",
        ),
    ] = None,
) -> None:
    """Label nodes through the Kubernetes API (idempotent)."""
    from nppctl.access import kube
    from nppctl.errors import NppctlError
    from nppctl.lab.cluster import detect_provider

    if detect_provider(name) == "docker":
        raise NppctlError(
            f"cluster {name!r} has no Kubernetes (made by --provider docker): no API to label "
            "nodes in; pods there are `nppctl cni add` namespaces, which need no labels"
        )
    wanted: dict[str, dict[str, str]] = {}
    if sets:
        for item in sets:
            parts = item.split("=", 2)
            if len(parts) != 3 or not all(parts[:2]):
                raise NppctlError(
                    f"--set {item!r}: write NODE=KEY=VALUE, e.g. --set {name}-worker=node=node1"
                )
            node = parts[0] if parts[0].startswith(f"{name}-") else f"{name}-{parts[0]}"
            wanted.setdefault(node, {})[parts[1]] = parts[2]
    applied = kube.label_nodes(name, wanted if sets else None)
    console = render.console()
    for node, labels in applied.items():
        console.print(f" [green]✓[/] {node} " + " ".join(f"{k}={v}" for k, v in labels.items()))
    if not applied:
        console.print(" no workers to label")


def status_cmd(
    name: str = typer.Option("kind", "--name", "-n", help=render.NAME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    wide: bool = typer.Option(False, "--wide", help=render.WIDE_HELP),
) -> None:
    """Per node: address, pod subnet, plugin, cni0, routes, Ready (--wide: role, state, conflist, python3,
    the whole plugin chain); below, whose plugin it is (built-in or your file, its sha256) and who made
    cni0. Exits 1 when a node is not healthy (a stopped node is a row saying so)."""
    if not _print_status(name, as_json, wide):
        raise typer.Exit(1)


def _print_status(name: str, as_json: bool = False, wide: bool = False) -> bool:
    """Print the status table (or JSON), as `status` and the end of `up` do; True: every node is healthy."""
    from nppctl.lab.status import report

    result = report(name)
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in result], indent=2))
    else:
        console = render.console()
        console.print(render.status_table(name, result, wide))
        for line in render.status_whose(result):
            console.print(render.escape(line))
        for line in render.status_notes(result, wide):
            console.print(line, soft_wrap=True)
        _print_stuck_pods(name, console)
    return all(s.ok for s in result)


def _print_stuck_pods(name: str, console) -> None:
    """One line per pod the plugin left ContainerCreating: the pod, the failing call, the plugin's words."""
    from rich.markup import escape

    from nppctl.lab.podfailures import stuck_pods

    for pod in stuck_pods(name) or []:
        call = f"{pod.command or 'a call'} by {pod.plugin or 'the plugin'}"
        sandbox = f" (sandbox {pod.sandbox[:12]})" if pod.sandbox else ""
        if pod.call is not None:
            sandbox += f" (call {pod.call}: `nppctl calls --name {name} --show {pod.call}`)"
        console.print(
            f"[red]pod {escape(pod.namespace)}/{escape(pod.name)}[/] on {escape(pod.node or '?')}: "
            f"ContainerCreating, {escape(call)} failed{sandbox}, {pod.count}x{_ago(pod.last_seen)}: "
            f"[red]{escape(pod.said)}[/]",
            soft_wrap=True,
        )


def _ago(when: str | None) -> str:
    """", last 42s ago" from an ISO time (a failure kubelet saw before the plugin changed reads as old)."""
    import datetime

    if not when:
        return ""
    try:
        seconds = (datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(when))
    except (TypeError, ValueError):
        return ""
    return f", last {max(0, int(seconds.total_seconds()))}s ago"


def check(
    name: str = typer.Option("kind", "--name", help=render.NAME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the probes as JSON."),
    image: str = typer.Option("busybox", "--image", help="Image of the check pods (kind)."),
    timeout: float = typer.Option(120, "--timeout", help="Seconds to wait for the check pods to run (kind)."),
    wide: bool = typer.Option(False, "--wide", help="Names and times in the matrix (default: 80 columns)."),
) -> None:
    """Ping every pair (pod-pod on a node and across nodes, pod-node, node-pod, pod-outside) and fetch from
    a Service's ClusterIP (same node, across nodes, hairpin)."""
    from nppctl.errors import NppctlError
    from nppctl.lab import checks
    from nppctl.lab.cluster import detect_provider

    provider = detect_provider(name)
    if provider is None:
        raise NppctlError(f"cluster {name!r} not found: create it with `nppctl up --name {name}`")
    from rich.console import Console
    from rich.markup import escape

    # the spinner goes to stderr and only to a terminal (rich draws nothing else): --json stays clean
    with Console(stderr=True).status(" checking connectivity ...", spinner="dots") as spinner:
        report = checks.check(name, kubernetes=provider == "kind", image=image, timeout=timeout,
                              on_step=lambda text: spinner.update(f" checking connectivity: {escape(text)}"))
    failed = sum(not p.ok for p in report.probes)
    if as_json:
        typer.echo(
            json.dumps(
                {"cluster": name, "provider": provider, "failed": failed, "service": report.service,
                 "notes": report.notes, "probes": checks.as_json(report.probes)},
                indent=2,
            )
        )
    else:
        console = render.console()
        console.print(render.check_table(report.probes, wide))
        for note in report.notes:
            console.print(f"[dim]note:[/] {note}", soft_wrap=True)
        for line in checks.summary(report.probes):
            console.print(line, soft_wrap=True)
    if report.left:  # the check's own pods or Service still in the cluster: say so, exit 1
        raise NppctlError(report.left)
    if failed:
        raise typer.Exit(1)


def logs_cmd(
    name: str = typer.Option("kind", "--name", "-n", help=render.NAME_HELP),
    node: str | None = typer.Option(None, "--node", help="One node (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
    kubelet: bool = typer.Option(False, "--kubelet", help="kubelet's journal lines about CNI instead."),
    tail: int | None = typer.Option(None, "--tail", help="Only the last N lines per node (--follow: 10)."),
) -> None:
    """The plugin log (/var/log/nppnet.log) of one or all nodes, each line prefixed with its node."""
    from rich.markup import escape

    from nppctl.errors import NppctlError
    from nppctl.lab import logs

    if follow and kubelet:
        raise NppctlError("--follow reads the plugin log only: drop --kubelet or --follow")
    console = render.console()
    lines = logs.follow(name, node=node, tail=tail if tail is not None else 10) if follow else logs.read(
        name, node=node, tail=tail, kubelet=kubelet)
    unreadable = False
    try:
        for line in lines:
            unreadable = unreadable or line.problem
            style = "dim italic" if line.note else ("bold red" if line.error else "")
            style = "red" if line.problem else style
            text = f"[{style}]{escape(line.text)}[/]" if style else escape(line.text)
            console.print(f"[cyan]{line.node}[/] | {text}", soft_wrap=True)
    except KeyboardInterrupt:
        if not follow:
            raise
        stopped = True  # Ctrl-C is how --follow ends: no error line, but exit 130 as every command
    else:
        stopped = False
    finally:
        if follow:
            lines.close()  # ends the tail processes in the nodes
    if stopped:
        raise SystemExit(130)
    if unreadable:
        raise typer.Exit(1)


def down(
    name: str = typer.Option("kind", "--name", help=render.NAME_HELP),
    purge: bool = typer.Option(
        False, "--purge", help="Also remove the configs and mount folders nppctl created."
    ),
) -> None:
    """Delete the cluster (kind delete cluster, or the docker provider's containers)."""
    from nppctl.lab import cluster

    with render.Steps(render.console()) as steps:
        cluster.down(name, purge, steps)


def doctor_cmd(
    provider: str = typer.Option("kind", "--provider", help="The `up --provider`: kind or docker."),
    image: str | None = typer.Option(None, "--image", help="The node image `up --image` will get (default: "
                                     "the provider's)."),
) -> None:
    """Check this machine for the lab with PROVIDER: Docker engine, kind (kind provider only), kubectl
    (optional), free disk, the node image, and the local node images usable as --image."""
    from rich.markup import escape

    from nppctl.errors import NppctlError
    from nppctl.lab import doctor

    if provider not in ("kind", "docker"):
        raise NppctlError(f"unknown provider {provider!r}: use --provider kind or --provider docker")
    checks = doctor.run_checks(provider, image)
    console = render.console()
    for c in checks:
        mark = "[green]✓[/]" if c.ok else ("[red]✗[/]" if c.required else "[yellow]![/]")
        console.print(f" {mark} {escape(c.name)}: {escape(c.detail)}", soft_wrap=True)
    if not doctor.healthy(checks):
        console.print("[red]a required check failed[/]: fix it as said above")
        raise typer.Exit(1)
