"""The kindless provider: kind-shaped node containers with no Kubernetes in them.

nppctl makes the Docker network "kind" (a user-defined bridge, as kind makes it) and the node
containers itself, named and labelled as kind names them, so the node layer finds them the same
way. Each container runs only a sleeper (the image's entrypoint is replaced by ENTRYPOINT_SCRIPT,
which also starts nppctl's keeper once install put it in the node): no kubelet, no API server, no
pods -- `cni add` namespaces stand in for pods.

As kind does: the network is created with the MTU of Docker's default bridge network and an IPv6
ULA subnet derived from its name; $KIND_EXPERIMENTAL_DOCKER_NETWORK names another network to use;
nodes run with apparmor=unconfined and seccomp=unconfined (Docker's default profiles deny mounts
that `ip netns add` needs), tmpfs /run and /tmp; the entrypoint remounts /proc/sys read-write, as
it is in kind's privileged nodes.

Addition to the kind labels: io.nppctl.provider=docker on every container this provider makes
(LABEL_PROVIDER; the CLI skips asking for a Kubernetes API on such nodes). Also: node_names(),
network_name(), ula_subnet(), DockerProvider.ensure_network(), DockerProvider.remove_network_if_unused();
spec.mounts keys may be container names or short names ("worker2").
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import struct
from collections.abc import Callable

from nppctl.access.nodeimage import DEFAULT_IMAGE, base_image
from nppctl.access.providers.base import (
    KIND_NETWORK,
    LABEL_CLUSTER,
    LABEL_ROLE,
    ClusterSpec,
    kind_node_names,
    network_name,
)
from nppctl.access.throwaway import sigint_deferred
from nppctl.errors import NppctlError

LABEL_PROVIDER = "io.nppctl.provider"
MTU_OPTION = "com.docker.network.driver.mtu"
MOUNT_POINT = "/npp-temp"
CAPS = ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"]
SECURITY_OPT = ["apparmor=unconfined", "seccomp=unconfined"]  # as kind runs its nodes
# Pods route through the node: forwarding on in the node's namespace from the start.
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0"}
# Bridged replies pass conntrack (Services): settable only where the host has br_netfilter loaded.
BRIDGE_NF_SYSCTL = ("net.bridge.bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-iptables")
# The node's PID 1, a fixed script: starts the keeper once install has put it in the node, and exits
# at once on SIGTERM (`docker stop`/`restart` need not wait 10 s for a sleep that ignores it).
ENTRYPOINT_SCRIPT = (
    "trap 'exit 0' TERM INT; "
    # kind's nodes are privileged: /proc/sys is writable there (the reference portmap writes
    # route_localnet of the bridge); Docker mounts it read-only, CAP_SYS_ADMIN may remount it
    "mount -o remount,rw /proc/sys 2>/dev/null; "
    "if [ -x /usr/bin/python3 ] && [ -f {program} ]; then /usr/bin/python3 {program} keep '{{}}' & fi; "
    "sleep infinity & wait"
)


def ula_subnet(name: str, attempt: int = 0) -> str:
    """The IPv6 ULA /64 kind gives network NAME: fc00: then bytes 2..7 of SHA-1(name, attempt as
    little-endian int32). "kind" -> fc00:f853:ccd:e793::/64."""
    digest = hashlib.sha1(name.encode() + struct.pack("<i", attempt)).digest()
    return str(ipaddress.IPv6Network((b"\xfc\x00" + digest[2:8] + bytes(8), 64)))


def node_names(cluster: str, workers: int) -> list[tuple[str, str]]:
    """[(container name, role)] as kind names them: control-plane, worker, worker2, ..."""
    roles = ["control-plane"] + ["worker"] * workers
    return list(zip(kind_node_names(cluster, roles), roles, strict=True))


class DockerProvider:
    name = "docker"
    has_kubernetes = False

    def __init__(self, client=None):
        self._client = client
        self.network_made: str | None = None  # the network this object created, if any (see undo_network)
        self.progress: Callable[[str], None] | None = None  # the Provider interface's; create says nothing

    @property
    def client(self):
        if self._client is None:
            from nppctl.access.nodes import docker_client

            self._client = docker_client()
        return self._client

    # -- the Provider interface -------------------------------------------------------------
    def create(self, spec: ClusterSpec) -> None:
        """Network and node containers; what already runs is left as it is (idempotent)."""
        if spec.workers < 0:
            raise NppctlError(f"--workers must be 0 or more, not {spec.workers}")
        image = spec.image or DEFAULT_IMAGE
        base_image(image, self.client, lambda _text: None)  # pulled when missing (up did it already)
        network = self.ensure_network()
        for name, role in node_names(spec.name, spec.workers):
            self._ensure_node(spec, name, role, image, network)

    def delete(self, name: str) -> None:
        """Remove the cluster's containers, then the network if no other container uses it."""
        gone = set()
        for c in self._containers(name):
            c.remove(force=True, v=True)
            gone.add(c.id)
        self.remove_network_if_unused(gone)

    def exists(self, name: str) -> bool:
        return bool(self._containers(name))

    def kubeconfig(self, name: str) -> None:
        return None

    # -- helpers ------------------------------------------------------------------------------
    def _containers(self, cluster: str) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster}"})

    def ensure_network(self):
        """The user-defined bridge network "kind" (IPv4 + kind's IPv6 ULA when the engine allows)."""
        import docker
        from docker.types import IPAMConfig, IPAMPool

        name = network_name()
        nets = self.client.networks.list(names=[name])
        for net in nets:
            if net.name == name:
                return net
        opts = {"com.docker.network.bridge.enable_ip_masquerade": "true"}
        mtu = self.default_bridge_mtu()
        if mtu:
            opts[MTU_OPTION] = str(mtu)
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=ula_subnet(name))])
        for extra in ({"enable_ipv6": True, "ipam": ipam}, {}):
            # IPv6 is optional: an engine without it still gives kind's IPv4 network.
            try:
                with sigint_deferred():  # Ctrl-C: not before it is made and recorded (undo_network)
                    net = self.client.networks.create(name, driver="bridge", options=opts, **extra)
                    self.network_made = net.id
                return net
            except docker.errors.APIError as err:
                if "already exists" in str(err):  # made meanwhile by another nppctl/kind
                    return self.client.networks.get(name)
                if not extra:
                    raise NppctlError(
                        f"cannot create the Docker network '{name}': {err.explanation}"
                    ) from err
        raise AssertionError("unreachable")

    def undo_network(self) -> str | None:
        """Remove the network this object created unless a container is attached (also one named by
        $KIND_EXPERIMENTAL_DOCKER_NETWORK: this run made it). The network still there, or None."""
        import time

        import docker

        if self.network_made is None:
            return None
        deadline = time.monotonic() + 5.0
        while True:
            try:
                net = self.client.networks.get(self.network_made)
                if net.attrs.get("Containers") or time.monotonic() > deadline:
                    return net.name
                net.remove()
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError:
                time.sleep(0.2)  # "has active endpoints": a node just removed is still listed

    def default_bridge_mtu(self) -> int:
        """The MTU option of Docker's default network "bridge" (0: none set), as kind reads it."""
        import docker

        try:
            value = (self.client.networks.get("bridge").attrs.get("Options") or {}).get(MTU_OPTION, "")
        except docker.errors.APIError:
            return 0
        return int(value) if str(value).isdigit() else 0

    def remove_network_if_unused(self, gone: set[str] = frozenset(), wait: float = 5.0) -> bool:
        """Remove network "kind" unless a container is attached; True when removed. A network named by
        $KIND_EXPERIMENTAL_DOCKER_NETWORK is the user's: kept, as kind keeps it.

        `gone` are IDs of containers just removed: the engine may list their endpoints a moment
        longer, so while only those are attached it retries for up to `wait` seconds.
        """
        import time

        import docker

        if network_name() != KIND_NETWORK:
            return False
        deadline = time.monotonic() + wait
        while True:
            try:
                net = self.client.networks.get(network_name())
                attached = set(net.attrs.get("Containers") or {})
                if attached - gone:
                    return False  # another cluster's node
                if not attached:
                    net.remove()
                    return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError:
                pass  # "has active endpoints": a removed node's endpoint, or another cluster's
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def _mount_for(self, spec: ClusterSpec, name: str):
        short = name[len(spec.name) + 1 :]
        return spec.mounts.get(name) or spec.mounts.get(short)

    def _ensure_node(self, spec: ClusterSpec, name: str, role: str, image: str, network) -> None:
        import docker

        try:
            c = self.client.containers.get(name)
        except docker.errors.NotFound:
            c = None
        if c is not None:
            if c.labels.get(LABEL_CLUSTER) != spec.name:
                raise NppctlError(
                    f"a container named {name} exists but is not a node of cluster '{spec.name}': "
                    f"remove it (`docker rm -f {name}`) or pick another --name"
                )
            if c.status != "running":
                c.start()
            return
        from nppctl.nodeside.keeper import PROGRAM

        sysctls = dict(SYSCTLS)
        if os.path.exists(BRIDGE_NF_SYSCTL[1]):
            sysctls[BRIDGE_NF_SYSCTL[0]] = "1"
        volumes = {}
        mount = self._mount_for(spec, name)
        if mount is not None:
            volumes[str(mount.resolve())] = {"bind": MOUNT_POINT, "mode": "rw"}
        try:
            with sigint_deferred():  # Ctrl-C: not while the engine may still be making it (delete finds it)
                made = self.client.containers.create(
                    image,
                    entrypoint=["/bin/sh", "-c", ENTRYPOINT_SCRIPT.format(program=PROGRAM)],
                    command=[],
                    name=name,
                    hostname=name,
                    labels={LABEL_CLUSTER: spec.name, LABEL_ROLE: role, LABEL_PROVIDER: self.name},
                    cap_add=CAPS,
                    security_opt=SECURITY_OPT,
                    sysctls=sysctls,
                    network=network.name,
                    volumes=volumes,
                    tmpfs={"/run": "", "/tmp": ""},
                    init=False,
                )
            made.start()
        except docker.errors.APIError as err:
            raise NppctlError(f"cannot create node {name}: {err.explanation or err}") from err
