"""The face's rendering, shared by the commands: the console, the ✓/✗ marks, the step spinner, and the
tables of `status` and `install`.

Every table reads in an 80-column terminal: by default a table has the columns a student reads
first (status's has no frame, to hold seven of them) and says what the hidden ones found wrong in
lines below it; `--wide` shows every column
(piped output without COLUMNS is 200 columns wide, so such a table stays on one line per row).
Under status's table (narrow and wide), one line per distinct answer says whose plugin the nodes run
(built-in or the user's file and conf, its executable's sha256 in the node) and who made cni0
(status_whose). rich loads when a command renders, not when `nppctl --help` is asked for.
"""

from __future__ import annotations

import os
import sys
import time

NAME_HELP = "Cluster name (kind's --name)."
WIDE_HELP = "Every column (the default fits 80 columns; the hidden ones' faults are listed below)."
WIDE_INSTALL_HELP = "Every column: role and address too (the default fits 80 columns)."


def console(stderr: bool = False):
    """A rich console: a terminal's width, else COLUMNS, else 200 columns for piped output."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS", "").isdigit()
    return Console(highlight=False, stderr=stderr, width=200 if wide else None)


def escape(text: str) -> str:
    """TEXT as rich prints it literally (a path or message with brackets is not markup)."""
    from rich.markup import escape

    return escape(text)


def mark(ok: bool | None) -> str:
    """✓, ✗, or a dim - for unknown."""
    return "[dim]-[/]" if ok is None else ("[green]✓[/]" if ok else "[red]✗[/]")


class Steps:
    """One status line per step, as kind prints them: a spinner while it runs, then `✓ step — detail
    (time)`, or `✗ step`. Texts are plain (escaped here). The one spinner of every command: install's
    steps, up's and down's actions (nppctl.lab.cluster.Steps)."""

    def __init__(self, console):
        self.console, self.title, self.started, self.spinner = console, None, 0.0, None

    def __enter__(self):
        self.spinner = self.console.status("", spinner="dots")
        self.spinner.__enter__()
        return self

    def step(self, title: str) -> None:
        self.done()
        self.title, self.started = title, time.monotonic()
        self.spinner.update(f" {escape(title)} ...")

    def say(self, text: str) -> None:
        self.spinner.update(f" {escape(self.title or '')}: {escape(text)}")

    def done(self, detail: str | None = None) -> None:
        if self.title is not None:
            took = time.monotonic() - self.started
            line = self.title + (f" — {detail}" if detail else "")
            self.console.print(f" [green]✓[/] {escape(line)} [dim]({took:.1f}s)[/]")
            self.title = None

    def fail(self) -> None:
        if self.title is not None:
            self.console.print(f" [red]✗[/] {escape(self.title)}")
            self.title = None

    def line(self, text: str, ok: bool | None = None) -> None:
        self.console.print(f" {mark(ok) + ' ' if ok is not None else ''}{escape(text)}")

    def __exit__(self, exc_type, exc, tb):
        self.spinner.__exit__(exc_type, exc, tb)
        self.fail() if exc_type else self.done()
        return False


def _table(title: str, columns: tuple[str, ...], frame: bool = True):
    from rich.table import Table

    # frameless: one space between columns (a frame costs 3 columns a column)
    table = Table(title=title) if frame else Table(title=title, box=None, pad_edge=False, header_style="bold",
                                                   padding=(0, 1, 0, 0))
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def status_table(name: str, result: list, wide: bool = False):
    """The table of `nppctl status` for lab/status.py's NodeStatus list."""
    from rich.markup import escape

    # narrow: Ready only where some node has one (a kindless lab has no API), the chain's first plugin
    ready = wide or any(s.ready is not None for s in result)
    columns = ("node", "role", "state", "address", "pod subnet", "plugin", "conflist", "python3", "cni0",
               "routes", "Ready") if wide else ("node", "address", "pod subnet", "plugin", "cni0", "routes",
                                                *(["Ready"] if ready else []))
    table = _table(f"nppctl status ({name})", columns, frame=wide)
    for s in result:
        # "-": no cni0 yet where nppnet makes it at its next ADD (right, not a fault)
        cni0 = mark(None if s.bridge_pending else s.bridge_ok)
        types = s.plugin if wide else (s.plugin or "").split(",")[0]
        plugin = (mark(s.plugin_present) + " " + escape(types)) if s.plugin else mark(False)
        state = s.state if s.state == "running" else f"[red]{escape(s.state)}[/]"
        if wide:
            routes = mark(s.routes_ok) + ("" if s.routes_ok else " missing " + ", ".join(s.routes_missing))
            table.add_row(s.node, s.role, state, s.address or "-", s.subnet or "-", plugin,
                          escape(s.conflist or "-"), s.python3 or "[red]✗[/]",
                          cni0 + (f" {s.gateway}" if s.gateway else ""), routes, mark(s.ready))
        else:
            node = s.node if s.state == "running" else f"{s.node}\n{state}"  # the name's width, 2 lines
            running = s.state == "running"
            table.add_row(node, s.address or "-", s.subnet or "-", plugin, cni0 if running else mark(None),
                          mark(s.routes_ok if running else None), *([mark(s.ready)] if ready else []))
    return table


