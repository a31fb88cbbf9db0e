"""Fixtures of the card tests: `nppctl plugin test` as a subprocess, and the host compared before/after.

The card runs in its own sandbox (network and mount namespaces), so the tests need root and
unshare; they make nothing on the host themselves: host_untouched asserts exactly that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import require  # noqa: E402

HERE = Path(__file__).resolve().parent
PLUGINS = HERE / "plugins"
CONFS = HERE / "confs"
WATCHED_DIRS = ("/var/log", "/var/lib/cni", "/var/run/netns")
# the card's own checks, in the order it runs them (nppctl/conformance/checks.py)
ALL = [
    "version", "add", "add-result", "add-truth", "connectivity", "check", "check-detects", "del",
    "del-cleans", "del-idempotent", "del-netns-gone", "parallel-add", "error-object",
    "unknown-command", "bad-version", "gc", "status",
]


def run_card(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`nppctl plugin test ARGS --json`: the process and the card (None when it printed none)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "nppctl", "plugin", "test", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )
    try:
        card = json.loads(done.stdout) if "--json" in args else None
    except ValueError:
        card = None
    return done, card


def by_result(card: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"pass": set(), "fail": set(), "skip": set()}
    for row in card["checks"]:
        out[row["result"]].add(row["id"])
    return out


# Other processes share /tmp while the tests run: there, only new top-level entries count, less
# pytest's scratch, tempfile.mkdtemp's names and the np<N> scratch of the repo's other suites (what
# the plugins write is named otherwise).
OTHERS_IN_TMP = re.compile(r"^(pytest-of-.*|tmp[a-z0-9_]{8}|np[0-9].*)$")


def _files() -> set[str]:
    found = {f"/tmp/{n}" for n in os.listdir("/tmp") if not OTHERS_IN_TMP.match(n)}
    for top in WATCHED_DIRS:
        for root, dirs, files in os.walk(top):
            found.update(os.path.join(root, n) for n in dirs + files)
    return found


def _lines(*argv: str) -> set[str]:
    out = subprocess.run(argv, capture_output=True, text=True)
    return set(out.stdout.splitlines())


def host_state() -> dict[str, set[str]]:
    rules = set()
    for line in _lines("iptables-save"):
        if line.startswith(("#", ":")):  # comments with a date; chain lines with counters
            line = line.split(" [")[0] if line.startswith(":") else ""
        rules.add(line)
    return {
        "netns": _lines("ip", "netns", "list"),
        "links": {line.split(":")[1].strip().split("@")[0] for line in _lines("ip", "-o", "link", "show")},
        "iptables": rules,
        "files": _files(),
    }


@pytest.fixture
def host_untouched():
    """The host has no new namespace, link, iptables rule or file after the test (and lost none)."""
    require(os.geteuid() == 0, "root (the card's sandbox makes namespaces)")
    require(shutil.which("unshare") is not None, "util-linux's unshare")
    require(shutil.which("jq") is not None, "jq (the bash fixture plugins)")
    before = host_state()
    yield
    after = host_state()
    changed = {
        k: {"new": sorted(after[k] - before[k])[:10], "gone": sorted(before[k] - after[k])[:10]}
        for k in before
        if after[k] != before[k]
    }
    assert not changed, f"the host changed: {changed}"


def fixture_conf(tmp_path: Path, plugin_type: str) -> Path:
    """bashnet.conflist for the fixture plugin of that type."""
    conf = json.loads((CONFS / "bashnet.conflist").read_text())
    conf["plugins"][0]["type"] = plugin_type
    path = tmp_path / f"{plugin_type}.conflist"
    path.write_text(json.dumps(conf))
    return path
