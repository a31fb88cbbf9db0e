"""`nppctl install | status | logs | doctor | cni add|del|check|exec|ping`: commands on the node containers.

Thin: parse, call nppctl.lab.install / status / logs / doctor / runtime, render with rich. Nothing here
imports docker or kubernetes at module level (those modules load inside the commands).
"""

from __future__ import annotations

import json
import time

import typer

cni_app = typer.Typer(help="Play the container runtime in a node: CNI ADD/DEL/CHECK on a namespace.",
                      no_args_is_help=True, rich_markup_mode=None)

NAME = typer.Option("kind", "--name", "-n", help="Cluster name (kind's --name).")
NODE = typer.Option(..., "--node", help="Node: container name or short name (worker, worker2, ...).")


def _console():
    """Rich console; piped output gets wide lines (tables are not folded to 80 columns)."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


class Steps:
    """One status line per step: a spinner while it runs, then `✓ step (time)` as kind prints them."""

    def __init__(self, console):
        self.console, self.title, self.started, self.spinner = console, None, 0.0, None

    def __enter__(self):
        self.spinner = self.console.status("", spinner="dots")
        self.spinner.__enter__()
        return self

    def step(self, title: str) -> None:
        self._done("[green]✓[/]")
        self.title, self.started = title, time.monotonic()
        self.spinner.update(f" {title} ...")

    def _done(self, mark: str) -> None:
        if self.title is not None:
            took = time.monotonic() - self.started
            self.console.print(f" {mark} {self.title} [dim]({took:.1f}s)[/]")
            self.title = None

    def __exit__(self, exc_type, exc, tb):
        self.spinner.__exit__(exc_type, exc, tb)
        self._done("[red]✗[/]" if exc_type else "[green]✓[/]")
        return False


def _kindless(cluster: str) -> bool:
    """Whether the cluster's nodes are the docker provider's (no Kubernetes API to ask)."""
    from nppctl.access.nodes import list_nodes
    from nppctl.access.providers.docker import LABEL_PROVIDER, DockerProvider

    nodes = list_nodes(cluster, stopped=True)
    return all(n.container.labels.get(LABEL_PROVIDER) == DockerProvider.name for n in nodes)


def _api(cluster: str, what: str):
    """pod CIDRs / Ready from the kube layer when the cluster's API answers, else None."""
    if _kindless(cluster):
        return None  # the kindless provider's nodes: no API to ask (saves loading the client)
    try:
        from nppctl.access import kube
    except ImportError:
        return None
    from nppctl.errors import NppctlError

    try:
        if not kube.answers(cluster):
            return None
        return kube.pod_cidrs(cluster) if what == "pod_cidrs" else kube.ready(cluster)
    except NppctlError:
        return None


def install_cmd(
    name: str = NAME,
    worker: list[str] = typer.Option(None, "--worker", "-w", help="Node to install on (repeat it)."),
    all_nodes: bool = typer.Option(False, "--all", help="Install on every node (control plane too)."),
    plugin: str = typer.Option("nppnet", "--plugin", help="nppnet, skel, or the path of your own plugin."),
    subnet: str | None = typer.Option(None, "--subnet", help="Pod subnet of the one node installed."),
    pod_cidr: str = typer.Option("10.244.0.0/16", "--pod-cidr", help="Cluster pod CIDR split into /24s."),
    ensure_python: bool = typer.Option(
        False, "--ensure-python", help="apt-get install python3 where it is missing."
    ),
    keep_kindnet: bool = typer.Option(
        False, "--keep-kindnet", help="Install even where kindnet is active (duplicate pod addresses)."
    ),
) -> None:
    """Install a CNI plugin on nodes: executable, conflist, cni0, routes between nodes, masquerade."""
    from nppctl.errors import NppctlError
    from nppctl.lab.install import install

    if bool(worker) == all_nodes:
        raise NppctlError("name the nodes to install on: --worker NODE (repeatable) or --all")
    from rich.markup import escape

    console = _console()
    node_subnets = None
    with Steps(console) as steps:
        if not _kindless(name):  # a kindless lab has no API: no step pretends to ask it
            steps.step(f"Asking cluster {name}'s API for pod CIDRs")
            node_subnets = _api(name, "pod_cidrs")
        results = install(
            name, nodes=worker or None, plugin=plugin, subnet=subnet, pod_cidr=pod_cidr,
            node_subnets=node_subnets, ensure_python=ensure_python, keep_kindnet=keep_kindnet,
            on_step=lambda t: steps.step(escape(t)),
        )
    from rich.table import Table

    table = Table(title=f"nppctl install ({name})")
    for col in ("node", "role", "address", "pod subnet", "from", "plugin", "outcome"):
        table.add_column(col, overflow="fold")
    for r in results:
        outcome = {
            "done": f"[green]done[/] ({len(r.changes)} changed)",
            "unchanged": "[dim]unchanged[/]",
            "failed": f"[red]failed[/]: {escape(r.error or '')}",
        }[r.outcome]
        table.add_row(r.node, r.role, r.address or "-", r.subnet, r.source, r.plugin, outcome)
    console.print(table)
    for r in results:
        for change in r.changes:
            console.print(f"[dim]{escape(r.node)}: {escape(change)}[/]")
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {escape(r.node)}: {escape(w)}")
    failed = [r for r in results if r.outcome == "failed"]
    if len(failed) == 1 and len(results) == 1:
        raise NppctlError(failed[0].error or "install failed")
    if failed:
        raise NppctlError(f"install failed on {len(failed)} of {len(results)} node(s), the others are done: "
                          + "; ".join(r.error or r.node for r in failed))


