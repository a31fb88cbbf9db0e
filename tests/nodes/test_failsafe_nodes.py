"""nppctl fails safe on the nodes: a stopped node is a row, a broken node a failed outcome among done
ones, and Ctrl-C ends what nppctl started in the nodes (apt-get, the agent, tail -F) within seconds.

Kind-shaped clusters from the node image (docker provider), all named np6*.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nppctl.access.nodes import find_nodes, get_node, node_run
from tests.conftest import require, sigint_default
from tests.nodes.conftest import make_cluster
from tests.nodes.np3 import REPO, nppctl
from tests.nodes.test_nodes_ensure_python import make_bare_node

STOPPED = "np6s"
BROKEN = "np6i"
APT = "np6e"


def processes(cluster: str, node: str) -> list[str]:
    """Command lines of the processes running in a node."""
    (target,) = find_nodes(cluster, [node], stopped=True)
    res = node_run(target, ["ps", "-eo", "args="])
    assert res.code == 0, res.stderr
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def start(*args: str) -> subprocess.Popen:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.Popen([sys.executable, "-m", "nppctl", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default)


def wait_for(what, timeout: float = 60, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def interrupt(proc: subprocess.Popen) -> tuple[float, str, str]:
    """SIGINT (what Ctrl-C sends); seconds until the process exited, and its output."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return time.monotonic() - sent, out, err


@pytest.fixture(scope="module")
def stopped_worker(request, docker_client, python_node_image) -> str:
    """A 3-node lab, installed, whose worker2 is then stopped."""
    make_cluster(request, docker_client, python_node_image, STOPPED, workers=2)
    done = nppctl("install", "--name", STOPPED, "--all")
    assert done.returncode == 0, done.stderr
    docker_client.containers.get(f"{STOPPED}-worker2").stop(timeout=0)
    return STOPPED


def test_status_shows_a_stopped_worker_as_exited_and_the_others_with_their_data(stopped_worker):
    done = nppctl("status", "--name", STOPPED, "--json")
    assert done.returncode == 1, done.stderr
    rows = {r["node"]: r for r in json.loads(done.stdout)}
    gone = rows[f"{STOPPED}-worker2"]
    assert gone["state"] == "exited" and not gone["ok"] and "is exited" in gone["problem"]
    for name in (f"{STOPPED}-control-plane", f"{STOPPED}-worker"):
        assert rows[name]["state"] == "running" and rows[name]["subnet"] and rows[name]["ok"], rows[name]
    table = nppctl("status", "--name", STOPPED)
    assert table.returncode == 1 and "exited" in table.stdout and "10.244." in table.stdout


def test_logs_read_the_running_nodes_and_say_which_is_stopped(stopped_worker):
    done = nppctl("logs", "--name", STOPPED)
    assert done.returncode == 1, done.stderr
    assert f"{STOPPED}-worker2 | cannot read its log: node is exited" in done.stdout, done.stdout
    assert f"{STOPPED}-worker |" in done.stdout and f"{STOPPED}-control-plane |" in done.stdout


def test_check_probes_the_running_nodes_and_gives_the_stopped_one_a_row(stopped_worker):
    done = nppctl("check", "--name", STOPPED, "--json", timeout=180)
    assert done.returncode == 1 and done.stdout, done.stderr
    probes = json.loads(done.stdout)["probes"]
    (row,) = [p for p in probes if p["category"] == "node running"]
    assert row["src"] == f"{STOPPED}-worker2" and not row["ok"] and row["detail"].startswith("exited")
    others = [p for p in probes if p["category"] != "node running"]
    assert others and all(p["ok"] for p in others), [p for p in others if not p["ok"]]
    assert not any("worker2" in p["src"] + p["dst"] for p in others)


def test_install_on_a_kindless_lab_with_a_stopped_node_reports_every_node(stopped_worker):
    done = nppctl("install", "--name", STOPPED, "--all")
    assert done.returncode == 1, done.stderr
    assert "API" not in done.stdout  # no Kubernetes here: no step pretends to ask it
    assert f"{STOPPED}-worker2" in done.stdout and "failed: node np6s-worker2 is exited" in done.stdout
    assert done.stdout.count("unchanged") == 2, done.stdout


@pytest.fixture(scope="module")
def broken_worker(request, docker_client, python_node_image) -> str:
    """A fresh 3-node lab whose worker lost iproute2 (no `ip`)."""
    make_cluster(request, docker_client, python_node_image, BROKEN, workers=2)
    worker = get_node(BROKEN, "worker")
    gone = node_run(worker, ["dpkg", "--purge", "--force-depends", "iproute2"])
    assert gone.code == 0, gone.stderr
    assert node_run(worker, ["ip", "link"]).code != 0
    return BROKEN


def test_install_all_completes_the_healthy_nodes_and_prints_every_outcome(broken_worker):
    done = nppctl("install", "--name", BROKEN, "--all")
    assert done.returncode == 1, done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│ np6i-")}
    assert set(rows) == {f"{BROKEN}-control-plane", f"{BROKEN}-worker", f"{BROKEN}-worker2"}, done.stdout
    assert "failed" in rows[f"{BROKEN}-worker"]
    assert "done" in rows[f"{BROKEN}-control-plane"] and "done" in rows[f"{BROKEN}-worker2"], done.stdout
    (line,) = done.stderr.strip().splitlines()
    expected = "error: install failed on 1 of 3 node(s), the others are done: node np6i-worker"
    assert line.startswith(expected), line
    status = json.loads(nppctl("status", "--name", BROKEN, "--json").stdout)
    healthy = [r for r in status if r["node"] != f"{BROKEN}-worker"]
    assert len(healthy) == 2 and all(r["plugin_present"] and r["bridge_ok"] for r in healthy), healthy


def test_logs_follow_leaves_no_tail_in_the_nodes(stopped_worker):
    proc = start("logs", "--name", STOPPED, "--follow")
    try:
        for node in ("control-plane", "worker"):
            wait_for(lambda n=node: any(p.startswith("tail ") for p in processes(STOPPED, n)))
        took, out, err = interrupt(proc)
    finally:
        proc.kill()
    assert took < 5, took
    for node in ("control-plane", "worker"):
        assert not [p for p in processes(STOPPED, node) if p.startswith("tail ")], node


@pytest.fixture(scope="module")
def bare_node(request, docker_client, node_image):
    """A one-node lab whose python3 is purged, and whose apt mirror answers."""
    node = make_bare_node(request, docker_client, node_image, APT)
    reachable = node_run(node, ["apt-get", "update", "-qq"])
    require(reachable.code == 0, f"the node's apt mirror ({reachable.stderr.strip()[-200:]})")
    return node


def test_sigint_during_apt_returns_within_seconds_and_leaves_no_apt_or_agent(bare_node):
    proc = start("install", "--name", APT, "--all", "--ensure-python")

    def apt_running() -> list[str]:
        assert proc.poll() is None, proc.communicate()
        return [p for p in processes(APT, "control-plane") if p.startswith("apt-get install")]

    try:
        seen = wait_for(apt_running, timeout=120, every=0.01)
        took, out, err = interrupt(proc)
    finally:
        proc.kill()
    print(f"SIGINT while `{seen[0]}` ran in the node -> nppctl exited in {took:.2f}s")  # the figure
    assert took < 5, took
    assert proc.returncode == 130, err
    assert "interrupted" in err and len(err.strip().splitlines()) == 1, (out, err)
    left = [p for p in processes(APT, "control-plane")
            if any(w in p for w in ("apt", "dpkg", "python3 -")) and not p.endswith("<defunct>")]
    assert left == [], left
