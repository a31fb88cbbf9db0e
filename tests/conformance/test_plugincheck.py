"""issue 16: one check says whether a plugin file is a CNI plugin (it answers CNI VERSION when run),
used by install, up and `plugin test`; real executables, run here."""

from __future__ import annotations

import pytest

from nppctl.build import artifacts
from nppctl.build.plugincheck import check_plugin_file
from nppctl.errors import NppctlError
from nppctl.lab import install
from tests.conformance.conftest import CONFS, PLUGINS, run_card


def write(path, data: bytes):
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def test_built_plugins_and_a_bash_plugin_answer_version(tmp_path):
    for built in artifacts.build_plugins(tmp_path):
        check_plugin_file(built)
    check_plugin_file(PLUGINS / "bashnet")


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"hi\n", "cannot be run (Exec format error)"),
        (b"#!/bin/sh\necho hello\n", "CNI VERSION printed no JSON object ('hello')"),
        (b"#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\"}'\n", "lacks cniVersion and supportedVersions"),
        (b"#!/bin/sh\necho nope >&2; exit 3\n", "CNI VERSION exited 3: nope"),
    ],
)
def test_a_file_that_does_not_answer_version_is_refused_with_its_reason(tmp_path, data, reason):
    path = write(tmp_path / "np16bplug", data)
    with pytest.raises(NppctlError, match="is not a CNI plugin") as err:
        install.resolve_plugin(str(path))
    assert reason in str(err.value)


def test_plugin_test_refuses_a_text_file_with_the_same_line(tmp_path):
    path = write(tmp_path / "np16bplug", b"hi\n")
    done, _ = run_card(str(path), "--conf", str(CONFS / "bashnet.conflist"))
    assert done.returncode == 1
    assert "is not a CNI plugin: cannot be run (Exec format error)" in done.stderr, done.stderr
