"""`nppctl cni add|del|check|exec|ping`: play the container runtime in a node (access/runtime.py).

Thin: parse, call nppctl.access.runtime / agent, print. Nothing here imports docker at module level.
"""

from __future__ import annotations

import json

import typer

cni_app = typer.Typer(help="Play the container runtime in a node: CNI ADD/DEL/CHECK on a namespace.",
                      no_args_is_help=True, rich_markup_mode=None)

NAME = typer.Option("kind", "--name", "-n", help="Cluster name (kind's --name).")
NODE = typer.Option(..., "--node", help="Node: container name or short name (worker, worker2, ...).")


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
