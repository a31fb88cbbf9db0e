"""nppnet's CNI protocol: versions and result shapes, CHECK, GC, STATUS and every error path."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize("version", VERSIONS)
def test_result_shape_per_version(net, version):
    net.version = version
    a = net.netns()
    result = net.add(a, net.cid(1)).obj
    assert result["cniVersion"] == version
    assert [i["name"] for i in result["interfaces"]] == [net.bridge, result["interfaces"][1]["name"], "eth0"]
    assert result["interfaces"][2]["sandbox"] == f"/var/run/netns/{a}"
    assert result["interfaces"][2]["mac"] == f"0a:58:0a:c9:{net.n:02x}:02"
    ip = result["ips"][0]
    assert ip["address"] == f"10.201.{net.n}.2/24" and ip["gateway"] == f"10.201.{net.n}.1"
    assert ip["interface"] == 2
    assert ("version" in ip) == (version < "1.0.0")
    if "version" in ip:
        assert ip["version"] == "4"
    assert all(("mtu" in i) == (version == "1.1.0") for i in result["interfaces"])
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": f"10.201.{net.n}.1"}]


def test_version_command(net):
    for asked, answered in (("0.4.0", "0.4.0"), ("9.9.9", "1.1.0")):
        reply = net.call("VERSION", conf={"cniVersion": asked})
        assert reply.rc == 0 and reply.obj == {"cniVersion": answered, "supportedVersions": VERSIONS}
    assert net.call("VERSION", conf="").obj["supportedVersions"] == VERSIONS


def test_check_passes_then_catches_a_removed_address(net):
    a = net.netns()
    result = net.add(a, net.cid(1)).obj
    conf = net.conf(prevResult=result)
    assert net.call("CHECK", a, net.cid(1), conf=conf).rc == 0
    subprocess.run(["ip", "netns", "exec", a, "ip", "addr", "flush", "dev", "eth0"], check=True)
    reply = net.call("CHECK", a, net.cid(1), conf=conf)
    assert reply.rc == 1 and "lacks its address" in reply.obj["msg"], str(reply)
    # a prevResult that disagrees with the reservation, and an unknown container
    wrong = dict(result, ips=[dict(result["ips"][0], address="10.9.9.9/24")])
    assert "prevResult lists" in net.call("CHECK", a, net.cid(1), conf=net.conf(prevResult=wrong)).obj["msg"]
    assert net.call("CHECK", a, net.cid(9), conf=conf).obj["code"] == 3  # nothing of it exists


def test_check_catches_a_missing_route_and_needs_040(net):
    a = net.netns()
    conf = net.conf(prevResult=net.add(a, net.cid(1)).obj)
    subprocess.run(["ip", "netns", "exec", a, "ip", "route", "del", "default"], check=True)
    reply = net.call("CHECK", a, net.cid(1), conf=conf)
    assert reply.obj["code"] >= 100 and "no route to 0.0.0.0/0" in reply.obj["msg"], str(reply)
    old = net.call("CHECK", a, net.cid(1), conf=dict(conf, cniVersion="0.3.1")).obj
    assert old["code"] == 1


def test_gc_releases_what_is_not_valid(net):
    net.version = "1.1.0"
    a, b = net.netns(), net.netns()
    net.add(a, net.cid(1))
    net.add(b, net.cid(2))
    conf = net.conf(**{"cni.dev/valid-attachments": [{"containerID": net.cid(1), "ifname": "eth0"}]})
    reply = net.call("GC", conf=conf)
    assert reply.rc == 0 and reply.stdout == "", str(reply)
    store = net.data_dir / net.conf()["name"]
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("10.")) == [f"10.201.{net.n}.2"]
    assert net.ports().count("veth") == 1
    assert net.in_ns(b, "ip", "link", "show", "eth0").returncode != 0  # its veth pair is gone
    assert net.in_ns(a, "ping", "-c1", "-W1", f"10.201.{net.n}.1").returncode == 0
    assert net.call("GC", conf=net.conf(cniVersion="1.0.0")).obj["code"] == 1


def test_status(net):
    net.version = "1.1.0"
    assert net.call("STATUS").rc == 0
    small = net.conf(subnet=f"10.201.{net.n}.0/30")  # gateway .1, one pod address .2
    a = net.netns()
    assert net.call("ADD", a, net.cid(1), conf=small).rc == 0
    reply = net.call("STATUS", conf=small)
    assert reply.obj["code"] == 50 and "exhausted" in reply.obj["msg"]
    blocked = net.tmp / "file"
    blocked.write_text("")
    reply = net.call("STATUS", conf=net.conf(dataDir=str(blocked / "data")))
    assert reply.obj["code"] == 50, str(reply)


def test_exhausted_subnet_is_error_11_and_del_gives_the_address_back(net):
    small = net.conf(subnet=f"10.201.{net.n}.0/30")
    a, b = net.netns(), net.netns()
    assert net.call("ADD", a, net.cid(1), conf=small).rc == 0
    reply = net.call("ADD", b, net.cid(2), conf=small)
    assert reply.rc == 1 and reply.obj["code"] == 11 and "exhausted" in reply.obj["msg"]
    assert net.in_ns(b, "ip", "link", "show", "eth0").returncode != 0  # nothing left behind
    assert net.call("DEL", a, net.cid(1), conf=small).rc == 0
    assert net.call("ADD", b, net.cid(2), conf=small).rc == 0


def _error(reply) -> dict:
    assert reply.rc != 0, str(reply)
    assert "Traceback" not in reply.stdout + reply.stderr
    obj = reply.obj
    assert set(obj) == {"cniVersion", "code", "msg", "details"}
    return obj


BAD_ENV = [
    ({"CNI_IFNAME": "a" * 16}, "CNI_IFNAME"),
    ({"CNI_IFNAME": "a/b"}, "CNI_IFNAME"),
    ({"CNI_IFNAME": ".."}, "CNI_IFNAME"),
    ({"CNI_IFNAME": "eth 0"}, "CNI_IFNAME"),
    ({"CNI_IFNAME": ""}, "CNI_IFNAME"),
    ({"CNI_CONTAINERID": "../etc"}, "CNI_CONTAINERID"),
    ({"CNI_CONTAINERID": ""}, "CNI_CONTAINERID"),
    ({"CNI_NETNS": ""}, "CNI_NETNS"),
    ({"CNI_NETNS": "/etc/hostname"}, "not a network namespace"),
    ({"CNI_NETNS": "/nonexistent/np1"}, "CNI_NETNS"),
    ({"CNI_COMMAND": "FROB"}, "CNI_COMMAND"),
    ({"CNI_COMMAND": ""}, "CNI_COMMAND"),
]


@pytest.mark.parametrize(("env", "says"), BAD_ENV)
def test_bad_environment_is_error_4(net, cni_exec, env, says):
    a = net.netns()
    full = {"CNI_CONTAINERID": net.cid(1), "CNI_NETNS": f"/var/run/netns/{a}", "CNI_IFNAME": "eth0"}
    full.update(env)
    command = full.pop("CNI_COMMAND", "ADD")
    reply = cni_exec(net.exe, command, net.conf(), **full)
    obj = _error(reply)
    assert obj["code"] == 4 and says in obj["msg"], obj
    assert net.in_ns(a, "ip", "link", "show", "eth0").returncode != 0


BAD_CONF = [
    ({"subnet": "10.201.0.0/33"}, "subnet"),
    ({"subnet": None}, "subnet"),
    ({"subnet": 7}, "subnet"),
    ({"subnet": "10.201.1.0/31"}, "subnet"),
    ({"gateway": "10.9.9.9"}, "gateway"),
    ({"gateway": "x"}, "gateway"),
    ({"mtu": "1500"}, "mtu"),
    ({"mtu": 20}, "mtu"),
    ({"ipMasq": "yes"}, "ipMasq"),
    ({"bridge": "br/0"}, "bridge"),
    ({"bridge": "b" * 16}, "bridge"),
    ({"clusterCIDR": "10.0.0.0"}, "clusterCIDR"),
    ({"dataDir": "relative/dir"}, "dataDir"),
    ({"logFile": 5}, "logFile"),
    ({"name": None}, "name"),
    ({"name": "has space"}, "name"),
    ({"subnet": None, "subnet_network": "10.244.7", "subnet_node": "1"}, "subnet_network"),
]


@pytest.mark.parametrize(("override", "key"), BAD_CONF)
def test_invalid_config_is_error_7_naming_the_key(net, override, key):
    a = net.netns()
    obj = _error(net.call("ADD", a, net.cid(1), conf=net.conf(**override)))
    assert obj["code"] == 7 and key in obj["msg"], obj


def test_unknown_keys_are_ignored(net):
    a = net.netns()
    net.add(a, net.cid(1), conf=net.conf(isGateway=True, whatever={"x": 1}))


@pytest.mark.parametrize("stdin", [b"", b"{", b"[1, 2]", b"\xff\xfe", b"{} {}", b'{"a": NaN}', b"[" * 100000])
def test_undecodable_stdin_is_error_6(net, stdin):
    a = net.netns()
    obj = _error(net.call("ADD", a, net.cid(1), conf=stdin))
    assert obj["code"] == 6, obj


@pytest.mark.parametrize("version", ["0.2.0", "2.0.0", None, 1])
def test_unsupported_version_is_error_1(net, version):
    a = net.netns()
    obj = _error(net.call("ADD", a, net.cid(1), conf=net.conf(cniVersion=version)))
    assert obj["code"] == 1 and "supported versions" in obj["details"], obj


def test_errors_are_logged(net):
    net.call("ADD", "", net.cid(1))
    line = net.log_file.read_text().splitlines()[-1]
    assert 'outcome="error 4: CNI_NETNS is missing"' in line
    assert json.loads(line.split(" config=", 1)[1])["subnet"] == net.subnet


def test_check_reads_the_firewall_without_iptables_and_names_a_missing_rule(net, tmp_path):
    """CHECK verifies the firewall rules through nf_tables' netlink (as ADD does), spawning
    iptables-save only to name what is missing: with the rules in place no iptables runs (a PATH
    whose iptables-save fails proves it), and a deleted rule is reported by its line."""
    a = net.netns()
    conf = net.conf(prevResult=net.add(a, net.cid(1)).obj)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for tool in ("iptables-save", "iptables-restore", "iptables"):
        (fake / tool).write_text("#!/bin/sh\necho called >&2\nexit 1\n")
        (fake / tool).chmod(0o755)
    reply = net.call("CHECK", a, net.cid(1), conf=conf, PATH=f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin")
    assert reply.rc == 0, str(reply)
    subnet = f"10.201.{net.n}.0/24"
    listing = subprocess.run(["iptables", "-w", "-S", "NPPNET-FORWARD"], capture_output=True, text=True)
    [rule] = [x for x in listing.stdout.splitlines() if x.startswith(f"-A NPPNET-FORWARD -s {subnet} ")]
    subprocess.run(["iptables", "-w", "-D", *shlex.split(rule)[1:]], check=True)
    reply = net.call("CHECK", a, net.cid(1), conf=conf)
    assert reply.rc == 1 and "firewall rules missing" in reply.obj["msg"], str(reply)
    assert f"-s {subnet}" in reply.obj["msg"]
