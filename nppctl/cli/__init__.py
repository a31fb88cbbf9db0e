"""Face: the typer commands and their rich rendering (`nppctl` is nppctl.cli.app:main).

app.py      the root app: the commands in lab order (up install label status check logs calls map down,
            then plugin cni doctor), --debug, one error line per failure
lab.py      the lab's commands and doctor: each parses, calls one nppctl.lab function, renders
map.py      `nppctl map` (nppctl.netmap)
plugin.py   `nppctl plugin build|conf|test` (nppctl.build, nppctl.conformance.launch)
calls.py    `nppctl calls` (nppctl.lab.calls): the CNI calls on record, --replay
cni.py      `nppctl cni add|del|check|exec|ping` (nppctl.access.runtime and agent)
render.py   what commands share: the console, ✓/✗ marks, the step spinner, the status and install
            tables (80 columns by default, --wide for every column)

May import anything below it: nppctl.lab, nppctl.netmap, nppctl.conformance.launch, nppctl.access,
nppctl.build, the base; and typer, rich. Never docker or kubernetes at module level: `nppctl --help`
loads this whole package and stays fast. Nothing below imports the face.
"""
