"""nppnet as the first plugin of a conflist, followed by the reference tuning, portmap and
bandwidth plugins (containernetworking-plugins speak up to CNI 1.0.0), driven as a runtime does:
each plugin gets the previous one's result as prevResult; DEL runs the chain backwards."""

from __future__ import annotations

import subprocess


def _conflist(net, port: int) -> list[dict]:
    return [
        net.conf(),
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}},
        {
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]},
        },
        {
            "type": "bandwidth",
            "capabilities": {"bandwidth": True},
            "runtimeConfig": {
                "bandwidth": {
                    "ingressRate": 8_000_000,
                    "ingressBurst": 1_000_000,
                    "egressRate": 8_000_000,
                    "egressBurst": 1_000_000,
                }
            },
        },
    ]


def test_chain_with_reference_tuning_portmap_bandwidth(net, cni_exec, reference_plugins, forward_drop):
    ns = net.netns()
    cid = net.cid(1)
    port = 18000 + net.n
    env = {
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{ns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(reference_plugins),
    }
    plugins = _conflist(net, port)
    exes = [net.exe] + [reference_plugins / p["type"] for p in plugins[1:]]
    results = []
    prev = None
    try:
        for exe, plugin in zip(exes, plugins, strict=True):
            conf = dict(plugin, cniVersion="1.0.0", name=net.conf()["name"])
            if prev is not None:
                conf["prevResult"] = prev
            reply = cni_exec(exe, "ADD", conf, **env)
            assert reply.rc == 0, f"{exe.name}: {reply}"
            prev = reply.obj
            results.append(prev)
        # every reference plugin passed nppnet's result along
        assert prev["ips"][0]["address"] == f"10.201.{net.n}.2/24"
        assert [i["name"] for i in prev["interfaces"]][:3] == [i["name"] for i in results[0]["interfaces"]]
        # and did its job on top of it
        sysctl = net.in_ns(ns, "sysctl", "-n", "net.ipv4.conf.eth0.accept_redirects").stdout.strip()
        assert sysctl == "0"
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        assert f"--dport {port}" in nat and f"10.201.{net.n}.2:80" in nat
        host_veth = results[0]["interfaces"][1]["name"]
        qdisc = subprocess.run(
            ["tc", "qdisc", "show", "dev", host_veth], capture_output=True, text=True
        ).stdout
        assert "tbf" in qdisc
        # CHECK through the chain (0.4.0+): nppnet verifies against the final result
        check = cni_exec(net.exe, "CHECK", dict(net.conf(), prevResult=prev), **env)
        assert check.rc == 0, str(check)
    finally:
        for exe, plugin in reversed(list(zip(exes, plugins, strict=True))):
            conf = dict(plugin, cniVersion="1.0.0", name=net.conf()["name"])
            if prev is not None:
                conf["prevResult"] = prev
            reply = cni_exec(exe, "DEL", conf, **env)
            assert reply.rc == 0, f"DEL {exe.name}: {reply}"
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert f"--dport {port}" not in nat
    assert "veth" not in net.ports()
