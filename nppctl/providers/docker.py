"""The kindless provider: kind-shaped node containers with no Kubernetes in them.

nppctl makes the Docker network "kind" (a user-defined bridge, as kind makes it) and the node
containers itself, named and labelled as kind names them, so the node layer finds them the same
way. Each container runs only a sleeper (the image's entrypoint is replaced by `sleep infinity`):
no kubelet, no API server, no pods -- `cni add` namespaces stand in for pods.

Addition to the kind labels: io.nppctl.provider=docker on every container this provider makes
(LABEL_PROVIDER; the CLI skips asking for a Kubernetes API on such nodes). Also: node_names(),
DockerProvider.ensure_network(), DockerProvider.remove_network_if_unused(); spec.mounts keys may be
container names or short names ("worker2").
"""

from __future__ import annotations

from nppctl.errors import NppctlError
from nppctl.providers.base import KIND_NETWORK, LABEL_CLUSTER, LABEL_ROLE, ClusterSpec, kind_node_names

DEFAULT_IMAGE = "kindest/node:v1.31.0"
LABEL_PROVIDER = "io.nppctl.provider"
KIND_IPV6_SUBNET = "fc00:f853:ccd:e793::/64"
MOUNT_POINT = "/npp-temp"
CAPS = ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"]
# Pods route through the node: forwarding on in the node's namespace (/proc/sys is read-only there).
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0"}


def node_names(cluster: str, workers: int) -> list[tuple[str, str]]:
    """[(container name, role)] as kind names them: control-plane, worker, worker2, ..."""
    roles = ["control-plane"] + ["worker"] * workers
    return list(zip(kind_node_names(cluster, roles), roles, strict=True))


class DockerProvider:
    name = "docker"
    has_kubernetes = False

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            from nppctl.nodes import docker_client

            self._client = docker_client()
        return self._client

    # -- the Provider interface -------------------------------------------------------------
    def create(self, spec: ClusterSpec) -> None:
        """Network and node containers; what already runs is left as it is (idempotent)."""
        if spec.workers < 0:
            raise NppctlError(f"--workers must be 0 or more, not {spec.workers}")
        image = spec.image or DEFAULT_IMAGE
        self._ensure_image(image)
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

    def _ensure_image(self, image: str) -> None:
        import docker

        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.pull(image)
        except docker.errors.APIError as err:
            raise NppctlError(
                f"node image {image} is not on this machine and could not be pulled "
                f"({err.explanation or err}): `docker pull {image}`, or pass --image with a local image "
                "that has python3 and iproute2"
            ) from err

    def ensure_network(self):
        """The user-defined bridge network "kind" (IPv4 + kind's IPv6 ULA when the engine allows)."""
        import docker
        from docker.types import IPAMConfig, IPAMPool

        nets = self.client.networks.list(names=[KIND_NETWORK])
        for net in nets:
            if net.name == KIND_NETWORK:
                return net
        opts = {"com.docker.network.bridge.enable_ip_masquerade": "true"}
        try:
            return self.client.networks.create(
                KIND_NETWORK,
                driver="bridge",
                options=opts,
                enable_ipv6=True,
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=KIND_IPV6_SUBNET)]),
            )
        except docker.errors.APIError:
            # IPv6 is optional: an engine without it still gives kind's IPv4 network.
            try:
                return self.client.networks.create(KIND_NETWORK, driver="bridge", options=opts)
            except docker.errors.APIError as err:
                if "already exists" in str(err):  # made meanwhile by another nppctl/kind
                    return self.client.networks.get(KIND_NETWORK)
                raise NppctlError(
                    f"cannot create the Docker network '{KIND_NETWORK}': {err.explanation}"
                ) from err

    def remove_network_if_unused(self, gone: set[str] = frozenset(), wait: float = 5.0) -> bool:
        """Remove network "kind" unless a container is attached; True when removed.

        `gone` are IDs of containers just removed: the engine may list their endpoints a moment
        longer, so while only those are attached it retries for up to `wait` seconds.
        """
        import time

        import docker

        deadline = time.monotonic() + wait
        while True:
            try:
                net = self.client.networks.get(KIND_NETWORK)
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
        volumes = {}
        mount = self._mount_for(spec, name)
        if mount is not None:
            volumes[str(mount.resolve())] = {"bind": MOUNT_POINT, "mode": "rw"}
        try:
            self.client.containers.run(
                image,
                entrypoint=["sleep", "infinity"],
                command=[],
                name=name,
                hostname=name,
                labels={LABEL_CLUSTER: spec.name, LABEL_ROLE: role, LABEL_PROVIDER: self.name},
                cap_add=CAPS,
                sysctls=SYSCTLS,
                network=network.name,
                volumes=volumes,
                tmpfs={"/run": "", "/tmp": ""},
                detach=True,
                init=False,
            )
        except docker.errors.APIError as err:
            raise NppctlError(f"cannot create node {name}: {err.explanation or err}") from err
