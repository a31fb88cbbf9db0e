"""Fixtures for the nppnet plugin tests: disposable networks of the built executables (tests/conftest.py's
`plugins`), called through tests/harness.py.

Names on the machine: netns np1-<pid>-<n>, bridges np1br<n>, subnets 10.201.<n>.0/24, container
IDs np1c<pid>x<n> (ADD may pin /var/run/netns/<containerID>). Everything is removed afterwards.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import Reply, exec_plugin, remove_rules

PID = os.getpid()
_serial = itertools.count(1)


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True)


def iptables_save(*args: str) -> str:
    """`iptables-save` with nppnet's rule comments shortened to their bridge part: "nppnet:BR"
    (the digests of network and rule are firewall.py's business)."""
    text = _run("iptables-save", *args).stdout
    return re.sub(r'--comment "(nppnet:[^ "]+) [0-9a-f]{8}:[0-9a-f]{8}"', r'--comment "\1"', text)


@dataclass
class Net:
    """One nppnet network under test and the pods (netns) made for it."""

    exe: Path
    tmp: Path
    n: int
    version: str = "1.0.0"
    extra: dict = field(default_factory=dict)
    namespaces: list = field(default_factory=list)
    host_links: list = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"np1br{self.n}"

    @property
    def subnet(self) -> str:
        return f"10.201.{self.n}.0/24"

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def log_file(self) -> Path:
        return self.tmp / "nppnet.log"

    def conf(self, **override) -> dict:
        conf = {
            "cniVersion": self.version,
            "name": f"np1net{self.n}",
            "type": "nppnet",
            "bridge": self.bridge,
            "subnet": self.subnet,
            "ipMasq": True,
            "dataDir": str(self.data_dir),
            "logFile": str(self.log_file),
        }
        conf.update(self.extra)
        conf.update(override)
        return {k: v for k, v in conf.items() if v is not None}

    def netns(self) -> str:
        name = f"np1-{PID}-{self.n}-{len(self.namespaces)}"
        made = _run("ip", "netns", "add", name)
        assert made.returncode == 0, made.stderr
        self.namespaces.append(name)
        return name

    def outside(self, prefix: str, route_to: str | None = None) -> str:
        """A namespace outside the cluster behind a veth from the host: PREFIX.1/30 on the host end,
        PREFIX.2/30 inside, a route to route_to (via the host) when given. Removed in cleanup."""
        ns = self.netns()
        host_end, out_end = f"np1o{self.n}h", f"np1o{self.n}o"
        self.host_links.append(host_end)
        argvs = [
            ["ip", "link", "add", host_end, "type", "veth", "peer", "name", out_end, "netns", ns],
            ["ip", "addr", "add", f"{prefix}.1/30", "dev", host_end],
            ["ip", "link", "set", host_end, "up"],
            ["ip", "-n", ns, "addr", "add", f"{prefix}.2/30", "dev", out_end],
            ["ip", "-n", ns, "link", "set", out_end, "up"],
        ]
        if route_to:
            argvs.append(["ip", "-n", ns, "route", "add", route_to, "via", f"{prefix}.1"])
        for argv in argvs:
            subprocess.run(argv, check=True)
        return ns

    def cid(self, i: int) -> str:
        return f"np1c{PID}x{self.n}x{i}"

    def call(self, command: str, ns: str | None = None, cid: str = "", ifname="eth0", conf=None, **env):
        netns = f"/var/run/netns/{ns}" if ns and not ns.startswith("/") else ns
        return exec_plugin(
            self.exe,
            command,
            self.conf() if conf is None else conf,
            CNI_CONTAINERID=cid,
            CNI_NETNS=netns,
            CNI_IFNAME=ifname,
            **env,
        )

    def add(self, ns: str, cid: str, **kw) -> Reply:
        reply = self.call("ADD", ns, cid, **kw)
        assert reply.rc == 0, str(reply)
        return reply

    def ports(self) -> str:
        """`ip -o link show master BRIDGE`: the links on the bridge."""
        return _run("ip", "-o", "link", "show", "master", self.bridge).stdout

    def in_ns(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", ns, *argv)

    def cleanup(self) -> None:
        for link in self.host_links:
            _run("ip", "link", "del", link)
        for ns in self.namespaces:
            _run("ip", "netns", "del", ns)
        for line in _run("ip", "-o", "link", "show", "master", self.bridge).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            _run("ip", "link", "del", name)
        _run("ip", "link", "del", self.bridge)
        remove_rules(self.bridge)
        for entry in Path("/var/run/netns").glob(f"np1c{PID}x{self.n}x*"):
            _run("umount", "-l", str(entry))
            entry.unlink(missing_ok=True)


@pytest.fixture
def net(root_netns, plugins, tmp_path):
    """A fresh network (own bridge, subnet, store and log); removed with its pods afterwards."""
    # 10.201.<n>.0/24 with n in 1..240, spread by PID so two sessions rarely meet (254 is the
    # masquerade test's "outside" network)
    made = Net(exe=plugins / "nppnet", tmp=tmp_path, n=1 + ((PID % 48) * 5 + next(_serial)) % 240)
    yield made
    made.cleanup()


@pytest.fixture(scope="session")
def cni_exec():
    """tests/harness.py's exec_plugin(exe, command, conf, **CNI_env) -> Reply."""
    return exec_plugin


@pytest.fixture
def forward_drop(root_netns):
    """Docker's situation: iptables FORWARD policy DROP with bridge netfilter on (set if missing)."""
    policy = _run("iptables", "-S", "FORWARD").stdout.splitlines()[0]
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    old_nf = bridge_nf.read_text().strip() if bridge_nf.exists() else None
    if policy != "-P FORWARD DROP":
        assert _run("iptables", "-P", "FORWARD", "DROP").returncode == 0
    if old_nf == "0":
        bridge_nf.write_text("1")
    yield
    if policy != "-P FORWARD DROP":
        _run("iptables", "-P", "FORWARD", policy.split()[-1])
    if old_nf == "0":
        bridge_nf.write_text("0")
