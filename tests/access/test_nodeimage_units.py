"""Pure parts of the node-image work: derived tags, kind's release table, kind's ULA subnet, kind's
failure report."""

from __future__ import annotations

import pytest

from nppctl.access import nodeimage
from nppctl.access.providers import docker as docker_provider
from nppctl.access.providers.kind import failure


@pytest.mark.parametrize(
    ("base", "tag"),
    [
        ("kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
         "nppctl-node:kindest_node_v1.36.1"),
        ("kindest/node:v1.36.1", "nppctl-node:kindest_node_v1.36.1"),
        ("debian", "nppctl-node:debian_latest"),
        ("docker.io/library/debian:trixie-slim", "nppctl-node:debian_trixie-slim"),
        ("localhost:5000/lab/node", "nppctl-node:localhost_5000_lab_node_latest"),
        ("nppctl-kindnode:trixie-0123", "nppctl-node:nppctl-kindnode_trixie-0123"),
    ],
)
def test_derived_tag_is_a_valid_tag_named_after_the_base(base, tag):
    assert nodeimage.derived_tag(base) == tag


def test_a_long_reference_is_cut_and_kept_apart_by_a_hash():
    a = nodeimage.derived_tag("registry.example/" + "x" * 200 + ":v1")
    b = nodeimage.derived_tag("registry.example/" + "x" * 200 + ":v2")
    for tag in (a, b):
        name = tag.split(":", 1)[1]
        assert len(name) == 128 and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
    assert a != b


def test_kind_release_table_gives_kinds_default_image():
    current = nodeimage.default_image("kind v0.32.0 go1.24.2 linux/amd64")
    assert current.startswith("kindest/node:v1.36.1@sha256:")
    assert nodeimage.default_image("kind v0.21.0 go1.21.6 linux/amd64").startswith("kindest/node:v1.29.1@")
    assert nodeimage.default_image("kind v0.33.0 go1.26.8 linux/amd64").startswith("kindest/node:v1.37.0@")
    assert nodeimage.default_image("kind v0.34.0-alpha+1a2b go1.26 linux/amd64") is None  # not in the table
    assert nodeimage.default_image("") is None
    assert sorted(nodeimage.KIND_DEFAULT_IMAGES) == [f"v0.{n}.0" for n in range(21, 34)]
    assert docker_provider.DEFAULT_IMAGE == nodeimage.KIND_DEFAULT_IMAGES[nodeimage.LATEST_KIND]


def test_ula_subnet_is_kinds():
    assert docker_provider.ula_subnet("kind") == "fc00:f853:ccd:e793::/64"  # what kind gives network "kind"
    assert docker_provider.ula_subnet("kind", 1) != docker_provider.ula_subnet("kind")
    assert docker_provider.ula_subnet("np7net").startswith("fc00:")


def test_network_name_follows_kind_experimental_docker_network(monkeypatch):
    monkeypatch.delenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", raising=False)
    assert docker_provider.network_name() == "kind"
    monkeypatch.setenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", "labnet")
    assert docker_provider.network_name() == "labnet"


def test_kind_failure_shows_its_error_line_the_tail_and_the_hint():
    printed = [
        'Creating cluster "np7" ...',
        " ✓ Ensuring node image (kindest/node:v1.36.1) 🖼",
        " ✗ Starting control-plane 🕹️",
        "Deleted nodes: [\"np7-control-plane\"]",
        "ERROR: failed to create cluster: failed to init node with kubeadm: command "
        '"docker exec --privileged np7-control-plane kubeadm init" failed with error: exit status 1',
        "Command Output: I0101 00:00:00.000000     190 initconfiguration.go:260] loading configuration",
        *[f"line {i}" for i in range(10)],
    ]
    text = failure("kind create cluster --name np7", printed, 1, "HINT")
    lines = text.splitlines()
    assert lines[0].startswith("kind create cluster --name np7 failed: ERROR: failed to create cluster:")
    assert lines[1:-1] == [f"  line {i}" for i in range(4, 10)]
    assert lines[-1] == "HINT"
    assert failure("kind get clusters", [], 2) == "kind get clusters failed: kind exited 2"
    assert failure("x", ["just this"], 1) == "x failed: just this"
