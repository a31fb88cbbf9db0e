"""The CLI root: how failures reach the user (one line; a traceback only with --debug)."""

from __future__ import annotations

import subprocess
import sys


def nppctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nppctl", *args], capture_output=True, text=True)


def test_bad_value_is_one_line_without_traceback():
    done = nppctl("plugin", "conf", "--subnet", "10.244.300.0/24")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "10.244.300.0/24" in lines[0]


def test_debug_shows_the_traceback():
    done = nppctl("--debug", "plugin", "conf", "--subnet", "nonsense")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_usage_error_is_clicks_message_not_an_unexpected_error():
    done = nppctl("plugin", "conf", "--no-such-option")
    assert done.returncode == 2
    assert "No such option: --no-such-option" in done.stderr
    assert "unexpected error" not in done.stderr and "Traceback" not in done.stderr


def test_help_lists_every_command_group():
    done = nppctl("--help")
    assert done.returncode == 0
    for command in ("up", "down", "install", "label", "logs", "status", "doctor", "cni", "check", "plugin"):
        assert f" {command} " in done.stdout, command
