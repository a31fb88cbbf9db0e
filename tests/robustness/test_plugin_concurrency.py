"""The built nppnet under parallel calls: bursts of ADDs and DELs, and a mixed storm."""

from __future__ import annotations

import random

from tests.robustness.cni import netns_address


def assert_reservations_match_attachments(net, live: dict[str, str]) -> None:
    """Store == what is really attached: one reservation and one host veth per live container."""
    held = net.reservations()
    assert sorted(cid for cid, _ in held.values()) == sorted(live), (held, live)
    for address, (cid, ifname) in held.items():
        assert ifname == "eth0"
        assert netns_address(live[cid]) == address, (cid, address)
    assert len(net.host_veths()) == len(live), net.host_veths()


def test_64_parallel_adds_get_64_distinct_addresses_and_dels_leave_nothing(make_net):
    net = make_net(1)
    spaces = net.netns(64)
    adds = net.parallel([("ADD", net.cid(f"par{i}"), ns) for i, ns in enumerate(spaces)])
    assert [str(r) for r in adds if r.rc != 0] == []
    addresses = [r.ip for r in adds]
    assert len(set(addresses)) == 64, sorted(addresses)
    assert_reservations_match_attachments(net, {net.cid(f"par{i}"): ns for i, ns in enumerate(spaces)})

    dels = net.parallel([("DEL", net.cid(f"par{i}"), ns) for i, ns in enumerate(spaces)])
    assert [str(r) for r in dels if r.rc != 0] == []
    assert net.reservations() == {}
    assert net.host_veths() == []


def test_mixed_storm_keeps_reservations_equal_to_live_attachments(make_net):
    net = make_net(2)
    rng = random.Random(2)
    spaces = net.netns(24)
    ids = [net.cid(f"storm{i}") for i in range(24)]
    live: dict[str, str] = {}
    for wave in range(4):
        calls, after, repeats = [], dict(live), set()
        for i in rng.sample(range(24), 16):  # each container at most once per wave
            if ids[i] in live and rng.random() < 0.6:
                calls.append(("DEL", ids[i], spaces[i]))
                after.pop(ids[i])
            else:  # a first ADD, or a repeated one (an error: its interface exists)
                if ids[i] in live:
                    repeats.add(ids[i])
                calls.append(("ADD", ids[i], spaces[i]))
                after[ids[i]] = spaces[i]
        replies = net.parallel(calls)
        failed = {c[1]: r for c, r in zip(calls, replies, strict=True) if r.rc != 0}
        assert set(failed) == repeats, f"wave {wave}: {[(c, str(r)) for c, r in failed.items()]}"
        assert all("eth0 already exists" in r.stdout for r in failed.values())
        live = after
        assert_reservations_match_attachments(net, live)
    # a repeated ADD is refused and leaves the attachment's address as it was
    for cid, ns in live.items():
        before = netns_address(ns)
        again = net.run("ADD", cid, ns)
        assert again.rc == 1 and netns_address(ns) == before, str(again)
    net.parallel([("DEL", cid, ns) for cid, ns in live.items()])
    assert_reservations_match_attachments(net, {})
