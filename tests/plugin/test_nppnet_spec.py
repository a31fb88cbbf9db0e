"""What the CNI spec asks of a plugin (SPEC.md 1.0.0 and 1.1.0's GC), each point driven by exec as
a runtime does: GC, repeated ADD, routes ADD did not install, CHECK against prevResult, chaining,
IPAM delegation, the narrow FORWARD rules and hairpin mode."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require
from tests.plugin.conftest import Net, _run, iptables_save

VALID = "cni.dev/valid-attachments"


def _reservations(net: Net, name: str | None = None) -> list[str]:
    store = net.data_dir / (name or net.conf()["name"])
    return sorted(p.name for p in store.iterdir() if p.name.startswith("10.")) if store.exists() else []


def _veths(net: Net) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in net.ports().splitlines() if "veth" in line]


# -- GC -----------------------------------------------------------------------------------------


def test_gc_with_null_valid_attachments_removes_every_reservation(net):
    """libcni sends a nil Go slice as null when no attachment is left: the commonest GC."""
    net.version = "1.1.0"
    for i in (1, 2):
        net.add(net.netns(), net.cid(i))
    assert len(_reservations(net)) == 2
    reply = net.call("GC", conf=net.conf(**{VALID: None}))
    assert reply.rc == 0 and reply.stdout == "", str(reply)
    assert _reservations(net) == [] and _veths(net) == []


def test_gc_of_one_network_leaves_the_pods_of_another_on_the_same_bridge(net, tmp_path):
    net.version = "1.1.0"
    other = Net(exe=net.exe, tmp=tmp_path / "other", n=(net.n % 240) + 1, version="1.1.0")
    other.extra = {"bridge": net.bridge, "name": f"np1net{net.n}b", "subnet": f"10.201.{net.n}.128/25"}
    net.extra = {"subnet": f"10.201.{net.n}.0/25"}
    try:
        a, b = net.netns(), other.netns()
        net.add(a, net.cid(1))
        rb = other.add(b, other.cid(2) + "b")
        assert len(_veths(net)) == 2
        saved = iptables_save("-t", "filter")
        for subnet in (net.extra["subnet"], other.extra["subnet"]):  # each keeps the other's rules
            assert f"-A NPPNET-FORWARD -s {subnet} " in saved, subnet
        reply = net.call("GC", conf=net.conf(**{VALID: []}))
        assert reply.rc == 0, str(reply)
        assert _veths(net) == [rb.obj["interfaces"][1]["name"]]  # B's pod is still on the bridge
        assert _reservations(other, other.conf()["name"]) == [rb.address.split("/")[0]]
        assert rb.address.split("/")[0] in other.in_ns(b, "ip", "-4", "addr", "show", "eth0").stdout
    finally:
        for ns in other.namespaces:
            _run("ip", "netns", "del", ns)


def test_gc_goes_on_after_a_failure_and_reports_it(net):
    net.version = "1.1.0"
    net.add(net.netns(), net.cid(1))
    store = net.data_dir / net.conf()["name"]
    subprocess.run(["mv", str(store), str(store) + ".moved"], check=True)
    store.write_text("not a directory")  # the store cannot be opened now
    reply = net.call("GC", conf=net.conf(**{VALID: []}))
    assert reply.rc == 1 and reply.obj["code"] == 5, str(reply)  # the store's I/O error, reported
    assert _veths(net) == []  # and the veth was removed all the same


# -- ADD ----------------------------------------------------------------------------------------


def test_add_into_a_sandbox_with_a_default_route_fails_and_leaves_nothing(net):
    a = net.netns()
    made = [
        ["ip", "-n", a, "link", "add", "np1d0", "type", "veth", "peer", "name", "np1d1"],
        ["ip", "-n", a, "link", "set", "np1d0", "up"],
        ["ip", "-n", a, "addr", "add", "192.0.2.2/24", "dev", "np1d0"],
        ["ip", "-n", a, "route", "add", "default", "via", "192.0.2.1"],
    ]
    for argv in made:
        subprocess.run(argv, check=True)
    reply = net.call("ADD", a, net.cid(1))
    assert reply.rc == 1 and "route to 0.0.0.0/0 exists already" in reply.obj["msg"], str(reply)
    assert _veths(net) == [] and _reservations(net) == []
    assert "default via 192.0.2.1" in net.in_ns(a, "ip", "route").stdout  # theirs, untouched


def test_second_add_for_an_existing_interface_is_an_error(net):
    a = net.netns()
    first = net.add(a, net.cid(1))
    again = net.call("ADD", a, net.cid(1))
    assert again.rc == 1 and "eth0 already exists" in again.obj["msg"], str(again)
    assert _reservations(net) == [first.address.split("/")[0]] and len(_veths(net)) == 1


def test_add_as_second_plugin_keeps_the_reference_bridges_result(net, cni_exec, reference_plugins, tmp_path):
    """A chain whose first plugin (the reference bridge + host-local) made net1: nppnet's result
    is that prevResult with its own interfaces, address and route appended."""
    ns = net.netns()
    env = {
        "CNI_CONTAINERID": net.cid(1),
        "CNI_NETNS": f"/var/run/netns/{ns}",
        "CNI_PATH": str(reference_plugins),
    }
    ref_bridge = f"np1rb{net.n}"
    ref = {
        "cniVersion": "1.0.0",
        "name": net.conf()["name"],
        "type": "bridge",
        "bridge": ref_bridge,
        "ipam": {"type": "host-local", "subnet": "10.201.255.0/28", "dataDir": str(tmp_path / "hl")},
    }
    try:
        first = cni_exec(reference_plugins / "bridge", "ADD", ref, CNI_IFNAME="net1", **env)
        assert first.rc == 0, str(first)
        prev = first.obj
        reply = cni_exec(net.exe, "ADD", net.conf(prevResult=prev), CNI_IFNAME="eth0", **env)
        assert reply.rc == 0, str(reply)
        got = reply.obj
        shift = len(prev["interfaces"])
        assert got["interfaces"][:shift] == prev["interfaces"]
        assert got["ips"][: len(prev["ips"])] == prev["ips"]
        mine = got["ips"][len(prev["ips"]) :]
        assert [ip["address"] for ip in mine] == [f"10.201.{net.n}.2/24"]
        assert got["interfaces"][mine[0]["interface"]]["name"] == "eth0"
        assert got["routes"][-1] == {"dst": "0.0.0.0/0", "gw": f"10.201.{net.n}.1"}
        check = cni_exec(net.exe, "CHECK", net.conf(prevResult=got), CNI_IFNAME="eth0", **env)
        assert check.rc == 0, str(check)
    finally:
        cni_exec(net.exe, "DEL", net.conf(), CNI_IFNAME="eth0", **env)
        cni_exec(reference_plugins / "bridge", "DEL", ref, CNI_IFNAME="net1", **env)
        _run("ip", "link", "del", ref_bridge)


def test_failing_second_plugin_leaves_nothing_after_the_runtimes_del(net, cni_exec, reference_plugins):
    ns = net.netns()
    env = {
        "CNI_CONTAINERID": net.cid(1),
        "CNI_NETNS": f"/var/run/netns/{ns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(reference_plugins),
    }
    tuning = {"cniVersion": "1.0.0", "name": net.conf()["name"], "type": "tuning"}
    tuning["sysctl"] = {"net.ipv4.conf.eth0.no_such_knob": "1"}
    first = cni_exec(net.exe, "ADD", net.conf(), **env)
    assert first.rc == 0, str(first)
    second = cni_exec(reference_plugins / "tuning", "ADD", dict(tuning, prevResult=first.obj), **env)
    assert second.rc != 0, str(second)
    # the runtime deletes the whole chain, last plugin first
    assert cni_exec(reference_plugins / "tuning", "DEL", tuning, **env).rc == 0
    assert cni_exec(net.exe, "DEL", net.conf(), **env).rc == 0
    assert _veths(net) == [] and _reservations(net) == []
    assert net.in_ns(ns, "ip", "-o", "link", "show", "eth0").returncode != 0
    assert "inet 10.201" not in net.in_ns(ns, "ip", "-4", "addr").stdout


# -- CHECK --------------------------------------------------------------------------------------


def test_check_requires_a_well_formed_prev_result(net):
    a = net.netns()
    result = net.add(a, net.cid(1)).obj
    missing = net.call("CHECK", a, net.cid(1))
    assert missing.rc == 1 and missing.obj["code"] == 7 and "prevResult" in missing.obj["msg"], str(missing)
    for bad in (
        dict(result, ips=None),
        dict(result, ips="10.0.0.1/24"),
        dict(result, ips=[{"address": 5}]),
        dict(result, interfaces=[{"name": 1}]),
        dict(result, routes=[{"dst": "nowhere"}]),
        dict(result, ips=[dict(result["ips"][0], interface="2")]),
        "a string",
    ):
        reply = net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=bad))
        assert reply.rc == 1 and reply.obj["code"] == 7, f"{bad!r}: {reply}"
    assert net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=result)).rc == 0


def test_check_fails_on_a_changed_mac_or_a_removed_route(net):
    a = net.netns()
    result = net.add(a, net.cid(1)).obj
    conf = net.conf(prevResult=result)
    subprocess.run(["ip", "-n", a, "link", "set", "eth0", "address", "0a:58:00:00:00:99"], check=True)
    reply = net.call("CHECK", a, net.cid(1), conf=conf)
    assert reply.rc == 1 and reply.obj["code"] >= 100 and "MAC" in reply.obj["msg"], str(reply)
    subprocess.run(
        ["ip", "-n", a, "link", "set", "eth0", "address", result["interfaces"][2]["mac"]], check=True
    )
    assert net.call("CHECK", a, net.cid(1), conf=conf).rc == 0
    # a route a later plugin of the chain added is checked as well, once listed
    subprocess.run(["ip", "-n", a, "route", "add", "192.0.2.0/24", "via", f"10.201.{net.n}.1"], check=True)
    extra = dict(result, routes=result["routes"] + [{"dst": "192.0.2.0/24", "gw": f"10.201.{net.n}.1"}])
    assert net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=extra)).rc == 0
    subprocess.run(["ip", "-n", a, "route", "del", "192.0.2.0/24"], check=True)
    reply = net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=extra))
    assert reply.rc == 1 and reply.obj["code"] >= 100 and "192.0.2.0/24" in reply.obj["msg"], str(reply)


# -- IPAM delegation ----------------------------------------------------------------------------


def test_ipam_host_local_hands_out_the_addresses_and_del_releases_them(net, reference_plugins, tmp_path):
    hl_dir = tmp_path / "host-local"
    net.extra = {
        "subnet": None,
        "ipam": {
            "type": "host-local",
            "subnet": f"10.201.{net.n}.0/24",
            "rangeStart": f"10.201.{net.n}.50",
            "dataDir": str(hl_dir),
        },
    }
    env = {"CNI_PATH": f"::relative:{reference_plugins}"}  # empty and relative entries are skipped
    a, b = net.netns(), net.netns()
    ra, rb = net.add(a, net.cid(1), **env), net.add(b, net.cid(2), **env)
    assert [ra.address, rb.address] == [f"10.201.{net.n}.50/24", f"10.201.{net.n}.51/24"]
    held = hl_dir / net.conf()["name"]
    assert sorted(p.name for p in held.iterdir() if p.name.startswith("10.")) == [
        f"10.201.{net.n}.50",
        f"10.201.{net.n}.51",
    ]
    assert net.in_ns(a, "ping", "-c1", "-W2", f"10.201.{net.n}.51").returncode == 0
    assert net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=ra.obj), **env).rc == 0
    assert not (net.data_dir / net.conf()["name"]).exists()  # nppnet's own store is not used
    for ns, i in ((a, 1), (b, 2)):
        reply = net.call("DEL", ns, net.cid(i), **env)
        assert reply.rc == 0, str(reply)
    assert [p.name for p in held.iterdir() if p.name.startswith("10.")] == []
    assert _veths(net) == []
    gone = net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=ra.obj), **env)
    assert gone.rc == 1 and gone.obj["code"] == 3, str(gone)  # host-local has no address, no veth
    missing = net.call("ADD", net.netns(), net.cid(3), CNI_PATH="/nonexistent")
    assert missing.rc == 1 and "host-local" in missing.obj["msg"], str(missing)


# -- firewall and hairpin -----------------------------------------------------------------------


def test_forward_rules_are_narrow_and_pods_still_talk_across_forward_drop(net, tmp_path, forward_drop):
    net.extra = {"clusterCIDR": "10.201.0.0/16", "ipMasq": True}
    other = Net(exe=net.exe, tmp=tmp_path / "node2", n=(net.n % 240) + 1)  # another node's bridge
    other.extra = dict(net.extra)
    try:
        a, b, c = net.netns(), net.netns(), other.netns()
        ra, rb, rc = net.add(a, net.cid(1)), net.add(b, net.cid(2)), other.add(c, other.cid(3))
        saved = iptables_save("-t", "filter")
        mine = [line for line in saved.splitlines() if f"nppnet:{net.bridge}" in line]
        subnet, tag = f"10.201.{net.n}.0/24", f'-m comment --comment "nppnet:{net.bridge}"'
        assert sorted(mine) == sorted(
            [
                f"-A NPPNET-FORWARD -d {subnet} {tag} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                f"-A NPPNET-FORWARD -s {subnet} {tag} -j ACCEPT",
                f"-A NPPNET-FORWARD -s 10.201.0.0/16 -d {subnet} {tag} -j ACCEPT",
            ]
        )
        forward = [line for line in saved.splitlines() if line.startswith("-A FORWARD ")]
        assert forward[-1] == "-A FORWARD -j NPPNET-FORWARD"  # after Docker's and anyone else's
        for ns, to in ((a, rb), (b, ra), (a, rc), (c, ra)):  # same bridge, and the other "node"
            assert net.in_ns(ns, "ping", "-c1", "-W2", to.address.split("/")[0]).returncode == 0, (ns, to)
        # out: a network outside the cluster sees the pods masqueraded; a new connection from there
        # toward a pod is not accepted (it was, with the old "-d SUBNET -j ACCEPT")
        outside = net.outside("198.51.100", route_to="10.201.0.0/16")
        assert net.in_ns(a, "ping", "-c1", "-W2", "198.51.100.2").returncode == 0
        assert net.in_ns(outside, "ping", "-c1", "-W1", ra.address.split("/")[0]).returncode != 0
    finally:
        other.cleanup()


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(1)
s.settimeout(5)
try:
    c, _ = s.accept()
    c.sendall(b"same pod")
    c.close()
except OSError:
    pass
"""

