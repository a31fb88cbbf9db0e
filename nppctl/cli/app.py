"""The nppctl command line: the root app, its commands in lab order, one error line per failure.

Commands stay thin: parse, call one library function, render (nppctl.cli.render). They live in
lab.py (the lab's commands and doctor), map.py, plugin.py and cni.py; none imports docker or
kubernetes at top level, so `nppctl --help` stays fast.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from nppctl.cli import calls, cni, e2e, lab, plugin
from nppctl.cli import map as netmap
from nppctl.errors import Interrupted, NppctlError, explain, one_line

# The order a student uses them (and `nppctl --help` lists them): the lab's life, then the tools.
COMMANDS = {
    "up": lab.up,
    "install": lab.install_cmd,
    "label": lab.label,
    "status": lab.status_cmd,
    "check": lab.check,
    "logs": lab.logs_cmd,
    "calls": calls.calls_cmd,
    "map": netmap.map_cmd,
    "conformance": e2e.conformance_cmd,
    "down": lab.down,
    "plugin": plugin.plugin_app,
    "cni": cni.cni_app,
    "doctor": lab.doctor_cmd,
}


class LabOrder(TyperGroup):
    """The root group: lists its commands in COMMANDS' order (typer would list groups last)."""

    def list_commands(self, ctx) -> list[str]:
        order = list(COMMANDS)
        return sorted(super().list_commands(ctx), key=lambda c: order.index(c) if c in order else len(order))


app = typer.Typer(
    cls=LabOrder,
    name="nppctl",
    help="The kind CNI lab in one command, and the nppnet plugin it installs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_state = {"debug": False}
INTERRUPTED = "interrupted: node-side work stopped; nppctl's commands are idempotent: rerun to finish"


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure (before or after "
                               "the command)."),
) -> None:
    _state["debug"] = _state["debug"] or debug


for _name, _command in COMMANDS.items():
    if isinstance(_command, typer.Typer):
        app.add_typer(_command, name=_name)
    else:
        app.command(_name)(_command)


def take_debug(argv: list[str], command=None) -> tuple[list[str], bool]:
    """(ARGV without its --debug flags, whether there was one): --debug may come before or after the
    command. Left in place: everything after `--`, and a --debug that is the value of the option
    before it (`--name --debug` names a cluster "--debug"), as click would read them."""
    # COMMAND: the app's click command (typer may vendor its own click: its classes are duck-typed)
    command = command or typer.main.get_command(app)
    kept: list[str] = []
    debug = value_next = False
    for at, token in enumerate(argv):
        if value_next:
            value_next = False
        elif token == "--":
            kept.extend(argv[at:])
            break
        elif token == "--debug":
            debug = True
            continue
        elif token.startswith("-") and "=" not in token:
            param = next((p for p in command.params if token in (*p.opts, *p.secondary_opts)), None)
            value_next = param is not None and getattr(param, "is_flag", True) is False and not param.count
        elif token in getattr(command, "commands", {}):
            command = command.commands[token]
        kept.append(token)
    return kept, debug


def main() -> None:
    """Console-script entry: run the app; a failure is one line (error_text: a tool's quoted lines and
    the remedy under it), or a traceback with --debug."""
    try:
        command = typer.main.get_command(app)  # built once (~20 ms): what app() would build again
        argv, _state["debug"] = take_debug(sys.argv[1:], command)
        rc = command(args=argv, standalone_mode=False)
        if rc == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into this exit code
            _interrupted(KeyboardInterrupt(), INTERRUPTED)
        if isinstance(rc, int):
            sys.exit(rc)
    except Interrupted as err:
        _interrupted(err, str(err))
    except NppctlError as err:
        _fail(err, str(err))
    except (typer.Abort, KeyboardInterrupt) as err:
        _interrupted(err, INTERRUPTED)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:  # usage errors (click's, vendored by typer) and anything unforeseen
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        known = explain(err)
        if known is not None:
            _fail(err, known)
        _fail(err, f"unexpected error: {type(err).__name__}: {one_line(err)} (--debug shows the traceback)")


def _interrupted(err: BaseException, line: str) -> None:
    """Ctrl-C: end what still runs in the nodes, say what is left, exit 130 without waiting for threads."""
    import os

    nodes = sys.modules.get("nppctl.access.nodes")
    if nodes is not None:
        nodes.stop_node_work()
    try:
        _fail(err, line, code=130)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # worker threads may still wait on an engine socket: do not join them


def _fail(err: BaseException, line: str, code: int = 1) -> None:
    if _state["debug"]:
        import traceback

        traceback.print_exception(type(err), err, err.__traceback__)
    from rich.console import Console

    # the message is plain text: brackets in it (Docker's "[a-zA-Z0-9]") are not rich markup
    Console(stderr=True, highlight=False).print(error_text(line), soft_wrap=True)
    sys.exit(code)


def error_text(line: str):
    """LINE as the CLI prints it: "error: " and its first line; the lines a message composed after that
    (a tool's own last lines, indented, then the remedy: kind's failures) each on a line of its own,
    never glued onto the one before."""
    from rich.text import Text

    first, *more = line.split("\n")
    text = Text("error: ", style="bold red") + Text(one_line(first))
    for extra in filter(str.strip, more):
        text += Text("\n" + extra.rstrip())
    return text
