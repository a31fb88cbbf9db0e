"""`nppctl plugin build|conf|test`: the plugin executables, their conflist, and a plugin's CNI card."""

from __future__ import annotations

from pathlib import Path

import typer

plugin_app = typer.Typer(
    help="Build the nppnet plugin executables, render their conflist, test a plugin against the CNI spec.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@plugin_app.command("build")
def build(
    out: Path = typer.Option(..., "--out", help="Folder to write nppnet and nppnet-skel into."),
) -> None:
    """Write OUT/nppnet and OUT/nppnet-skel: single executable files, as install copies them."""
    from nppctl.build import artifacts

    for path in artifacts.build_plugins(out):
        typer.echo(str(path))


@plugin_app.command("conf")
def conf(
    subnet: str = typer.Option(..., "--subnet", help="This node's pod subnet, e.g. 10.244.1.0/24."),
    bridge: str = typer.Option("cni0", "--bridge", help="Bridge the pods attach to."),
    gateway: str | None = typer.Option(None, "--gateway", help="Default: the subnet's first host."),
    mtu: int | None = typer.Option(None, "--mtu", help="MTU of the pod interfaces."),
    ip_masq: bool = typer.Option(
        True, "--ip-masq/--no-ip-masq", help="Masquerade traffic leaving the cluster."
    ),
    cluster_cidr: str | None = typer.Option(None, "--cluster-cidr", help="Traffic to it is not masqueraded."),
    skel: bool = typer.Option(False, "--skel", help="The skeleton plugin's conflist instead."),
    cni_version: str = typer.Option("1.0.0", "--cni-version", help="cniVersion of the conflist."),
) -> None:
    """Print the conflist rendered from templates/ (what install writes to /etc/cni/net.d)."""
    from nppctl.build import artifacts

    typer.echo(
        artifacts.render_conflist(
            subnet,
            plugin="nppnet-skel" if skel else "nppnet",
            bridge=bridge,
            gateway=gateway,
            mtu=mtu,
            ip_masq=ip_masq,
            cluster_cidr=cluster_cidr,
            cni_version=cni_version,
        ),
        nl=False,
    )


@plugin_app.command("test")
def test(
    plugin: str = typer.Argument(..., help="nppnet, skel, or the path of a plugin executable."),
    conf: Path | None = typer.Option(
        None, "--conf", help="The .conf or .conflist to test with (a conflist runs as a chain)."
    ),
    bridge: str | None = typer.Option(
        None, "--bridge", help="NAME=GATEWAY/PREFIX: make this bridge first, e.g. cni0=10.244.1.1/24."
    ),
    parallel: int = typer.Option(16, "--parallel", help="How many ADDs parallel-add runs at once."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds before a plugin call is killed."),
    node: str | None = typer.Option(None, "--node", help="Run inside this lab node, not in a sandbox here."),
    name: str = typer.Option("kind", "--name", help="The lab the --node belongs to."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show the plugin's stderr and log lines for failing checks."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Run PLUGIN as a container runtime would, check by check against the CNI spec: a ✓/✗/– card."""
    import json

    from rich.markup import escape

    from nppctl.cli import render
    from nppctl.conformance.launch import run_card

    card = run_card(
        plugin, conf=conf, bridge=bridge, parallel=parallel, timeout=timeout, node=node, cluster=name
    )
    if as_json:
        typer.echo(json.dumps(card, indent=2))
    else:
        console = render.console()
        chain = " → ".join(map(str, card["chain"]))
        console.print(
            f"[bold]{escape(card['plugin'])}[/] cniVersion {escape(card['cniVersion'])}, "
            f"network {escape(card['network'])} ({escape(chain)}), in the {escape(card['where'])}"
        )
        marks = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "skip": "[dim]–[/]"}
        for row in card["checks"]:
            console.print(f" {marks[row['result']]} {row['id']:<16}{escape(row['detail'])}")
            if row["result"] != "fail":
                continue
            console.print(f"   {'':<16}[dim]spec: {escape(row['requirement'])} ({escape(row['section'])})[/]")
            if verbose:
                for line in row.get("stderr", []) + [f"log: {x}" for x in row.get("log", [])]:
                    console.print(f"   {'':<16}[dim]{escape(line)}[/]")
        console.print(
            f"{card['passed']} passed, {card['failed']} failed, {card['skipped']} skipped "
            f"in {card['seconds']:.1f} s"
        )
    if card["failed"]:
        raise typer.Exit(1)

