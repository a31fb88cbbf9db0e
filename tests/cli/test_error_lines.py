"""How the CLI prints an error message that quotes a tool: a failed `kind create cluster` (issue 25,
point 7). kind's words and nppctl's remedy each on their own lines, never glued into one."""

from __future__ import annotations

import pytest

from nppctl.access.providers.kind import failure
from nppctl.cli import app
from nppctl.errors import NppctlError

# what kind v0.33 prints on stderr when kubeadm init fails in the control plane (shortened)
KIND_SAID = [
    'Creating cluster "np7" ...',
    " ✓ Ensuring node image (kindest/node:v1.37.0) 🖼",
    " ✗ Starting control-plane 🕹️",
    'Deleted nodes: ["np7-control-plane"]',
    'ERROR: failed to create cluster: failed to init node with kubeadm: command "docker exec --privileged '
    'np7-control-plane kubeadm init --config=/kind/kubeadm.conf" failed with error: exit status 1',
    "Command Output: [init] Using Kubernetes version: v1.37.0",
    "[preflight] Running pre-flight checks",
    "error: open /etc/kubernetes/pki/ca.crt: No such file or directory",
]
HINT = ("to look inside, run `kind create cluster --retain --name np7` (keeps the nodes after a failure), "
        "then `kind export logs --name np7`")


def printed(message: str, capsys) -> list[str]:
    with pytest.raises(SystemExit) as exited:
        app._fail(NppctlError(message), message)
    assert exited.value.code == 1
    return capsys.readouterr().err.splitlines()


def test_kinds_last_lines_and_the_remedy_are_lines_of_their_own(capsys):
    # as `up` ends: kind's failure, then what this run left ("; nothing left behind")
    message = failure("kind create cluster --name np7", KIND_SAID, 1, HINT) + "; nothing left behind"
    lines = printed(message, capsys)
    assert lines[0] == ("error: kind create cluster --name np7 failed: " + KIND_SAID[4]), lines
    assert lines[1:-1] == [f"  {ln}" for ln in KIND_SAID[5:]], lines  # kind's own words, indented
    assert lines[-1] == HINT + "; nothing left behind", lines  # nppctl's remedy, alone
    assert not any("No such file or directory to look inside" in ln for ln in lines), lines


def test_a_one_line_error_stays_one_line(capsys):
    lines = printed("cluster 'x' not found:   create it with `nppctl up --name x`", capsys)
    assert lines == ["error: cluster 'x' not found: create it with `nppctl up --name x`"]


def test_blank_lines_of_a_message_are_not_printed(capsys):
    lines = printed("kind version failed: kind exited 2\n\n  \nrun `kind version` to see why", capsys)
    assert lines == ["error: kind version failed: kind exited 2", "run `kind version` to see why"]
