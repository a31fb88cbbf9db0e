"""The default node image comes from the installed kind binary itself (kind's defaults.Image constant),
read from real kind executables ($NPPCTL_KIND) copied onto a PATH of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from nppctl.access import nodeimage
from nppctl.access.providers.kind import KindProvider

V033_IMAGE = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"


@pytest.fixture
def kind_on_path(kind_binary, tmp_path, monkeypatch):
    """The real kind, copied into a folder of its own that comes first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    copy = folder / "kind"
    shutil.copy2(kind_binary, copy)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return copy


def _release(binary) -> str:
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def test_the_kind_binary_names_its_own_default_node_image(kind_on_path):
    found = nodeimage.kind_binary_image(kind_on_path)
    release = _release(kind_on_path)
    assert found is not None and found.startswith("kindest/node:v") and "@sha256:" in found
    if release in nodeimage.KIND_DEFAULT_IMAGES:  # what image.go says at that tag
        assert found == nodeimage.KIND_DEFAULT_IMAGES[release]
    if release == "v0.33.0":
        assert found == V033_IMAGE
    assert nodeimage.installed_kind_image(KindProvider().version) == (found, "")


def test_a_release_missing_from_the_table_still_gets_its_image(kind_on_path, monkeypatch):
    """No table entry is needed: a newer kind than nppctl knows names its image itself."""
    release = _release(kind_on_path)
    monkeypatch.delitem(nodeimage.KIND_DEFAULT_IMAGES, release, raising=False)
    image, source = nodeimage.installed_kind_image(KindProvider().version)
    assert image == nodeimage.kind_binary_image(kind_on_path) and image is not None
    assert source == ""


def test_a_kind_without_the_constant_falls_back_to_the_table_and_says_so(kind_on_path, monkeypatch):
    """The real binary with its defaults.Image bytes overwritten (same length): it still runs
    `kind version`, but holds no kindest/node image, as a wrapper or a shim would not."""
    data = kind_on_path.read_bytes()
    found = nodeimage.kind_binary_image(kind_on_path)
    assert found is not None and data.count(found.encode()) == 1
    kind_on_path.write_bytes(data.replace(found.encode(), b"x" * len(found)))
    assert nodeimage.kind_binary_image(kind_on_path) is None
    release = _release(kind_on_path)  # the patched binary runs
    provider = KindProvider()

    monkeypatch.setitem(nodeimage.KIND_DEFAULT_IMAGES, release, found)
    image, source = nodeimage.installed_kind_image(provider.version)
    assert image == found
    assert source == f"{kind_on_path} holds no kindest/node default image: {release}'s from nppctl's table"

    monkeypatch.delitem(nodeimage.KIND_DEFAULT_IMAGES, release)
    chosen = nodeimage.image_for_up(provider, None, lambda _t: None)
    assert chosen.image is None
    assert chosen.describe() == (
        f"left to kind ({kind_on_path} holds no kindest/node default image and {release} is not in "
        "nppctl's table); python3 from apt in each node if it lacks one"
    )


def test_a_file_that_is_not_kind_names_no_image(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    two = tmp_path / "two"
    two.write_bytes(V033_IMAGE.encode() + b"\0" + nodeimage.KIND_DEFAULT_IMAGES["v0.32.0"].encode())
    assert nodeimage.kind_binary_image(empty) is None
    assert nodeimage.kind_binary_image(tmp_path / "missing") is None
    assert nodeimage.kind_binary_image(two) is None  # two different images: cannot tell which
