"""The Service `nppctl check` probes: a ClusterIP over one check pod (the first worker's), fetched from the
other check pods (same node, across nodes) and from that pod itself (hairpin).

On kind: a real Service (pod-configs/nppctl-check-service.yaml.j2) that kube-proxy programs; the check
pods run busybox httpd. On a kindless lab (no kube-proxy): the server is the node agent listening in
the server pod's namespace (nodeside/tcp.py), the ClusterIP is an address of kind's default service
range, and every node gets iptables rules shaped as kube-proxy's iptables mode (nodeside/kubeproxy.py,
chains NPPCTL-*), all removed when check ends.

Interface: manifest(template, **values) -> dict, kube_service(cluster) -> Service,
           KindlessService(node_list, server_pod, server_node, server_address) .start() .stop()
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from nppctl.access import agent
from nppctl.errors import NppctlError

NAME = "npp-check"
PORT = 80  # the Service's port
TARGET_PORT = 8080  # the server pod's port
KINDLESS_CLUSTER_IP = "10.96.78.10"  # in kind's default service range 10.96.0.0/16
REPLY = "nppctl-check"  # the server's answer starts with it (then the pod's name)
SERVER_LIFETIME_S = 300  # a kindless server nobody stopped (check killed hard) ends by itself
STOP_WAIT_S = 10


@dataclass
class Service:
    name: str
    cluster_ip: str
    port: int
    target_port: int
    server: str  # the server pod's name
    server_address: str
    how: str  # one line saying who implements it

    def to_dict(self) -> dict:
        return asdict(self)


def manifest(template: str, **values) -> dict:
    """pod-configs/TEMPLATE rendered with VALUES, as a dict for the API."""
    import yaml
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from nppctl.resources import resource_dir

    env = Environment(loader=FileSystemLoader(resource_dir("pod-configs")), undefined=StrictUndefined)
    return yaml.safe_load(env.get_template(template).render(**values))


def service_manifest() -> dict:
    return manifest("nppctl-check-service.yaml.j2", name=NAME, port=PORT, target_port=TARGET_PORT)


# ---------------------------------------------------------------- kind: a real Service, kube-proxy's rules


def kube_service(cluster: str, server: str, server_address: str) -> Service:
    """Create the check's Service (a leftover one replaced) and return it with its ClusterIP."""
    from nppctl.access import kube

    kube.delete_service(cluster, NAME)
    cluster_ip = kube.create_service(cluster, service_manifest())
    how = f"a Service of the cluster: kube-proxy's rules send {cluster_ip}:{PORT} to {server}:{TARGET_PORT}"
    return Service(NAME, cluster_ip, PORT, TARGET_PORT, server, server_address, how)


def delete_kube_service(cluster: str) -> None:
    from nppctl.access import kube

    kube.delete_service(cluster, NAME)


# ---------------------------------------------------------------- kindless: kube-proxy-shaped rules


class KindlessService:
    """The agent serving TCP in the server pod, and the ClusterIP's rules in every node, until stop()."""

    def __init__(self, node_list, server: str, server_node, server_address: str,
                 cluster_ip: str | None = None):
        self.nodes, self.server, self.server_node = list(node_list), server, server_node
        self.cluster_ip = cluster_ip or KINDLESS_CLUSTER_IP
        self.service = Service(
            NAME, self.cluster_ip, PORT, TARGET_PORT, server, server_address,
            f"iptables rules in every node shaped as kube-proxy's iptables mode (chains NPPCTL-*) send "
            f"{self.cluster_ip}:{PORT} to {server}:{TARGET_PORT}: this lab has no kube-proxy; "
            "the rules are removed when check ends",
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nppctl-tcp-serve")
        self._serving = None
        self._ruled: list = []

    def rules_spec(self) -> dict:
        return {
            "action": "add",
            "name": f"default/{NAME}:http",
            "cluster_ip": self.cluster_ip,
            "port": PORT,
            "endpoints": [{"ip": self.service.server_address, "port": TARGET_PORT}],
        }

    def start(self) -> Service:
        self._serving = self._pool.submit(
            agent.tcp_serve, self.server_node, self.server, TARGET_PORT, f"{REPLY} {self.server}",
            SERVER_LIFETIME_S,
        )
        spec = self.rules_spec()

        def add(node):
            self._ruled.append(node)
            agent.service(node, spec)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(add, self.nodes))
        return self.service

    def server_error(self) -> str | None:
        """Why the server ended early (e.g. its port was taken), or None while it serves."""
        if self._serving is None or not self._serving.done():
            return None
        err = self._serving.exception()
        return str(err) if err else "the server ended before the probes"

    def stop(self) -> list[str]:
        """Stop the server, remove the rules from every node; returns the peers the server saw. Never raises
        NppctlError (it runs in cleanup): a server it could not reach ends after SERVER_LIFETIME_S."""
        from concurrent.futures import TimeoutError as FutureTimeout

        peers: list[str] = []
        deadline = time.monotonic() + STOP_WAIT_S
        while self._serving is not None and time.monotonic() < deadline:
            try:
                agent.tcp_stop(self.server_node, self.server, TARGET_PORT)  # no pid file yet: again
            except NppctlError:
                pass
            try:
                peers = (self._serving.result(timeout=0.5) or {}).get("peers", [])
            except FutureTimeout:
                continue
            except NppctlError:
                pass
            break
        self._pool.shutdown(wait=False)

        def remove(node):
            try:
                agent.service(node, {"action": "del"})
            except NppctlError:
                pass

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(remove, self._ruled))
        return peers
