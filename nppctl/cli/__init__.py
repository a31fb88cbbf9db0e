"""Face: the typer commands and their rich rendering (`nppctl` is nppctl.cli.app:main).

Holds app.py (the root app, --debug, one error line per failure), one module per command group
(lab.py: up install label status check logs down; map.py; plugin.py; nodes.py: doctor and the cni
group) and render.py (the rendering shared by commands: consoles, tables, the step spinner).
A command parses its options, calls one library function, renders what it returns.

May import: nppctl.lab, nppctl.netmap, nppctl.conformance.launch, nppctl.build, nppctl.errors and
third-party typer/rich. Never docker or kubernetes at module level: `nppctl --help` loads this
whole package and stays fast. Nothing below imports the face.
"""