def whose(s) -> str:
    """Whose plugin a NodeStatus row's node runs: built-in, or the user's file (and conf), with the
    first 12 hex of its executable's sha256 in the node."""
    digest = f" (sha256 {s.plugin_sha256[:12]})" if s.plugin_sha256 else ""
    if s.plugin_origin == "built-in":
        return f"built-in{digest}"
    if s.plugin_origin == "user":
        conf = f" with your conf {s.conf_source}" if s.conf_source else " with nppctl's conflist"
        return f"your file {(s.plugin or '').split(',')[0]}{digest}{conf}"
    return f"not installed by nppctl{digest}" if s.plugin else "-"


def status_whose(result: list) -> list[str]:
    """The lines under the status table saying whose plugin each node runs and who made its cni0, one
    per distinct answer (plain text: printed wrapped, they fit any width)."""
    running = [s for s in result if s.state == "running" and not s.problem and s.plugin]
    groups: dict[str, list[str]] = {}
    for s in running:
        first = s.plugin.split(",")[0]
        maker = {"node": "nppctl", "plugin": first}.get(s.bridge_by or "")
        bridge = f"; cni0 made by {maker}" if maker else ""
        recorded = "; its calls recorded (nppctl calls)" if s.recorded else ""
        groups.setdefault(f"plugin {first}: {whose(s)}{bridge}{recorded}", []).append(s.node)
    return [f"{text}, on {'every node' if len(names) == len(result) > 1 else ', '.join(names)}"
            for text, names in groups.items()]


def status_notes(result: list, wide: bool = False) -> list[str]:
    """The lines under the status table: each node's problem, and what the hidden columns found wrong."""
    from rich.markup import escape

    lines = []
    for s in result:
        whys = [s.problem, s.plugin_problem and f"plugin {s.plugin_problem}",
                s.not_ready_why and f"NotReady: {s.not_ready_why}"]
        if not wide and s.state == "running" and not s.problem:
            whys += [
                not s.routes_ok and "routes missing " + ", ".join(s.routes_missing),
                not s.python3 and "no python3 (the plugin's interpreter)",
                not s.bridge_ok and f"cni0 is not up with {s.gateway or 'its gateway'}",
            ]
        lines += [f"[red]{s.node}:[/] {escape(why)}" for why in whys if why]
    return lines