def _mark(ok: bool | None) -> str:
    return "[dim]-[/]" if ok is None else ("[green]✓[/]" if ok else "[red]✗[/]")


def status_cmd(
    name: str = NAME,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per node: role, address, pod subnet, plugin and conflist, python3, cni0, routes, Ready.
    Exits 1 when a node is not healthy (a stopped node is a row saying so)."""
    if not status_report(name, as_json):
        raise typer.Exit(1)


def status_report(name: str, as_json: bool = False) -> bool:
    """Print the status table (or JSON); True when every node is healthy."""
    from rich.markup import escape

    from nppctl.lab.status import status

    result = status(name, ready=_api(name, "ready"))
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in result], indent=2))
        return all(s.ok for s in result)
    from rich.table import Table

    table = Table(title=f"nppctl status ({name})")
    for col in ("node", "role", "state", "address", "pod subnet", "plugin", "conflist", "python3", "cni0",
                "routes", "Ready"):
        table.add_column(col, overflow="fold")
    for s in result:
        routes = _mark(s.routes_ok) + ("" if s.routes_ok else " missing " + ", ".join(s.routes_missing))
        # "-": no cni0 yet where nppnet makes it at its next ADD (right, not a fault)
        cni0 = _mark(None if s.bridge_pending else s.bridge_ok) + (f" {s.gateway}" if s.gateway else "")
        plugin = (_mark(s.plugin_present) + " " + escape(s.plugin)) if s.plugin else _mark(False)
        state = s.state if s.state == "running" else f"[red]{escape(s.state)}[/]"
        table.add_row(s.node, s.role, state, s.address or "-", s.subnet or "-", plugin,
                      escape(s.conflist or "-"), s.python3 or "[red]✗[/]", cni0, routes, _mark(s.ready))
    console = _console()
    console.print(table)
    for s in result:
        for why in (s.problem, s.plugin_problem and f"plugin {s.plugin_problem}"):
            if why:
                console.print(f"[red]{s.node}:[/] {escape(why)}", soft_wrap=True)
    return all(s.ok for s in result)


def logs_cmd(
    name: str = NAME,
    node: str | None = typer.Option(None, "--node", help="One node (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
    kubelet: bool = typer.Option(False, "--kubelet", help="kubelet's journal lines about CNI instead."),
    tail: int | None = typer.Option(None, "--tail", help="Only the last N lines per node."),
) -> None:
    """The plugin log (/var/log/nppnet.log) of one or all nodes, each line prefixed with its node."""
    from rich.markup import escape

    from nppctl.errors import NppctlError
    from nppctl.lab import logs

    if follow and kubelet:
        raise NppctlError("--follow reads the plugin log only: drop --kubelet or --follow")
    console = _console()
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
    console = _console()
    for c in checks:
        mark = "[green]✓[/]" if c.ok else ("[red]✗[/]" if c.required else "[yellow]![/]")
        console.print(f" {mark} {escape(c.name)}: {escape(c.detail)}", soft_wrap=True)
    if not doctor.healthy(checks):
        console.print("[red]a required check failed[/]: fix it as said above")
        raise typer.Exit(1)


def _cni(command: str, name: str, node: str, pod: str, ifname: str, **capability_args) -> None:
    from nppctl.access.runtime import cni_call

    result = cni_call(name, node, pod, command, ifname=ifname, **capability_args)
    if result:
        typer.echo(json.dumps(result, indent=2))


@cni_app.command("add")
def cni_add(name: str = NAME, node: str = NODE, pod: str = typer.Argument(..., help="Pod (netns) name."),
            ifname: str = typer.Option("eth0", "--ifname"),
            port: list[str] = typer.Option(None, "--port", help="HOST:CONTAINER[/PROTO], repeatable."),
            rate: str | None = typer.Option(None, "--bandwidth", help="RATE[/BURST] bits/s both ways (10M)."),
            ) -> None:
    """Create netns POD in the node and run the node's first conflist with ADD; print the result.

    --port and --bandwidth are the capability arguments kubelet passes (a pod's hostPort, its bandwidth
    annotations): plugins declaring portMappings / bandwidth get them in runtimeConfig."""
    _cni("ADD", name, node, pod, ifname, ports=port or None, rate=rate)


@cni_app.command("del")
def cni_del(name: str = NAME, node: str = NODE, pod: str = typer.Argument(..., help="Pod (netns) name."),
            ifname: str = typer.Option("eth0", "--ifname")) -> None:
    """Run the conflist with DEL (plugins in reverse order), then remove netns POD."""
    _cni("DEL", name, node, pod, ifname)


@cni_app.command("check")
def cni_check(name: str = NAME, node: str = NODE, pod: str = typer.Argument(..., help="Pod (netns) name."),
              ifname: str = typer.Option("eth0", "--ifname")) -> None:
    """Run the conflist with CHECK against the cached ADD result."""
    _cni("CHECK", name, node, pod, ifname)


@cni_app.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def cni_exec_cmd(
    name: str = NAME,
    node: str = NODE,
    pod: str = typer.Argument(..., help="Pod (netns) name."),
    argv: list[str] = typer.Argument(..., help="Command to run in the pod's namespace (after --)."),
) -> None:
    """Run CMD, a tool of the node, in the pod's namespace: `nppctl cni exec --node worker p1 -- ip addr`."""
    from nppctl.access.runtime import cni_exec

    code, out = cni_exec(name, node, pod, argv[1:] if argv[:1] == ["--"] else argv)
    typer.echo(out, nl=False)
    raise typer.Exit(code)


@cni_app.command("ping")
def cni_ping_cmd(
    name: str = NAME,
    node: str = NODE,
    pod: str = typer.Argument(..., help="Pod (netns) name."),
    addresses: list[str] = typer.Argument(..., help="Addresses to ping."),
    count: int = typer.Option(2, "--count", "-c", min=1, help="Echo requests per address."),
    timeout: float = typer.Option(2.0, "--timeout", "-W", help="Seconds to wait for each reply."),
) -> None:
    """ICMP echo from the pod's namespace by nppctl's node agent (kind nodes have no ping); exit 1 on loss."""
    from nppctl.access.agent import pod_ping

    replies = pod_ping(name, node, pod, addresses, count=count, timeout=timeout)
    lost = 0
    for r in replies:
        if r["ok"]:
            typer.echo(f"reply from {r['address']}: seq={r['seq']} time={r['rtt_ms']:.3f} ms")
        else:
            typer.echo(f"no reply from {r['address']}: seq={r['seq']} ({r['detail']})")
    for address in dict.fromkeys(addresses):
        mine = [r for r in replies if r["address"] == address]
        got = sum(r["ok"] for r in mine)
        lost += len(mine) - got
        loss = round(100 * (len(mine) - got) / len(mine))
        typer.echo(f"--- {address}: {len(mine)} sent, {got} received, {loss}% packet loss")
    raise typer.Exit(1 if lost else 0)


def register(app: typer.Typer) -> None:
    """Add install, status, logs, doctor and the cni group to the root app."""
    app.command("install")(install_cmd)
    app.command("status")(status_cmd)
    app.command("logs")(logs_cmd)
    app.command("doctor")(doctor_cmd)
    app.add_typer(cni_app, name="cni")
