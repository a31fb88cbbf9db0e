"""nppnet on real namespaces, links and iptables: what pods get and keep."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.plugin.conftest import _run, iptables_save


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

    firewall.remove(net.bridge)  # rules gone, as after a reboot
    b = net.netns()
    rb = net.add(b, net.cid(2))
    assert _ping(net, a, rb.address)


def test_flushed_rules_come_back_at_the_next_add(net, forward_drop):
    """After `iptables -F` of nppnet's chains (cni0 still there), the next ADD restores the
    MASQUERADE and FORWARD rules: every ADD verifies them."""
    from nppctl.plugin import firewall

    a = net.netns()
    net.add(a, net.cid(1))
    conf = net.conf()
    rules = firewall.wanted_rules(net.bridge, net.subnet, net.subnet, True, conf["name"])
    assert firewall.missing(rules) == []
    for table, chain in (("nat", "NPPNET-POSTROUTING"), ("filter", "NPPNET-FORWARD")):
        assert subprocess.run(["iptables", "-w", "-t", table, "-F", chain]).returncode == 0
    assert len(firewall.missing(rules)) == 3
    b = net.netns()
    rb = net.add(b, net.cid(2))
    assert firewall.missing(rules) == []
    assert _ping(net, a, rb.address)
    # and a jump removed from FORWARD comes back too
    assert subprocess.run(["iptables", "-w", "-D", "FORWARD", "-j", "NPPNET-FORWARD"]).returncode == 0
    net.add(net.netns(), net.cid(3))
    assert firewall.missing(rules) == []


def test_rules_of_an_old_subnet_go_when_the_network_changes_subnet(net, tmp_path):
    """Reinstalled with another subnet, the network's old rules are removed at its next ADD; a
    second network on the same bridge keeps its own."""
    other_subnet = f"10.201.{(net.n % 240) + 1}.0/24"
    neighbour = net.conf(name=f"np1other{net.n}", subnet="10.202.99.0/24", dataDir=str(tmp_path / "o"))
    net.add(net.netns(), net.cid(1))
    net.add(net.netns(), "np1neighbour", conf=neighbour)
    assert net.call("DEL", net.namespaces[0], net.cid(1)).rc == 0
    moved = net.conf(subnet=other_subnet)
    net.add(net.netns(), net.cid(2), conf=moved)
    mine = [line for line in iptables_save().splitlines() if f"nppnet:{net.bridge}" in line]
    assert not [line for line in mine if net.subnet in line], mine
    assert any(f"-s {other_subnet} " in line for line in mine), mine
    assert any("-s 10.202.99.0/24 " in line for line in mine), mine  # the neighbour's stay
    assert net.call("DEL", net.namespaces[1], "np1neighbour", conf=neighbour).rc == 0


XTABLES_LOCKED_ADD = """
import json, os, subprocess, sys, time
exe, conf, tools = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.run(["mount", "-t", "tmpfs", "np1", "/run"], check=True)  # a private xtables lock
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "netns", "add", "np1pod"], check=True)
holder = subprocess.Popen(["flock", "/run/xtables.lock", "sleep", "2"])
time.sleep(0.5)
env = {"PATH": tools + ":/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD", "CNI_PATH": "/usr/lib/cni",
       "CNI_CONTAINERID": "np1locked", "CNI_NETNS": "/var/run/netns/np1pod", "CNI_IFNAME": "eth0"}
started = time.monotonic()
done = subprocess.run([exe], input=conf.encode(), env=env, capture_output=True)
took = time.monotonic() - started
holder.wait()
saved = subprocess.run([tools + "/iptables-save"], capture_output=True, text=True).stdout
print(json.dumps({"rc": done.returncode, "out": done.stdout.decode(), "took": took, "saved": saved}))
"""


def test_add_waits_for_the_xtables_lock(net, tmp_path):
    """iptables' legacy backend (kind nodes may use it): while another process holds the xtables
    lock, as kube-proxy often does, ADD waits for it and succeeds, asking for the wait itself
    (`-w`: an iptables older than 1.8.8 does not wait without it). Run in namespaces of its own:
    a private /run (the lock) and network (the legacy tables)."""
    import json

    from tests.conftest import require

    legacy = [Path(f"/usr/sbin/iptables-legacy{s}") for s in ("-save", "-restore")]
    require(all(p.exists() for p in legacy), "iptables' legacy backend (iptables-legacy-save, -restore)")
    tools, calls = tmp_path / "legacy", tmp_path / "calls"
    tools.mkdir()
    for path, name in zip(legacy, ("iptables-save", "iptables-restore"), strict=True):
        (tools / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexec {path} "$@"\n')
        (tools / name).chmod(0o755)
    conf = json.dumps(net.conf())
    done = subprocess.run(
        ["unshare", "--mount", "--net", "python3", "-c", XTABLES_LOCKED_ADD, str(net.exe), conf, str(tools)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["rc"] == 0, seen["out"]
    assert seen["took"] > 1.2, seen  # it waited for the holder (2 s from 0.5 s before the ADD)
    assert f"-A NPPNET-POSTROUTING -s {net.subnet}" in seen["saved"], seen["saved"]
    restores = [ln.split() for ln in calls.read_text().splitlines() if ln.startswith("iptables-restore")]
    assert restores and all("-w" in argv for argv in restores), restores


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


def _netns_holder() -> tuple[subprocess.Popen, str]:
    """A process in a network namespace of its own (as nerdctl's containers): it and /proc/PID/ns/net."""
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    time.sleep(0.2)
    path = f"/proc/{holder.pid}/ns/net"
    for _ in range(20):  # unshare has exec'd sleep inside the new namespace
        if os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino:
            break
        time.sleep(0.05)
    return holder, path


def test_a_proc_netns_dies_with_its_owner_and_takes_the_veth_along(net):
    """ADD never pins a namespace given as /proc/PID/ns/net: killing its owner ends it (the kernel
    removes the pod's interface, so the host veth goes too), and the runtime's DEL then succeeds
    and leaves nothing."""
    holder, path = _netns_holder()
    try:
        reply = net.add(path, net.cid(1))
        assert reply.obj["interfaces"][2]["sandbox"] == path
        veth = reply.obj["interfaces"][1]["name"]
        assert not (Path("/var/run/netns") / net.cid(1)).exists()
        assert net.cid(1) not in _run("ip", "netns", "list").stdout
    finally:
        holder.kill()
        holder.wait()
    for _ in range(50):  # the namespace is freed asynchronously
        if veth not in net.ports():
            break
        time.sleep(0.1)
    assert veth not in net.ports()
    assert net.call("DEL", path, net.cid(1)).rc == 0
    assert "veth" not in net.ports()
    store = net.data_dir / net.conf()["name"]
    assert not [p for p in store.iterdir() if p.name.startswith("10.")]


def test_del_and_gc_remove_a_pin_an_older_nppnet_made(net):
    """Pins of older nppnets (DATA_DIR/.pins marker, /var/run/netns/<containerID> bind mount):
    DEL removes its attachment's, GC those of attachments no longer listed."""
    holder, path = _netns_holder()
    net.version = "1.1.0"
    try:
        for i in (1, 2):
            net.add(path if i == 1 else net.netns(), net.cid(i))
            marker = net.data_dir / ".pins" / net.conf()["name"] / net.cid(i)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("eth0")
            assert subprocess.run(["ip", "netns", "attach", net.cid(i), str(holder.pid)]).returncode == 0
        assert net.call("DEL", path, net.cid(1)).rc == 0
        assert not (Path("/var/run/netns") / net.cid(1)).exists()
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
