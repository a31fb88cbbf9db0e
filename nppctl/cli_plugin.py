"""`nppctl plugin build|conf`: the plugin executables and the conflist install copies into nodes."""

from __future__ import annotations

from pathlib import Path

import typer

plugin_app = typer.Typer(
    help="Build the nppnet plugin executables and render their conflist.", no_args_is_help=True
)


@plugin_app.command("build")
def build(
    out: Path = typer.Option(..., "--out", help="Folder to write nppnet and nppnet-skel into."),
) -> None:
    """Write OUT/nppnet and OUT/nppnet-skel: single executable files, as install copies them."""
    from nppctl import artifacts

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
    from nppctl import artifacts

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


def register(app: typer.Typer) -> None:
    app.add_typer(plugin_app, name="plugin")
