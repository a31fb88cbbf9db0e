"""The nppctl command line: the root app, error rendering, and command registration.

Commands stay thin: parse, call the library module, render with rich. Each group lives in a
cli_*.py module with a `register(app)` function; none imports docker or kubernetes at top level,
so `nppctl --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from nppctl import cli_lab, cli_nodes, cli_plugin
from nppctl.errors import NppctlError

app = typer.Typer(
    name="nppctl",
    help="The kind CNI lab in one command, and the nppnet plugin it installs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure."),
) -> None:
    _state["debug"] = debug


cli_plugin.register(app)
cli_nodes.register(app)
cli_lab.register(app)


def main() -> None:
    """Console-script entry: run the app; a failure is one line, or a traceback with --debug."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int):
            sys.exit(rc)
    except NppctlError as err:
        _fail(err, str(err))
    except (typer.Abort, KeyboardInterrupt) as err:
        _fail(err, "aborted")
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:  # usage errors (click's, vendored by typer) and anything unforeseen
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        _fail(err, f"unexpected error: {type(err).__name__}: {err} (run with --debug for the traceback)")


def _fail(err: BaseException, line: str) -> None:
    if _state["debug"] or "--debug" in sys.argv[1:]:
        import traceback

        traceback.print_exception(type(err), err, err.__traceback__)
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {line}", soft_wrap=True)
    sys.exit(1)
