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

from nppctl.conformance.launch import REFERENCE_DIRS  # noqa: E402
from nppctl.conformance.node import NETNS_DIR  # noqa: E402
from nppctl.conformance.sandbox import SANDBOX_DIRS  # noqa: E402
from tests.conftest import require  # noqa: E402

HERE = Path(__file__).resolve().parent
PLUGINS = HERE / "plugins"
CONFS = HERE / "confs"
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


# What the card's sandbox could write on the host were it to leak, and nothing else: the machine is
# shared (pytest, Docker, kind and the other suites make files in /tmp, /run and /var/log, links,
# netns and iptables rules, nppnet's among them, while these tests run). Inside the sandbox, plugins
# write to fresh tmpfs at sandbox.SANDBOX_DIRS and to its own network namespace: a leak would show
# on the host in those folders, the netns folder, the plugin folders, /etc or /var/lib, and in the
# host's network namespace, named as the card and the plugins it tests here name things (the other
# suites name theirs np<N>...; nppnet's own fixed paths, /run/nppnet and /var/cache/nppnet, are
# theirs too). /var/lib/cni and /etc/cni are CNI's alone: watched whole (nppnet's conflist keeps its
# store there).
CARD_FILES = re.compile(r"^(nppt-|bashnet)")  # pods, escapee's nppt-escape, bashnet's log and counters
CARD_NETNS = re.compile(r"^nppt-")  # the card's pods (card.py: PREFIX-TAG, prefix "nppt")
# the card's bridges (npptbr<n>, --bridge cni0, nppnet's own conflist's cni0), escapee's nppt-escape,
# bashnet's veths (bn, bt + 8 hex), the reference plugins' (veth + 8 hex; Docker's are veth + 7 hex)
CARD_LINKS = re.compile(r"^(nppt.*|cni0|b[nt][0-9a-f]{8}|veth[0-9a-f]{8})$")
# rules naming the card's subnets: launch.TEST_SUBNET and NODE_SUBNET, the confs' 10.244.95-98.0/24
CARD_RULES = re.compile(r"nppt|10\.244\.9[5-9]\.|198\.18\.99\.")
CNI_DIRS = ("/var/lib/cni", "/etc/cni")
NAMED_DIRS = (*SANDBOX_DIRS, NETNS_DIR, "/etc", "/var/lib", "/opt/cni/bin", *REFERENCE_DIRS, str(PLUGINS))
# what escapee (plugins/escapee) writes when it gets out
ESCAPES = ["/etc/nppt-escape", "/var/cache/nppt-escape", "/var/lib/nppt-escape", "/usr/lib/cni/nppt-escape",
           "/dev/shm/nppt-escape", "/opt/cni/bin/nppt-escape", str(PLUGINS / "nppt-escape")]


def _files() -> set[str]:
    found = set()
    for top in NAMED_DIRS:
        try:
            found.update(os.path.join(top, n) for n in os.listdir(top) if CARD_FILES.match(n))
        except OSError:
            pass
    for top in CNI_DIRS:
        for root, dirs, files in os.walk(top):
            found.update(os.path.join(root, n) for n in dirs + files)
    return found


def _lines(*argv: str) -> set[str]:
    out = subprocess.run(argv, capture_output=True, text=True)
    return set(out.stdout.splitlines())


def host_state() -> dict[str, set[str]]:
    """What of the host a leaking card could change (see CARD_FILES and the rest above)."""
    rules = set()
    for line in _lines("iptables-save"):
        if line.startswith(("#", ":")):  # comments with a date; chain lines with counters
            line = line.split(" [")[0] if line.startswith(":") else ""
        if CARD_RULES.search(line):
            rules.add(line)
    links = {line.split(":")[1].strip().split("@")[0] for line in _lines("ip", "-o", "link", "show")}
    return {
        "netns": {n.split()[0] for n in _lines("ip", "netns", "list") if CARD_NETNS.match(n)},
        "links": {n for n in links if CARD_LINKS.match(n)},
        "iptables": rules,
        "files": _files(),
    }


@pytest.fixture
def host_untouched():
    """The host has no new namespace, link, iptables rule or file of the card's after the test (and
    lost none): host_state() says which."""
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
