"""Every `nppctl` line of the README's kindless walkthrough, run as written (plus --name np4w and --image;
its nodes lose `ping` first: kind's node image has none). The kind walkthrough runs on real kind, kubectl
lines included: tests/kind/test_kind_walkthrough.py."""

from __future__ import annotations

import re
import shlex

from nppctl.resources import resource_dir
from tests.lab.kindnode import drop_ping, leftovers

README = resource_dir("templates").parent / "README.md"


def walkthrough(block: str) -> list[tuple[list[str], bool, str]]:
    """(argv after `nppctl`, expected to fail, comment) for each nppctl line of the README block."""
    text = README.read_text()
    match = re.search(rf"<!-- walkthrough:{block} -->\s*```bash\n(.*?)```", text, re.S)
    assert match, f"README has no walkthrough:{block} block"
    lines = []
    for raw in match.group(1).splitlines():
        command, _, comment = raw.partition(" #")
        command = command.strip()
        if command.startswith("nppctl "):
            lines.append((shlex.split(command)[1:], comment.strip().startswith("fails"), comment))
    return lines


def with_name(argv: list[str], name: str) -> list[str]:
    """Insert --name NAME after the command words (before the first option)."""
    at = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    return argv[:at] + ["--name", name] + argv[at:]


def test_kindless_walkthrough(lab):
    name = "np4w"
    lab.clusters.append(name)
    steps = walkthrough("kindless")
    assert steps[0][0][:2] == ["up", "--provider"] and steps[-1][0] == ["down", "--purge"]
    skeleton_failed = False
    for argv, fails, comment in steps:
        argv = with_name(argv, name)
        if argv[0] == "up":
            argv += ["--image", lab.image]
        done = lab.run(*argv, ok=not fails)
        if argv[0] == "up":
            drop_ping(lab.docker, name)
        if fails:
            assert "nppnet-skel" in done.stderr and "skeleton" in done.stderr
            skeleton_failed = True
        if argv[:2] == ["cni", "add"] and not fails:  # the address the README promises
            claimed = re.search(r"\b(\d+\.\d+\.\d+\.\d+)\b", comment)
            assert claimed and f'"{claimed.group(1)}/24"' in done.stdout, (comment, done.stdout)
        if argv[:2] == ["cni", "ping"]:  # the node has no ping: the agent's ICMP, with RTTs
            assert "2 sent, 2 received, 0% packet loss" in done.stdout, done.stdout
            replied = re.search(rf"reply from {re.escape(argv[-1])}: seq=2 time=[\d.]+ ms", done.stdout)
            assert replied, done.stdout
        if argv[:2] == ["cni", "exec"]:
            assert "default via 10.244.1.1 dev eth0" in done.stdout, done.stdout
        if argv[0] == "check":
            assert "service hairpin: 1/1" in done.stdout and "shaped as kube-proxy's" in done.stdout
            assert leftovers(lab.docker, name) == {}
        if argv[0] == "logs" and skeleton_failed:
            assert 'outcome="error 100: nppnet-skel is a skeleton plugin' in done.stdout
    assert skeleton_failed
    assert not lab.containers(name) and list(lab.cwd.iterdir()) == []
