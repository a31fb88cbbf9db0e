"""The card as a person reads it (✓/✗/–, the spec's requirement, --verbose), its one-line errors, and
the result checks on their own."""

from __future__ import annotations

import json

import pytest

from nppctl.conformance import card as engine
from tests.conformance.conftest import CONFS, PLUGINS, fixture_conf, run_card


def test_a_failing_check_shows_what_was_seen_the_requirement_and_its_section(host_untouched, tmp_path):
    done, _ = run_card(
        str(PLUGINS / "traceback"), "--conf", str(fixture_conf(tmp_path, "traceback")),
        "--bridge", "cni0=10.244.96.1/24", "--verbose",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "✓ add " in out and "– gc " in out
    row = next(line for line in out.splitlines() if "error-object" in line)
    assert "✗" in row and "a traceback on stderr" in row
    assert "spec: On failure the plugin prints an error object" in out
    assert "(§5 Result Types: Error)" in out
    assert "traceback ADD: Traceback (most recent call last)" in out  # --verbose: the plugin's stderr
    assert "14 passed, 1 failed, 2 skipped" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["nppnet", "--bridge", "cni0"], "--bridge 'cni0': give NAME=GATEWAY/PREFIX"),
        (["nppnet", "--bridge", "cni0=10.1.1.1/32"], "give NAME=GATEWAY/PREFIX"),
        (["nppnet", "--parallel", "0"], "--parallel 0: use 1 to 200"),
        ([str(PLUGINS / "bashnet")], "pass --conf FILE"),
        ([str(PLUGINS / "bashnet.sh"), "--conf", str(CONFS / "bashnet.conflist")], "nor an executable file"),
        (
            [str(PLUGINS / "del-noop"), "--conf", str(CONFS / "bashnet.conflist")],
            "no plugin of type 'del-noop'",
        ),
        (["nppnet", "--conf", str(PLUGINS / "bashnet")], "is not valid JSON"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    done, _ = run_card(*args)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


class _Pod:
    ifname, netns = "eth0", "/var/run/netns/x"


GOOD = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "veth1", "mac": "aa:bb:cc:dd:ee:ff"},
        {"name": "eth0", "sandbox": "/var/run/netns/x"},
    ],
    "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
}


def test_result_checks_accept_a_valid_result_and_name_each_fault():
    assert engine.result_problems(GOOD, "1.0.0", _Pod()) == []
    bad = json.loads(json.dumps(GOOD))
    bad["cniVersion"] = "0.4.0"
    bad["ips"][0]["interface"] = 2
    bad["routes"][0]["dst"] = "0.0.0.0"
    bad["interfaces"][1]["sandbox"] = "/proc/1/ns/net"
    problems = engine.result_problems(bad, "0.4.0", _Pod())
    assert problems == [
        "no interface eth0 with sandbox /var/run/netns/x",
        "ips[0].interface 2 is not an index into interfaces",
        'ips[0].version None: 0.4.0 wants "4" or "6"',
        "routes[0].dst '0.0.0.0' is not a CIDR",
    ]
