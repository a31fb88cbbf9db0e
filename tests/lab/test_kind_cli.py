"""The kind provider's own edges on real kind (the world's kind first on PATH): kind missing, and nodes
without a CNI config never Ready. The lab itself on real kind: tests/kind/."""

from __future__ import annotations

import os

import pytest


def test_kind_missing_is_one_line_error_saying_how_to_install(cli):
    cli.env["PATH"] = os.pathsep.join(
        p for p in cli.env["PATH"].split(os.pathsep) if not os.path.exists(os.path.join(p, "kind"))
    )
    done = cli.run("up", "--name", "np4missing", ok=False)
    assert done.returncode == 1
    assert "kind not found on PATH" in done.stderr and "install kind" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_wait_ready_times_out_naming_the_nodes_without_cni(lab, kind_world, monkeypatch):
    """A node is Ready only once it holds a CNI config: the real kubelet reports NetworkReady from
    containerd, which has none in a cluster made without kindnet."""
    from nppctl.access import kube
    from nppctl.errors import NppctlError

    lab.clusters.append("np4r")
    made = lab.kind_create("np4r")
    assert made.returncode == 0, made.stderr
    for key in ("PATH", "KUBECONFIG"):
        monkeypatch.setenv(key, lab.env[key])
    kube._clients.clear()
    try:
        assert kube.ready("np4r") == {"np4r-control-plane": False}
        with pytest.raises(NppctlError, match="not Ready after 1s: np4r-control-plane"):
            kube.wait_ready("np4r", timeout=1, interval=0.2)
    finally:
        kube._clients.clear()
