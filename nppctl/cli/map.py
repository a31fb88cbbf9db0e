"""`nppctl map`: the lab's data path as it is right now (nppctl/netmap/), as a tree, JSON or SVG."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def map_cmd(
    name: str = typer.Option("kind", "--name", "-n", help="Cluster name (kind's --name)."),
    node: str | None = typer.Option(None, "--node", help="One node (container or short name)."),
    as_json: bool = typer.Option(False, "--json", help="The map (or the path) as JSON."),
    svg: Path | None = typer.Option(None, "--svg", help="Also write the diagram to this SVG file."),
    path: tuple[str, str] | None = typer.Option(
        None, "--path", help="POD_A POD_B (NAME, NAMESPACE/NAME or an address): the hops between them."
    ),
) -> None:
    """The lab's data path now: per node its conflists, bridge, pods and veths, routes, firewall.

    Read live from the nodes; mismatches marked. Exits 1 on a mismatch (with --path: a broken hop)."""
    from nppctl.cli import render
    from nppctl.netmap import model, tree

    netmap = model.read_map(name, node=node)
    if svg is not None:
        from nppctl.netmap.svg import write_svg

        write_svg(netmap, svg)
    console = render.console()
    if path:
        from nppctl.netmap.path import trace

        result = trace(model.read_map(name) if node else netmap, *path)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            console.print(tree.path_tree(result))
        raise typer.Exit(0 if result["broken"] is None else 1)
    if as_json:
        typer.echo(json.dumps(netmap, indent=2))
    else:
        console.print(tree.map_tree(netmap))
    if svg is not None and not as_json:
        console.print(f"diagram written to {svg}")
    raise typer.Exit(1 if netmap["problems"] else 0)