def install_table(name: str, results: list, wide: bool = False):
    """The table of `nppctl install` for lab/install.py's InstallResult list."""
    from rich.markup import escape

    columns = ("node", "role", "address", "pod subnet", "from", "plugin", "outcome") if wide else (
        "node", "pod subnet", "from", "plugin", "outcome")
    table = _table(f"nppctl install ({name})", columns)
    for r in results:
        outcome = {
            "done": f"[green]done[/] ({len(r.changes)} changed)",
            "unchanged": "[dim]unchanged[/]",
            "failed": f"[red]failed[/]: {escape(r.error or '')}",
        }[r.outcome]
        cells = (r.node, r.role, r.address or "-", r.subnet, r.source, r.plugin, outcome) if wide else (
            r.node, r.subnet, r.source, r.plugin, outcome)
        table.add_row(*cells)
    return table


def check_table(probes: list, wide: bool = False):
    """The matrix of `nppctl check` (lab/checks.py's probes): sources as rows, destinations as columns,
    ✓ (with the time in ms when wide) or ✗ per cell. Narrow, the columns are the rows' numbers, and a
    destination that is no row (the Service, outside) is named in the caption."""
    from rich.table import Table

    from nppctl.lab.checks import POD_PREFIX, label

    sources = list(dict.fromkeys(p.src for p in probes))
    pods = [s for s in sources if s.startswith(POD_PREFIX)]
    dests = pods + [d for d in dict.fromkeys(p.dst for p in probes) if d not in pods]
    cells = {(p.src, p.dst): p for p in probes}
    number = {name: str(at) for at, name in enumerate(dict.fromkeys(sources + dests), 1)}
    if wide:
        title = "connectivity (ICMP echo: RTT in ms; svc: TCP through the Service's ClusterIP, connect in ms)"
        table = Table(title=title, show_lines=False)
        table.add_column("from \\ to", style="bold")
    else:
        only_dests = [f"{number[d]}: {label(d)}" for d in dests if d not in sources]
        title = "connectivity (✓: ICMP echo answered; svc: TCP through the Service's ClusterIP; --wide: ms)"
        table = Table(title=title, caption=", ".join(only_dests) or None)
        table.add_column("from \\ to", style="bold", overflow="fold")
    for dst in dests:
        table.add_column(label(dst) if wide else number[dst], justify="center")
    for src in sources:
        row = [label(src) if wide else f"{number[src]} {label(src)}"]
        for dst in dests:
            p = cells.get((src, dst))
            if p is None:
                row.append("[dim]·[/]")
            elif p.ok:
                row.append(f"[green]✓[/] {p.rtt_ms:.2f}" if wide and p.rtt_ms is not None else "[green]✓[/]")
            else:
                row.append("[red]✗[/]")
        table.add_row(*row)
    return table


class SuiteProgress:
    """`nppctl conformance`'s bar on stderr: passed, failed and remaining tests as ginkgo reports them
    (lab/e2e.py Progress), and what the run does meanwhile; update() is lab/e2e.py's on_event."""

    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                             console=console(stderr=True), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("conformance", total=None, counts="")
        return self

    def update(self, what: str, progress) -> None:
        counts = f"[green]{progress.passed} passed[/] [red]{progress.failed} failed[/]"
        if progress.total is not None:
            counts += f" {max(progress.total - progress.done, 0)} remaining"
        self._bar.update(self._task, description=f"conformance: {escape(what)}", total=progress.total,
                         completed=progress.done, counts=counts)

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)


def conformance_summary(outcome) -> str:
    """One line: the counts, the image and the time of a run (lab/e2e.py Outcome)."""
    verdict = "[green]✓ conformant[/]" if outcome.ok else "[red]✗ not conformant[/]"
    total = f" of {outcome.total}" if outcome.total is not None else ""
    return (f"{verdict}: {outcome.passed} passed, {outcome.failed} failed{total} in "
            f"{outcome.seconds / 60:.1f} min ({escape(outcome.image)}, exit code {outcome.exit_code})")


def conformance_table(failures: list):
    """The failed tests, each with the first line of its failure (from the JUnit report)."""
    from rich.table import Table

    table = Table(title="failed tests", show_lines=True)
    table.add_column("test", overflow="fold", ratio=3)
    table.add_column("first failure line", overflow="fold", ratio=2)
    for f in failures:
        table.add_row(escape(f.name), escape(f.message))
    return table
