"""Which pod subnet each node gets, and from where (no Docker needed)."""

from __future__ import annotations

import pytest

from nppctl.errors import NppctlError
from nppctl.lab.subnets import assign, split

NODES = ["k-control-plane", "k-worker", "k-worker2"]


def test_split_gives_24s_in_node_order():
    plan = assign(NODES, targets=NODES, pod_cidr="10.244.0.0/16")
    assert [(a.subnet, a.source) for a in plan.values()] == [
        ("10.244.0.0/24", "split"), ("10.244.1.0/24", "split"), ("10.244.2.0/24", "split")]
    assert plan["k-worker"].gateway_cidr == "10.244.1.1/24"


def test_sources_in_order_of_strength():
    plan = assign(
        NODES,
        targets=["k-worker"],
        pod_cidr="10.244.0.0/16",
        subnet="10.244.9.0/24",
        node_subnets={"k-control-plane": "10.244.5.0/24", "k-worker": "10.244.6.0/24"},
        installed={"k-worker2": "10.244.7.0/24"},
    )
    assert {n: (a.subnet, a.source) for n, a in plan.items()} == {
        "k-control-plane": ("10.244.5.0/24", "api"),
        "k-worker": ("10.244.9.0/24", "--subnet"),
        "k-worker2": ("10.244.7.0/24", "installed"),
    }


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"targets": NODES, "subnet": "10.244.9.0/24"}, "single node"),
        ({"targets": ["k-worker"], "subnet": "10.244.0.0/24"}, "overlap"),
        ({"targets": ["k-worker"], "subnet": "10.244.9.1/24"}, "not an IPv4 network"),
        ({"targets": NODES, "pod_cidr": "10.244.0.0/25"}, "smaller than a /24"),
        ({"targets": NODES, "pod_cidr": "10.244.0.0/23"}, "holds 2 /24s, not 3"),
        ({"targets": NODES, "pod_cidr": "fd00::/48"}, "IPv6"),
    ],
)
def test_bad_plans_are_one_line_errors(kwargs, says):
    kwargs.setdefault("pod_cidr", "10.244.0.0/16")
    with pytest.raises(NppctlError, match=says) as err:
        assign(NODES, **kwargs)
    assert "\n" not in str(err.value)


def test_split_is_deterministic():
    assert split("10.96.0.0/12", 3) == ["10.96.0.0/24", "10.96.1.0/24", "10.96.2.0/24"]
