"""issue 16: one check says whether a plugin file can be a CNI plugin, used by install, up and `plugin
test`; since issue 25 it never runs the file on the host (VERSION is asked where the plugin runs)."""

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


def test_built_plugins_and_a_bash_plugin_are_accepted(tmp_path):
    for built in artifacts.build_plugins(tmp_path):
        check_plugin_file(built)
    check_plugin_file(PLUGINS / "bashnet")


def test_a_file_that_cannot_be_started_is_refused_with_its_reason(tmp_path):
    path = write(tmp_path / "np16bplug", b"hi\n")
    with pytest.raises(NppctlError, match="is not a CNI plugin") as err:
        install.resolve_plugin(str(path))
    assert "cannot be run (Exec format error)" in str(err.value)
    path.chmod(0o644)
    with pytest.raises(NppctlError, match="is not an executable file"):
        install.resolve_plugin(str(path))


def test_plugin_test_refuses_a_text_file_with_the_same_line(tmp_path):
    path = write(tmp_path / "np16bplug", b"hi\n")
    done, _ = run_card(str(path), "--conf", str(CONFS / "bashnet.conflist"))
    assert done.returncode == 1
    assert "is not a CNI plugin: cannot be run (Exec format error)" in done.stderr, done.stderr
