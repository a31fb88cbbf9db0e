"""nppnet's rules follow its conf: a rule the network no longer wants goes at the next ADD, CHECK
names it until then, and another network's rules on the same bridge stay."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import iptables_save


def _mine(net, chain: str, subnet: str | None = None) -> list[str]:
    """iptables-save's lines of chain carrying net's bridge comment (and naming subnet when given)."""
    return [
        line
        for line in iptables_save().splitlines()
        if line.startswith(f"-A {chain} ")
        and f'"nppnet:{net.bridge}"' in line
        and (subnet is None or subnet in line)
    ]


def test_ipmasq_turned_off_removes_the_masquerade_rule_and_check_names_it(net, tmp_path):
    neighbour = net.conf(name=f"np1nb{net.n}", subnet="10.203.77.0/24", dataDir=str(tmp_path / "nb"))
    net.add(net.netns(), "np1nbmasq", conf=neighbour)  # same bridge, ipMasq true: its rule stays
    a = net.netns()
    first = net.add(a, net.cid(1)).obj  # ipMasq true
    assert len(_mine(net, "NPPNET-POSTROUTING", net.subnet)) == 1
    off = net.conf(ipMasq=False)
    # CHECK against the new conf: the MASQUERADE rule is not wanted any more
    reply = net.call("CHECK", a, net.cid(1), conf=dict(off, prevResult=first))
    assert reply.rc == 1 and "stale firewall rules" in reply.obj["msg"], str(reply)
    assert "MASQUERADE" in reply.obj["msg"] and net.subnet in reply.obj["msg"], str(reply)
    net.add(net.netns(), net.cid(2), conf=off)
    assert _mine(net, "NPPNET-POSTROUTING", net.subnet) == []
    assert len(_mine(net, "NPPNET-FORWARD", net.subnet)) == 2  # its filter rules stay
    assert len(_mine(net, "NPPNET-POSTROUTING", "10.203.77.0/24")) == 1  # the neighbour's stays
    assert net.call("CHECK", a, net.cid(1), conf=dict(off, prevResult=first)).rc == 0
    assert net.call("DEL", net.namespaces[0], "np1nbmasq", conf=neighbour).rc == 0


@pytest.mark.parametrize("masq", [False, True], ids=["no-masq", "masq"])
def test_a_narrower_cluster_cidr_removes_the_wider_accept(net, tmp_path, masq):
    """Without ipMasq the wide ACCEPT is the only change (nothing wanted is missing); with it the
    masquerade's `! -d CLUSTER_CIDR` changes too."""
    wide, cidr_rule = "10.201.0.0/16", f"-s 10.201.0.0/16 -d {net.subnet} "
    neighbour = net.conf(
        name=f"np1nb{net.n}",
        subnet="10.203.78.0/24",
        clusterCIDR="10.203.0.0/16",
        dataDir=str(tmp_path / "nb"),
    )
    net.add(net.netns(), "np1nbcidr", conf=neighbour)
    a = net.netns()
    first = net.add(a, net.cid(1), conf=net.conf(clusterCIDR=wide, ipMasq=masq)).obj
    assert [x for x in _mine(net, "NPPNET-FORWARD") if cidr_rule in x], _mine(net, "NPPNET-FORWARD")
    narrow = net.conf(clusterCIDR=net.subnet, ipMasq=masq)
    reply = net.call("CHECK", a, net.cid(1), conf=dict(narrow, prevResult=first))
    assert reply.rc == 1 and "stale firewall rules" in reply.obj["msg"], str(reply)
    assert cidr_rule in reply.obj["msg"].split("stale firewall rules")[1], str(reply)
    net.add(net.netns(), net.cid(2), conf=narrow)
    forward = _mine(net, "NPPNET-FORWARD")
    assert not [x for x in forward if cidr_rule in x], forward
    assert len([x for x in forward if net.subnet in x]) == 2, forward  # replies in, pods out
    # the masquerade follows clusterCIDR: one rule, for the narrow one (none without ipMasq)
    assert [x for x in _mine(net, "NPPNET-POSTROUTING", net.subnet) if f"! -d {wide} " in x] == []
    assert len(_mine(net, "NPPNET-POSTROUTING", net.subnet)) == int(masq)
    # the neighbour's wide ACCEPT and masquerade stay
    assert [x for x in forward if "-s 10.203.0.0/16 -d 10.203.78.0/24 " in x], forward
    assert len(_mine(net, "NPPNET-POSTROUTING", "10.203.78.0/24")) == 1
    assert net.call("CHECK", a, net.cid(1), conf=dict(narrow, prevResult=first)).rc == 0
    assert net.call("DEL", net.namespaces[0], "np1nbcidr", conf=neighbour).rc == 0


def test_a_restore_makes_missing_chains_without_declaring_them():
    """`:CHAIN - [0:0]` under --noflush flushes a chain that exists by then (another network's ADD
    made it): a missing chain is made with -N, which leaves an existing one as it is."""
    from nppctl.plugin import firewall

    rules = firewall.wanted_rules("np1brx", "10.201.9.0/24", "10.201.0.0/16", True, "np1netx")
    script = firewall.restore_script({}, "np1brx", rules).splitlines()
    assert [x for x in script if x.startswith(":")] == [], script
    assert "-N NPPNET-FORWARD" in script and "-N NPPNET-POSTROUTING" in script, script
    saved = "\n".join(
        x.replace("-N ", ":", 1).replace("-I POSTROUTING 1 ", "-A POSTROUTING ") for x in script
    )
    held = firewall._parse_save(saved)  # what iptables-save prints after that restore
    assert firewall.restore_script(held, "np1brx", rules) == ""  # all there: nothing to do
    # ipMasq off: the nat rule goes, and no nat chain or jump is made for a network without one
    off = firewall.wanted_rules("np1brx", "10.201.9.0/24", "10.201.0.0/16", False, "np1netx")
    assert firewall.restore_script(held, "np1brx", off).splitlines() == [
        "*nat",
        "-D" + rules["nat"][0][2:],
        "COMMIT",
    ]
    assert "*nat" not in firewall.restore_script({}, "np1brx", off)
