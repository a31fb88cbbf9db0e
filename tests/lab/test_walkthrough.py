"""Every `nppctl` line of the README's walkthroughs, run as written (plus --name np4..., and --image for
the kindless lab, whose nodes lose `ping` first: kind's node image has none). The kind walkthrough runs
against the stand-ins (tests/standins/): its `kubectl` lines and `nppctl check` (which needs a kubelet to
run pods) cannot run here."""

from __future__ import annotations

import re
import shlex

from nppctl.resources import resource_dir
from tests.lab.kindnode import drop_ping, leftovers

README = resource_dir("templates").parent / "README.md"
NEEDS_KUBELET = {"nppctl check"}  # in the kind block only


def walkthrough(block: str) -> list[tuple[list[str], bool, str]]:
    """(argv after `nppctl`, expected to fail, comment) for each nppctl line of the README block."""
    text = README.read_text()
    match = re.search(rf"<!-- walkthrough:{block} -->\s*```bash\n(.*?)```", text, re.S)
    assert match, f"README has no walkthrough:{block} block"
    lines = []
    for raw in match.group(1).splitlines():
        command, _, comment = raw.partition(" #")
        command = command.strip()
        if command.startswith("nppctl ") and not (block == "kind" and command in NEEDS_KUBELET):
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
            assert re.search(r"reply from 10\.244\.2\.2: seq=2 time=[\d.]+ ms", done.stdout), done.stdout
        if argv[:2] == ["cni", "exec"]:
            assert "default via 10.244.1.1 dev eth0" in done.stdout, done.stdout
        if argv[0] == "check":
            assert "service hairpin: 1/1" in done.stdout and "shaped as kube-proxy's" in done.stdout
            assert leftovers(lab.docker, name) == {}
        if argv[0] == "logs" and skeleton_failed:
            assert 'outcome="error 100: nppnet-skel is a skeleton plugin' in done.stdout
    assert skeleton_failed
    assert not lab.containers(name) and list(lab.cwd.iterdir()) == []


def test_kind_walkthrough_with_standins(lab):
    name = "np4wk"
    lab.clusters.append(name)
    steps = walkthrough("kind")
    assert steps[0][0][0] == "up" and steps[-1][0] == ["down", "--purge"]
    configs = resource_dir("cluster-configs")
    for argv, fails, _ in steps:
        argv = [str(configs / a.split("/", 1)[1]) if a.startswith("cluster-configs/") else a for a in argv]
        argv = with_name(argv, name)
        if argv[0] == "up":
            argv += ["--timeout", "60"]
        done = lab.run(*argv, ok=not fails)
        if argv[0] == "up":  # the course's mount folders, created first, bound at /npp-temp
            assert {p.name for p in (lab.cwd / "tmp").iterdir()} == {"cp", "w1", "w2"}
            assert "node=node1" in done.stdout and "Ready" in done.stdout
    assert not lab.containers(name) and list(lab.cwd.iterdir()) == []
