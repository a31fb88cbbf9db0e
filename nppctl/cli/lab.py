"""`nppctl up | down | label | check`: the lab's life cycle and its connectivity test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

NAME_HELP = "Cluster name (kind's --name)."


def _console():
    from rich.console import Console

    return Console(highlight=False)


def up(
    name: str = typer.Option("kind", "--name", help=NAME_HELP),
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
        None, "--image", help="Node image (kind's --image; docker provider's image)."
    ),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait for every node to be Ready."),
    ensure_python: bool = typer.Option(
        True,
        "--ensure-python/--no-ensure-python",
        help="Install python3 (the plugin's interpreter) with apt-get in nodes that lack it, "
        "as kindest/node does.",
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
    """Create the cluster, label workers, install the plugin, wait until Ready.

    An existing lab is kept when it is what the options given ask for (--workers or --config's nodes,
    --provider, --image, --pod-cidr; options left out ask for nothing); else up says how it differs
    and changes nothing."""
    from nppctl.lab import cluster

    given = {k for k, v in {"workers": workers, "pod_cidr": pod_cidr, "provider": provider,
                            "image": image}.items() if v is not None}
    defaults = cluster.UpOptions()
    opts = cluster.UpOptions(
        name=name,
        config=config,
        workers=defaults.workers if workers is None else workers,
        plugin=plugin,
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
    console = _console()
    provider = cluster.choose_provider(opts)
    console.print(f"Bringing up lab {name!r} with the {provider} provider ...")
    cluster.up(opts, console)
    _print_status(name)
    if provider == "docker":
        console.print(
            "[yellow]note:[/] the docker provider gives node containers only: "
            "no kubelet, no API server, no pods (so no `label`, no kubectl). "
            "Pods are `cni add` namespaces: "
            f"`nppctl cni add --name {name} --node worker pod1`, then `nppctl check --name {name}`.",
            soft_wrap=True,
        )


def _print_status(name: str) -> None:
    """End with the table `nppctl status` prints (it asks the API for Ready itself)."""
    from nppctl.cli.nodes import status_report

    status_report(name, as_json=False)


def down(
    name: str = typer.Option("kind", "--name", help=NAME_HELP),
    purge: bool = typer.Option(
        False, "--purge", help="Also remove the configs and mount folders nppctl created."
    ),
) -> None:
    """Delete the cluster (kind delete cluster, or the docker provider's containers)."""
    from nppctl.lab import cluster

    cluster.down(name, purge, _console())


def label(
    name: str = typer.Option("kind", "--name", help=NAME_HELP),
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
    console = _console()
    for node, labels in applied.items():
        console.print(f" [green]✓[/] {node} " + " ".join(f"{k}={v}" for k, v in labels.items()))
    if not applied:
        console.print(" no workers to label")


def check(
    name: str = typer.Option("kind", "--name", help=NAME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the probes as JSON."),
    image: str = typer.Option("busybox", "--image", help="Image of the check pods (kind)."),
    timeout: float = typer.Option(120, "--timeout", help="Seconds to wait for the check pods to run (kind)."),
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
        console = _console()
        console.print(checks.render(report.probes))
        for note in report.notes:
            console.print(f"[dim]note:[/] {note}", soft_wrap=True)
        for line in checks.summary(report.probes):
            console.print(line, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add up, down, label and check to the root app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("label")(label)
    app.command("check")(check)
