"""The face: commands listed in lab order, tables that read at 80 columns, help texts that say true things.

No Docker here: the tables are rendered from made-up rows (tests/nodes/test_nodes_lab.py renders a
real lab's at 80 columns too).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from rich.console import Console

from nppctl.cli import render
from nppctl.lab.install import InstallResult
from nppctl.lab.status import NodeStatus

LAB_ORDER = ["up", "install", "label", "status", "check", "logs", "calls", "map", "conformance", "down",
             "plugin", "cni", "doctor"]


def nppctl(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "nppctl", *args], capture_output=True, text=True, env=env)


def rendered(*things, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, no_color=True)
    for thing in things:
        console.print(thing)
    return out.getvalue()


def too_long(text: str, width: int = 80) -> list[str]:
    return [line for line in text.splitlines() if len(line) > width]


def nodes(cluster: str = "np80") -> list[NodeStatus]:
    """A 2-worker lab: a healthy control plane, a worker missing a route and python3, a stopped worker."""
    base = dict(plugin="nppnet,portmap", plugin_present=True, conflist="09-nppnet.conflist", python3="3.13.5",
                bridge_up=True, bridge_exists=True, bridge_by="plugin", gateway_ok=True, keeper=True,
                ready=True)
    return [
        NodeStatus(f"{cluster}-control-plane", "control-plane", "192.168.192.200", subnet="10.244.0.0/24",
                   gateway="10.244.0.1/24", **base),
        NodeStatus(f"{cluster}-worker", "worker", "172.18.0.3", subnet="10.244.1.0/24",
                   gateway="10.244.1.1/24", routes_missing=["10.244.2.0/24 via 172.18.0.4"],
                   **{**base, "python3": None}),
        NodeStatus(f"{cluster}-worker2", "worker", "172.18.0.4", state="exited",
                   problem=f"{cluster}-worker2 is exited"),
    ]


def test_help_lists_the_commands_in_lab_order():
    done = nppctl("--help")
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^  (\w+)\s", done.stdout.split("Commands:")[1], re.M)
    assert listed == LAB_ORDER, done.stdout


def test_help_reads_at_80_columns():
    for argv in (["--help"], *([c, "--help"] for c in LAB_ORDER)):
        done = nppctl(*argv)
        assert done.returncode == 0 and not too_long(done.stdout), (argv, done.stdout)


def test_status_table_fits_80_columns_and_says_what_its_hidden_columns_found():
    rows = nodes()
    text = rendered(render.status_table("np80", rows), *render.status_notes(rows))
    assert not too_long(text), text
    for seen in ("np80-control-plane", "10.244.1.0/24", "nppnet", "exited", "Ready",
                 "missing 10.244.2.0/24 via 172.18.0.4", "np80-worker: no python3", "np80-worker2 is exited"):
        assert seen in text, (seen, text)
    assert "conflist" not in text and "09-nppnet.conflist" not in text  # a --wide column
    assert "portmap" not in text  # the chain's first plugin only


def test_status_table_has_no_ready_column_where_no_node_has_one():
    rows = nodes()
    for row in rows:
        row.ready = None  # a kindless lab: no API
    text = rendered(render.status_table("np80", rows))
    assert "Ready" not in text and not too_long(text), text


def test_status_wide_has_every_column():
    rows = nodes()
    text = rendered(render.status_table("np80", rows, wide=True), *render.status_notes(rows, wide=True),
                    width=200)
    for column in ("node", "role", "state", "address", "pod subnet", "plugin", "conflist", "python3", "cni0",
                   "routes", "Ready"):
        assert f" {column} " in text, (column, text)
    assert "09-nppnet.conflist" in text and "missing 10.244.2.0/24 via 172.18.0.4" in text
    assert "nppnet,portmap" in text
    assert "no python3" not in text  # its column says so


def test_install_table_fits_80_columns():
    results = [
        InstallResult(f"np80-{n}", role, f"172.18.0.{i + 2}", f"10.244.{i}.0/24", "split", "nppnet",
                      "09-nppnet.conflist", changes=["conflist"] if i else [])
        for i, (n, role) in enumerate([("control-plane", "control-plane"), ("worker", "worker"),
                                       ("worker2", "worker")])
    ]
    text = rendered(render.install_table("np80", results))
    assert not too_long(text), text
    assert text.count("split") == 3 and "np80-worker2" in text and "unchanged" in text
    wide = rendered(render.install_table("np80", results, wide=True), width=200)
    assert " role " in wide and "172.18.0.4" in wide


def test_ensure_python_help_says_nppctl_provides_python3():
    text = " ".join(nppctl("up", "--help", columns=200).stdout.split())
    assert "as kindest/node does" not in text
    assert "which kindest/node lacks since kind v0.32" in text


def test_check_matrix_fits_80_columns_and_wide_has_names_and_times():
    from nppctl.lab import checks, services

    def ping(addresses):
        return [{"address": a, "ok": True, "rtt_ms": 0.123, "detail": ""} for a in addresses]

    def fetch(ip, port):
        return {"ok": True, "ms": 0.3, "reply": f"{services.REPLY} x 10.244.1.3", "detail": ""}

    shorts = ["control-plane", "worker", "worker2"]
    pods = [checks.Endpoint(f"{checks.POD_PREFIX}{s}", "pod", f"np80-{s}", f"10.244.{i}.2", ping=ping,
                            fetch=fetch) for i, s in enumerate([*shorts, "worker-b"])]
    nodes = [checks.Endpoint(f"np80-{s}", "node", f"np80-{s}", f"172.18.0.{i + 2}", ping=ping)
             for i, s in enumerate(shorts)]
    outside = checks.Endpoint("outside 192.0.2.1", "outside", "", "192.0.2.1")
    server = checks.server_of(pods)
    svc = services.Service("npp-check", "10.96.78.10", 80, 8080, server.name, server.address, "test")
    probes = checks.run_matrix(pods, nodes, outside) + checks.fetch_all(pods, server, svc)
    text = rendered(render.check_table(probes))
    assert not too_long(text), text
    assert "1 pod control-plane" in text and "7 np80-worker2" in text and "svc npp-check" in text, text
    wide = rendered(render.check_table(probes, wide=True), width=300)
    assert "svc npp-check" in wide and "✓ 0.12" in wide and "pod worker-b" in wide
