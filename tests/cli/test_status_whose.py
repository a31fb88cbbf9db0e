"""The line under `nppctl status` saying whose plugin the nodes run and who made cni0 (render.status_whose),
at 80 columns, from NodeStatus rows (no Docker)."""

from __future__ import annotations

from nppctl.cli import render
from nppctl.lab.status import NodeStatus
from tests.cli.test_face import nodes, rendered, too_long


def user_rows() -> list[NodeStatus]:
    rows = nodes()
    for row in rows[:2]:
        row.plugin, row.plugin_origin, row.plugin_sha256 = "np24x", "user", "ab12" * 16
        row.conf_source, row.conflist, row.bridge_by = "09-np24x.conf.j2", "09-np24x.conf", "node"
    return rows


def test_a_users_plugin_is_named_your_file_with_its_digest_and_conf():
    rows = user_rows()
    lines = render.status_whose(rows)
    assert lines == ["plugin np24x: your file np24x (sha256 ab12ab12ab12) with your conf 09-np24x.conf.j2; "
                     "cni0 made by nppctl, on np80-control-plane, np80-worker"], lines
    text = rendered(render.status_table("np80", rows), *lines)
    assert not too_long(text), text


def test_the_builtin_plugin_on_every_node_is_one_line():
    rows = nodes()[:2]
    for row in rows:
        row.plugin_origin, row.plugin_sha256 = "built-in", "0f" * 32
    assert render.status_whose(rows) == [
        "plugin nppnet: built-in (sha256 0f0f0f0f0f0f); cni0 made by nppnet, on every node"]


def test_nodes_that_differ_get_a_line_each_and_a_plugin_not_installed_by_nppctl_says_so():
    rows = user_rows()[:2]
    rows[1].plugin_sha256 = "cd34" * 16  # the file changed in one node
    rows[0].plugin_origin = None
    lines = render.status_whose(rows)
    assert len(lines) == 2, lines
    assert lines[0].startswith("plugin np24x: not installed by nppctl (sha256 ab12ab12ab12)"), lines
    assert lines[0].endswith("on np80-control-plane") and "(sha256 cd34cd34cd34)" in lines[1], lines
