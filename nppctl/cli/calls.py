"""`nppctl calls`: every CNI call on record in the lab's nodes (nppctl.lab.calls), one line each, a
failure in red with the plugin's message and the spec requirement it broke; --full, --json, --follow,
--replay N. Nothing heavy at module level: `nppctl --help` stays fast."""

from __future__ import annotations

import json
import time

import typer

from nppctl.cli import render


def calls_cmd(
    name: str = typer.Option("kind", "--name", "-n", help=render.NAME_HELP),
    node: str | None = typer.Option(None, "--node", help="One node's calls (default: all)."),
    pod: str | None = typer.Option(None, "--pod", help="One pod's calls: NAME or NAMESPACE/NAME (from "
                                   "CNI_ARGS)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new calls (Ctrl-C stops)."),
    as_json: bool = typer.Option(False, "--json", help="The calls as JSON (every field, verdicts too)."),
    full: bool = typer.Option(False, "--full", help="Each call's environment, stdin, stdout and stderr too."),
    show: int | None = typer.Option(None, "--show", metavar="N", help="Call N in full."),
    replay_n: int | None = typer.Option(None, "--replay", metavar="N", help="Run call N again in its "
                                        "node, as cnitool would (ADD: in a new netns, then DEL), and "
                                        "compare."),
) -> None:
    """Every CNI call the recorder in front of the plugin saw: time, node, command, pod, interface, exit
    code, duration; a failure with the plugin's message and the CNI spec requirement it broke."""
    from nppctl.errors import NppctlError
    from nppctl.lab import calls

    if replay_n is not None:
        if follow or show is not None:
            raise NppctlError("--replay runs one call: drop --follow and --show")
        _replay(name, replay_n, as_json)
        return
    if follow and as_json:
        raise NppctlError("--follow prints lines: drop --json (or --follow)")
    console = render.console()
    if show is not None:
        found = [c for c in calls.read(name, node=node, pod=pod) if c.number == show]
        if not found:
            raise NppctlError(f"no call {show} on record: list them with `nppctl calls --name {name}`")
        _print_full(console, found[0])
        return
    if not follow:
        found = calls.read(name, node=node, pod=pod)
        if as_json:
            typer.echo(json.dumps([_json(c) for c in found], indent=2))
            return
        if not found:
            console.print("[dim italic]no CNI call on record (the recorder in front of the plugin records "
                          "every call once install puts it there)[/]", soft_wrap=True)
        for call in found:
            _print_call(console, call, full)
        return
    stream = calls.follow(name, node=node, pod=pod)
    stopped = False
    try:
        for call in stream:
            _print_call(console, call, full)
    except KeyboardInterrupt:
        stopped = True  # Ctrl-C is how --follow ends: no error line, exit 130 as every command
    finally:
        stream.close()
    if stopped:
        raise SystemExit(130)


def _json(call) -> dict:
    from nppctl.lab import calls

    return {**call.to_dict(), "pod": call.pod, "cni_args": call.cni_args,
            "verdicts": [{"requirement": v.requirement, "section": v.section} for v in calls.verdicts(call)],
            "message": calls.message(call) if call.exit else ""}


def _when(start: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(start)) + f".{int(start * 1000) % 1000:03d}"


def _print_call(console, call, full: bool = False) -> None:
    from nppctl.lab import calls

    esc = render.escape
    who = call.pod or (call.containerid[:12] if call.containerid else "-")
    caller = "" if call.caller in ("containerd", "") else f" [dim](by {esc(call.caller)})[/]"
    line = (f"{call.number:>4} {_when(call.start)} [cyan]{esc(call.node)}[/] {call.command or '?':<7} "
            f"{esc(who)} {esc(call.ifname or '-')} ")
    line += f"exit {call.exit}" if call.exit == 0 else f"[red]exit {call.exit}[/]"
    line += f" {call.duration_ms:.1f}ms{caller}"
    found = calls.verdicts(call)
    if call.exit != 0:
        said = calls.message(call)
        line += f" [red]{esc(said)}[/]" if said else ""
    console.print(line, soft_wrap=True)
    for verdict in found:
        console.print(f"     [yellow]spec:[/] {esc(str(verdict))}", soft_wrap=True)
    if full:
        _print_full(console, call, header=False)


def _print_full(console, call, header: bool = True) -> None:
    esc = render.escape
    if header:
        _print_call(console, call)
    env = {"CNI_COMMAND": call.command, "CNI_CONTAINERID": call.containerid, "CNI_NETNS": call.netns,
           "CNI_IFNAME": call.ifname, "CNI_ARGS": call.args, "CNI_PATH": call.path}
    for key, value in env.items():
        console.print(f"     [dim]{key}=[/]{esc(value)}", soft_wrap=True)
    console.print(f"     [dim]type {esc(call.type)}, caller {esc(call.caller)}, pid {call.pid}, record "
                  f"{esc(call.record)}[/]", soft_wrap=True)
    for stream in ("stdin", "stdout", "stderr"):
        text = getattr(call, stream)
        cut = f" (first {len(text.encode())} of {call.sizes.get(stream)} bytes)" if stream in call.truncated \
            else ""
        console.print(f"     [bold]{stream}[/]{cut}:", soft_wrap=True)
        for piece in (text.rstrip("\n").splitlines() or ["[dim](empty)[/]"]):
            console.print(f"       {piece if piece.startswith('[dim]') else esc(piece)}", soft_wrap=True)


def _replay(name: str, n: int, as_json: bool) -> None:
    from nppctl.lab import calls

    result = calls.replay(name, n)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "verdicts": [str(v) for v in
                                                                calls.verdicts(result.as_call())]}, indent=2))
    else:
        console = render.console()
        console.print("[bold]recorded:[/]")
        _print_call(console, result.original)
        console.print(f"[bold]replayed[/] in {render.escape(result.netns or 'no netns')}:")
        _print_full(console, result.as_call())
        if result.cleanup is not None:
            console.print(f"     then DEL: exit {result.cleanup['exit']}", soft_wrap=True)
        same = "the same answer as recorded" if result.same else "a different answer from the recorded one"
        console.print(f"{render.mark(result.same)} {same}", soft_wrap=True)
        for path in result.left:
            console.print(f"[red]left behind:[/] {render.escape(path)}", soft_wrap=True)
    if result.left:
        raise typer.Exit(1)
