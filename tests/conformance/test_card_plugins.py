"""The card for nppnet, for the reference chains, and for fixture plugins with one fault each."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conformance.conftest import ALL, CONFS, ESCAPES, PLUGINS, by_result, fixture_conf, run_card

PRE_1_1 = {"gc", "status"}  # skipped for the 1.0.0 configs


def test_nppnet_passes_every_check_of_its_own_conflist(host_untouched):
    done, card = run_card("nppnet", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [row["id"] for row in card["checks"]] == ALL
    assert card["plugin"] == "nppnet" and card["cniVersion"] == "1.0.0"
    assert card["chain"] == ["nppnet", "portmap"]
    results = by_result(card)
    assert results["fail"] == set(), card
    assert results["skip"] == PRE_1_1
    assert (card["passed"], card["failed"], card["skipped"]) == (15, 0, 2)
    skips = {row["id"]: row["detail"] for row in card["checks"] if row["result"] == "skip"}
    assert "1.1.0" in skips["gc"] and "1.0.0" in skips["gc"]


def test_nppnet_at_1_1_0_passes_gc_and_status_too(host_untouched, tmp_path):
    conf = tmp_path / "nppnet.conf"
    conf.write_text(json.dumps({
        "cniVersion": "1.1.0", "name": "nppnet11", "type": "nppnet", "bridge": "cni0",
        "subnet": "10.244.95.0/24", "ipMasq": True, "logFile": "/var/log/nppnet.log",
    }))
    done, card = run_card("nppnet", "--conf", str(conf), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert by_result(card)["pass"] == set(ALL), card


@pytest.mark.parametrize(
    "conflist, plugin", [("bridge-host-local.conflist", "bridge"), ("ptp-host-local.conflist", "ptp")]
)
def test_reference_chains(host_untouched, reference_plugins, conflist, plugin):
    """Debian's Go reference plugins pass every check their 1.0.0 chain allows."""
    done, card = run_card(str(reference_plugins / plugin), "--conf", str(CONFS / conflist), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = by_result(card)
    assert results["fail"] == set(), card
    assert results["skip"] == PRE_1_1
    rows = {row["id"]: row["detail"] for row in card["checks"]}
    assert "/var/lib/cni/networks/" in rows["del-cleans"]  # host-local's store was looked at


# fixture -> (the checks it must fail, a phrase its card must show), every other check passing
FAULTS = {
    "bashnet": (set(), None),
    "counter-unlocked": ({"parallel-add"}, "the same address went to several pods"),
    "del-noop": ({"del-cleans", "parallel-add"}, "left after DEL: node link bn"),
    "traceback": ({"error-object"}, "a traceback on stderr"),
    "never-answers": (
        {"add", "add-result", "add-truth", "connectivity", "check", "check-detects", "parallel-add"},
        "ADD did not answer in 2s (killed)",
    ),
}


@pytest.mark.parametrize("fixture", sorted(FAULTS))
def test_fixture_plugin_fails_exactly_its_checks(host_untouched, tmp_path, fixture):
    must_fail, phrase = FAULTS[fixture]
    timeout = "2" if fixture == "never-answers" else "20"
    done, card = run_card(
        str(PLUGINS / fixture), "--conf", str(fixture_conf(tmp_path, fixture)),
        "--bridge", "cni0=10.244.96.1/24", "--timeout", timeout, "--json",
    )
    assert card is not None, done.stdout + done.stderr
    results = by_result(card)
    assert results["fail"] == must_fail, json.dumps(card, indent=1)
    assert results["skip"] == PRE_1_1
    assert done.returncode == (1 if must_fail else 0)
    if phrase:
        assert any(phrase in row["detail"] for row in card["checks"] if row["result"] == "fail"), card


def test_a_plugin_writing_outside_its_sandbox_changes_nothing_on_the_host(host_untouched, tmp_path):
    """escapee writes to /etc, /var/cache, /var/lib, /usr/lib/cni, /dev/shm, its own folder and tries
    `nsenter --net=/proc/1/ns/net ip link add` before it works as bashnet: its card is bashnet's,
    and none of it is on the host."""
    for path in ESCAPES:
        assert not os.path.exists(path), f"{path} exists before the test"
    done, card = run_card(
        str(PLUGINS / "escapee"), "--conf", str(fixture_conf(tmp_path, "escapee")),
        "--bridge", "cni0=10.244.96.1/24", "--json",
    )
    assert card is not None, done.stdout + done.stderr
    assert by_result(card)["fail"] == set(), json.dumps(card, indent=1)
    assert [p for p in ESCAPES if os.path.exists(p)] == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert "nppt-escape" not in links
