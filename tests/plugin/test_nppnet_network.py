"""nppnet on real namespaces, links and iptables: what pods get and keep."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def _ping(net, ns: str, address: str) -> bool:
    return net.in_ns(ns, "ping", "-c", "1", "-W", "2", address.split("/")[0]).returncode == 0


def test_two_pods_ping_each_other_through_forward_drop(net, forward_drop):
    assert subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout.startswith(
        "-P FORWARD DROP"
    )
    a, b = net.netns(), net.netns()
    ra, rb = net.add(a, net.cid(1)), net.add(b, net.cid(2))
    assert ra.address == f"10.201.{net.n}.2/24" and rb.address == f"10.201.{net.n}.3/24"
    assert _ping(net, a, rb.address) and _ping(net, b, ra.address)
    # inside: the interface, its address and the default route via the gateway
    shown = net.in_ns(a, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"10.201.{net.n}.2/24" in shown
    assert f"default via 10.201.{net.n}.1 dev eth0" in net.in_ns(a, "ip", "route").stdout
    # outside: the bridge holds the gateway, both host veths are on it, the rules are in place
    assert (
        f"10.201.{net.n}.1/24"
        in subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", net.bridge], capture_output=True, text=True
        ).stdout
    )
    assert net.ports().count("veth") == 2
    saved = iptables_save()
    tag = f'-m comment --comment "nppnet:{net.bridge}"'
    assert f"-A NPPNET-FORWARD -s 10.201.{net.n}.0/24 {tag} -j ACCEPT" in saved
    assert f"-A NPPNET-POSTROUTING -s 10.201.{net.n}.0/24 ! -d 10.201.{net.n}.0/24" in saved
    # rules are added once: a third pod on the existing bridge leaves them as they were
    c = net.netns()
    net.add(c, net.cid(3))
    assert iptables_save().count(f"nppnet:{net.bridge}") == saved.count(f"nppnet:{net.bridge}")


def test_firewall_rules_come_back_when_marker_is_stale(net, forward_drop):
    a = net.netns()
    net.add(a, net.cid(1))
    from nppctl.plugin import firewall

    firewall.remove(str(net.data_dir), net.bridge)  # rules gone (as after a reboot), marker gone
    b = net.netns()
    rb = net.add(b, net.cid(2))
    assert _ping(net, a, rb.address)


def test_masquerade_lets_pods_reach_a_network_without_a_route_back(net, forward_drop):
    net.outside("10.201.254")
    pod = net.netns()
    net.add(pod, net.cid(1))  # ipMasq true, clusterCIDR = the subnet
    # the outside namespace has no route to the pod subnet: only masqueraded pings come back
    assert _ping(net, pod, "10.201.254.2")


def test_del_then_add_reuses_addresses_and_repeats_are_safe(net):
    a = net.netns()
    first = net.add(a, net.cid(1)).address
    again = net.call("ADD", a, net.cid(1))  # the spec: an interface that exists is an error
    assert again.rc == 1 and "eth0 already exists" in again.obj["msg"], str(again)
    assert net.ports().count("veth") == 1  # and the first attachment is left as it was
    assert first in net.in_ns(a, "ip", "-4", "addr", "show", "eth0").stdout
    assert [p.name for p in (net.data_dir / net.conf()["name"]).iterdir() if p.name.startswith("10.")] == [
        first.split("/")[0]
    ]
    for _ in range(2):  # DEL twice: both succeed
        reply = net.call("DEL", a, net.cid(1))
        assert reply.rc == 0 and reply.stdout == "", str(reply)
    assert "veth" not in net.ports()
    assert net.in_ns(a, "ip", "link", "show", "eth0").returncode != 0
    second = net.add(a, net.cid(2)).address  # next free after the last reserved, as host-local
    assert second != first
    net.call("DEL", a, net.cid(2))
    assert net.add(a, net.cid(3)).address in (first, f"10.201.{net.n}.4/24")


def test_del_succeeds_when_namespace_and_veth_are_gone(net):
    a = net.netns()
    net.add(a, net.cid(1))
    subprocess.run(["ip", "netns", "del", a], check=True)
    net.namespaces.remove(a)
    time.sleep(0.1)
    reply = net.call("DEL", a, net.cid(1))
    assert reply.rc == 0, str(reply)
    reply = net.call("DEL", "", net.cid(1))  # no CNI_NETNS at all
    assert reply.rc == 0, str(reply)
    reservations = [p for p in (net.data_dir / net.conf()["name"]).iterdir() if p.name.startswith("10.")]
    assert reservations == []


def test_netns_given_as_proc_path_is_pinned_for_ip_netns_and_unpinned_on_del(net):
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        time.sleep(0.2)
        path = f"/proc/{holder.pid}/ns/net"
        for _ in range(20):  # unshare has exec'd sleep inside the new namespace
            if os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino:
                break
            time.sleep(0.05)
        reply = net.add(path, net.cid(1))
        assert reply.obj["interfaces"][2]["sandbox"] == path
        pinned = Path("/var/run/netns") / net.cid(1)
        assert pinned.exists() and os.stat(pinned).st_ino == os.stat(path).st_ino
        assert net.cid(1) in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert net.call("DEL", path, net.cid(1)).rc == 0
        assert not pinned.exists()
        # GC (1.1.0) removes the pin of an attachment the runtime no longer lists
        net.version = "1.1.0"
        net.add(path, net.cid(2))
        assert (Path("/var/run/netns") / net.cid(2)).exists()
        assert net.call("GC", conf=net.conf(**{"cni.dev/valid-attachments": []})).rc == 0
        assert not (Path("/var/run/netns") / net.cid(2)).exists()
        assert "veth" not in net.ports()
    finally:
        holder.kill()
        holder.wait()


def test_netns_under_var_run_netns_is_not_pinned_again(net):
    a = net.netns()
    net.add(a, net.cid(1))
    assert not (Path("/var/run/netns") / net.cid(1)).exists()


def test_mtu_and_course_subnet_keys(net):
    net.extra = {"mtu": 1400, "subnet": None, "subnet_network": "10.201", "subnet_node": str(net.n)}
    net.version = "1.1.0"
    a = net.netns()
    reply = net.add(a, net.cid(1))
    assert reply.address == f"10.201.{net.n}.2/24"
    assert [i.get("mtu") for i in reply.obj["interfaces"][1:]] == [1400, 1400]
    assert "mtu 1400" in net.in_ns(a, "ip", "link", "show", "eth0").stdout


def test_log_has_one_line_per_call(net):
    a = net.netns()
    net.add(a, net.cid(1), CNI_ARGS="K8S_POD_NAME=web;K8S_POD_NAMESPACE=default")
    net.call("DEL", a, net.cid(1))
    lines = net.log_file.read_text().splitlines()
    assert len(lines) == 2
    add, dele = lines
    for text in (
        f'ADD container="{net.cid(1)}"',
        f'netns="/var/run/netns/{a}"',
        'ifname="eth0"',
        'args="K8S_POD_NAME=web;K8S_POD_NAMESPACE=default"',
        f'outcome="ok 10.201.{net.n}.2/24"',
        "duration_ms=",
        f'"subnet": "10.201.{net.n}.0/24"',
    ):
        assert text in add
    assert " DEL " in dele and 'outcome="ok"' in dele


def test_failed_add_removes_what_it_created(net):
    a = net.netns()
    subprocess.run(
        ["ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "np1p0"], check=True
    )  # the name is taken
    reply = net.call("ADD", a, net.cid(1))
    assert reply.rc == 1 and "eth0" in reply.obj["msg"], str(reply)
    assert "veth" not in net.ports()
    store = net.data_dir / net.conf()["name"]  # refused before anything was reserved
    assert not store.exists() or [p.name for p in store.iterdir() if p.name.startswith(("10.", "a."))] == []
    # a half-made attachment (host veth left by a killed call) is replaced by the next ADD
    subprocess.run(["ip", "-n", a, "link", "del", "eth0"], check=True)
    first = net.add(a, net.cid(1))
    host_veth = first.obj["interfaces"][1]["name"]
    subprocess.run(["ip", "-n", a, "link", "set", "eth0", "name", "np1gone"], check=True)
    again = net.add(a, net.cid(1))
    assert again.address == first.address and again.obj["interfaces"][1]["name"] == host_veth
    assert net.in_ns(a, "ip", "-4", "addr", "show", "eth0").stdout.count("inet ") == 1
