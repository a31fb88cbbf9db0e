"""kind's Known Issue of inotify limits (issue 25, point 5): `nppctl doctor` shows this host's
fs.inotify.max_user_watches and max_user_instances and warns below kind's recommendation (512 instances,
524288 watches); `up` says the same in one line before it creates a kind cluster.

The limits are set for real (root), each value restored at the end: the warning must follow them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nppctl.lab import doctor
from tests.conftest import REPO, require

LIMITS = Path("/proc/sys/fs/inotify")


@pytest.fixture
def limits():
    require(os.geteuid() == 0, "root (the test sets fs.inotify limits)")
    before = {k: (LIMITS / k).read_text() for k in doctor.INOTIFY}
    yield lambda **values: [(LIMITS / k).write_text(str(v)) for k, v in values.items()]
    for key, text in before.items():
        (LIMITS / key).write_text(text)


def doctor_row() -> str:
    done = subprocess.run([sys.executable, "-m", "nppctl", "doctor"], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, COLUMNS="400", NO_COLOR="1"), timeout=120)
    rows = [ln for ln in done.stdout.splitlines() if "inotify" in ln]
    assert len(rows) == 1, done.stdout + done.stderr
    return rows[0]


def test_doctor_warns_below_kinds_recommendation_and_not_at_it(limits):
    limits(max_user_instances=511, max_user_watches=524288)
    row = doctor_row()
    want = " ! inotify limits: fs.inotify.max_user_instances is 511 (kind recommends 512)"
    assert row.startswith(want), row
    assert "max_user_watches" not in row.split(":")[1] and "sysctl fs.inotify.max_user_watches=524288" in row
    limits(max_user_instances=512, max_user_watches=524287)
    row = doctor_row()
    assert "fs.inotify.max_user_watches is 524287 (kind recommends 524288)" in row, row
    assert "max_user_instances is" not in row, row
    limits(max_user_instances=512, max_user_watches=524288)
    assert doctor_row() == " ✓ inotify limits: max_user_watches 524288, max_user_instances 512"
    assert doctor.inotify_low() is None
