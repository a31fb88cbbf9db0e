"""$KUBECONFIG as kind v0.33 reads it (pkg/cluster/internal/kubeconfig: an entry stat cannot read is
not a file): nppctl's fallback kubeconfig skips it and takes the next file."""

from __future__ import annotations

import yaml

from nppctl.access import kube


def test_an_entry_stat_cannot_read_is_skipped(tmp_path, monkeypatch):
    good = tmp_path / "config"
    good.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "contexts": [{"name": "kind-np4kc", "context": {}}],
    }))
    too_long = tmp_path / ("x" * 300)  # ENAMETOOLONG: Path.is_file() raises rather than answer
    monkeypatch.setenv("PATH", str(tmp_path))  # no kind: the KUBECONFIG fallback is what runs
    monkeypatch.setenv("KUBECONFIG", f"{too_long}:{tmp_path / 'missing'}:{good}")
    data = kube.kubeconfig_dict("np4kc")
    assert data["current-context"] == "kind-np4kc"
