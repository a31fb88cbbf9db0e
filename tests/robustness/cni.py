"""nppnet networks of the robustness suite, driven through tests/harness.py as a runtime drives them.

Names on the machine: netns np2-<pid>-*, bridges np2br<N>, subnets 10.202.<N>.0/24.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import Reply, call_env, collect, remove_rules, run, spawn

NETNS_PREFIX = f"np2-{os.getpid()}"
CID_PREFIX = f"np2c{os.getpid()}"  # ADD pins /var/run/netns/<containerID>: keep those ours too


@dataclass
class Net:
    """One nppnet network under test: its bridge, subnet, store and log, and the namespaces made."""

    exe: Path
    work: Path
    index: int  # the N of np2br<N> and 10.202.<N>.0/24
    prefix: int = 24
    extra: dict = field(default_factory=dict)
    made_netns: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"np2br{self.index}"

    @property
    def subnet(self) -> str:
        return f"10.202.{self.index}.0/{self.prefix}"

    @property
    def name(self) -> str:
        return f"np2net{self.index}"

    @property
    def data_dir(self) -> Path:
        return self.work / "data"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.work / "nppnet.log"

    def conf(self, version: str = "1.0.0", **overrides) -> dict:
        conf = {
            "cniVersion": version,
            "name": self.name,
            "type": "nppnet",
            "subnet": self.subnet,
            "bridge": self.bridge,
            "ipMasq": False,
            "dataDir": str(self.data_dir),
            "logFile": str(self.log_file),
        }
        conf.update(self.extra)
        conf.update(overrides)
        return {k: v for k, v in conf.items() if v is not None}

    def cid(self, tag: str) -> str:
        """A container ID of this test run (the plugin names a /var/run/netns entry after it)."""
        return f"{CID_PREFIX}n{self.index}-{tag}"

    # -- namespaces ----------------------------------------------------------------------------

    def netns(self, count: int, tag: str = "c") -> list[str]:
        """Create count namespaces (one `ip -batch`) and return their /var/run/netns paths."""
        names = [f"{NETNS_PREFIX}-{self.index}{tag}{len(self.made_netns) + i}" for i in range(count)]
        batch = "".join(f"netns add {n}\n" for n in names)
        subprocess.run(["ip", "-batch", "-"], input=batch, text=True, check=True, capture_output=True)
        self.made_netns.extend(names)
        return [f"/var/run/netns/{n}" for n in names]

    def cleanup(self) -> None:
        pins = [n for n in os.listdir("/var/run/netns") if n.startswith(f"{CID_PREFIX}n{self.index}-")]
        names = self.made_netns + pins
        if names:
            batch = "".join(f"netns del {n}\n" for n in names)
            subprocess.run(["ip", "-force", "-batch", "-"], input=batch, text=True, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        remove_rules(self.bridge)

    # -- calls ---------------------------------------------------------------------------------

    def stdin(self, conf) -> bytes:
        return conf if isinstance(conf, bytes) else json.dumps(conf or self.conf()).encode()

    def run(
        self, command: str, cid: str = "", netns: str = "", ifname: str = "eth0", conf=None, **env
    ) -> Reply:
        return run([self.exe], call_env(command, cid, netns, ifname, **env), self.stdin(conf))

    def spawn(
        self, command: str, cid: str, netns: str = "", ifname: str = "eth0", conf=None
    ) -> subprocess.Popen:
        return spawn(self.exe, call_env(command, cid, netns, ifname), self.stdin(conf))

    def parallel(self, calls: list[tuple]) -> list[Reply]:
        """Start every (command, cid, netns) at once, then collect the replies in order."""
        started = time.perf_counter()
        return collect([self.spawn(*c) for c in calls], started)

    # -- state ---------------------------------------------------------------------------------

    def reservations(self) -> dict[str, tuple[str, str]]:
        """address -> (container ID, ifname), read straight from the store's files."""
        found = {}
        if not self.store_dir.is_dir():
            return found
        for f in self.store_dir.iterdir():
            parts = f.name.split(".")
            if len(parts) == 4 and all(p.isdigit() for p in parts):
                cid, _, ifname = f.read_bytes().decode().partition("\r\n")
                found[f.name] = (cid, ifname)
        return found

    def host_veths(self) -> list[str]:
        out = subprocess.run(
            ["ip", "-o", "link", "show", "master", self.bridge], capture_output=True, text=True
        )
        return [line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if line.strip()]


def netns_address(netns_path: str, ifname: str = "eth0") -> str | None:
    """The IPv4 address of ifname inside the namespace, or None."""
    name = os.path.basename(netns_path)
    out = subprocess.run(
        ["ip", "-n", name, "-4", "-o", "addr", "show", "dev", ifname], capture_output=True, text=True
    )
    for line in out.stdout.splitlines():
        words = line.split()
        if "inet" in words:
            return words[words.index("inet") + 1].split("/")[0]
    return None


def netns_links(netns_path: str) -> list[str]:
    """Names of the links inside the namespace."""
    out = subprocess.run(
        ["ip", "-n", os.path.basename(netns_path), "-o", "link", "show"], capture_output=True, text=True
    )
    return [line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if line.strip()]
