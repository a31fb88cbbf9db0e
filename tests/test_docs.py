"""The README and docs/ as a reader follows them: every `nppctl` command they show exists with the options
they give it, every bench script with its options, every file they name is in the repository, and the
README stays short. (The README's two walkthrough blocks are also run as written, on a lab:
tests/lab/test_walkthrough.py and tests/kind/test_kind_walkthrough.py.)"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
# A file or folder of the repository named in the text: docs/card.md, tests/harness.py, .ci/run, ...
NAMED = re.compile(r"(?<![\w/.<-])((?:docs|bench|tests|nppctl|\.ci|templates|pod-configs|cluster-configs)"
                   r"/[\w./-]*\w/?)")
# Named by a page before it is in the repository: issue 26 (in progress) adds it.
PENDING: set[tuple[str, str]] = set()


def commands(page: Path) -> list[str]:
    """Each command line of PAGE's ```bash blocks (a line ending in \\ joined with the next), without its
    comment."""
    found, block, held = [], False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            block = line == "```bash"
            continue
        if not block:
            continue
        line = held + line
        if line.endswith("\\"):
            held = line[:-1]
            continue
        held = ""
        command = re.split(r"\s#", line, maxsplit=1)[0].strip()
        if command and not command.startswith("#"):
            found.append(command)
    return found


def shown(prefix: str) -> list[tuple[str, str]]:
    """(page, command) for every command line of the pages that starts with PREFIX."""
    return [(page.relative_to(REPO).as_posix(), c) for page in PAGES for c in commands(page)
            if c.removeprefix("sudo ").startswith(prefix)]


def test_the_pages_show_commands():
    assert len(shown("nppctl ")) > 40 and len(shown("python3 bench/")) >= 6


@pytest.mark.parametrize("page, command", shown("nppctl "))
def test_every_nppctl_command_shown_exists_with_its_options(page, command):
    import typer

    from nppctl.cli.app import app

    words = shlex.split(command.removeprefix("sudo "))[1:]
    group = typer.main.get_command(app)
    options = {o for p in group.params for o in p.opts + p.secondary_opts} | {"--help"}
    cmd, path = group, ["nppctl"]
    while words and not words[0].startswith("-") and hasattr(cmd, "commands"):
        assert words[0] in cmd.commands, f"{page}: `{command}`: no command {' '.join(path)} {words[0]}"
        cmd = cmd.commands[words.pop(0)]
        path.append(cmd.name)
    assert not hasattr(cmd, "commands"), f"{page}: `{command}`: {' '.join(path)} needs a command"
    options |= {o for p in cmd.params for o in p.opts + p.secondary_opts}
    for word in words:
        if word == "--":  # what follows is run in the pod
            break
        if word.startswith("-") and not re.fullmatch(r"-?\d[\d.]*", word):
            assert word.split("=")[0] in options, f"{page}: `{command}`: {' '.join(path)} has no {word}"


@functools.cache
def bench_help(script: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, (script, done.stderr[-500:])
    return done.stdout


@pytest.mark.parametrize("page, command", shown("python3 bench/"))
def test_every_bench_command_shown_exists_with_its_options(page, command):
    script, *words = shlex.split(command)[1:]
    assert (REPO / script).is_file(), f"{page}: `{command}`: no {script}"
    options = set(re.findall(r"--[\w-]+", bench_help(script)))
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{page}: `{command}`: {script} has no {word}"


def test_every_file_the_pages_name_is_there():
    missing = [(page.relative_to(REPO).as_posix(), name) for page in PAGES
               for name in NAMED.findall(page.read_text()) if not (REPO / name).exists()]
    assert set(missing) - PENDING == set()


def test_the_readme_is_read_in_five_minutes():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 150, "the README is the start: depth goes to docs/"