CLIENT = """
import socket, sys
try:
    print(socket.create_connection(("10.201.250.1", 80), timeout=3).recv(20).decode())
except OSError as err:
    print(err)
"""


@pytest.fixture
def bridge_netfilter():
    """br_netfilter loaded and bridge-nf-call-iptables=1 (what kube-proxy needs of a bridge CNI)."""
    knob = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not knob.exists():
        _run("modprobe", "br_netfilter")
    require(knob.exists(), "the br_netfilter module (modprobe br_netfilter)")
    old = knob.read_text().strip()
    knob.write_text("1")
    yield
    knob.write_text(old)


def _hairpin(net: Net, ns: str, ip: str) -> str:
    """A pod connecting to a virtual IP that a DNAT rule (as kube-proxy writes them, with the
    hairpin masquerade of kube-proxy's KUBE-MARK-MASQ) sends back to the same pod."""
    rules = [
        ("PREROUTING", ["-d", "10.201.250.1/32", "-p", "tcp", "--dport", "80", "-j", "DNAT"]),
        ("POSTROUTING", ["-s", f"{ip}/32", "-d", f"{ip}/32", "-j", "MASQUERADE"]),
    ]
    rules[0][1].extend(["--to-destination", f"{ip}:8080"])
    for chain, rule in rules:
        subprocess.run(["iptables", "-t", "nat", "-I", chain, "1", *rule], check=True)
    try:
        net.in_ns(ns, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", SERVER])
        time.sleep(0.3)
        out = net.in_ns(ns, "python3", "-c", CLIENT).stdout.strip()
        server.kill()
        server.wait()
        return out
    finally:
        for chain, rule in rules:
            subprocess.run(["iptables", "-t", "nat", "-D", chain, *rule], capture_output=True)


def test_hairpin_lets_a_pod_reach_itself_through_a_service_dnat(net, forward_drop, bridge_netfilter):
    a = net.netns()
    reply = net.add(a, net.cid(1))
    veth = reply.obj["interfaces"][1]["name"]
    details = _run("ip", "-d", "link", "show", veth).stdout
    assert "hairpin on" in details and f"alias nppnet:np1net{net.n}:{net.cid(1)}:eth0" in details
    assert _hairpin(net, a, reply.address.split("/")[0]) == "same pod"
    # hairpinMode false leaves the port as the kernel makes it, and the same connection fails
    b = net.netns()
    off = net.add(b, net.cid(2), conf=net.conf(hairpinMode=False))
    assert "hairpin off" in _run("ip", "-d", "link", "show", off.obj["interfaces"][1]["name"]).stdout
    assert _hairpin(net, b, off.address.split("/")[0]) != "same pod"


# -- undo ---------------------------------------------------------------------------------------


def test_a_failed_undo_is_added_to_the_error_never_instead_of_it():
    from nppctl.plugin.errors import CNIError
    from nppctl.plugin.nppnet import _undone

    done = []

    def broken():
        raise OSError(16, "Device or resource busy")

    cause = CNIError(100, "a route to 0.0.0.0/0 exists already")
    err = _undone(cause, [("releasing 10.0.0.2", lambda: done.append(1)), ("deleting veth0", broken)])
    assert err.msg == "a route to 0.0.0.0/0 exists already" and err.code == 100
    assert "undoing (deleting veth0) failed too" in err.details and done == [1]  # every step ran
    wrapped = _undone(KeyError("x"), [("deleting veth0", broken)])
    assert wrapped.code == 100 and "KeyError" in wrapped.msg and "deleting veth0" in wrapped.details


def test_iptables_is_never_found_through_an_empty_or_relative_path_entry(tmp_path, monkeypatch):
    from nppctl.plugin import firewall

    planted = tmp_path / "iptables-save"
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    for path in ("", ":", ".", f"relative:{tmp_path.name}:"):
        monkeypatch.setenv("PATH", path)
        try:
            found = firewall._tool("iptables-save")
        except firewall.FirewallError:
            found = None
        assert found is None or (found.startswith("/") and found != str(planted)), (path, found)
