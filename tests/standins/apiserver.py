"""STAND-IN Kubernetes API server for nppctl's tests — not Kubernetes.

Real kind, kubelet and API server run in the tests now (.ci/kind-world.sh, tests/kind/). This stays
for one thing only: kindnet, kind's default CNI (tests/lab/test_kindnet.py's --keep-kindnet test).
kindnetd's module is not served by the Go module proxy on the test machines, so the kind world has
no kindnetd image, and a real cluster that keeps kindnet would have no kindnet pods. This small HTTP
server answers the few paths of the Kubernetes API that the official Python client uses for nodes:

  GET   /version                  a version object
  GET   /api/v1/nodes             NodeList
  GET   /api/v1/nodes/NAME        Node
  PATCH /api/v1/nodes/NAME        merge / strategic-merge patch of metadata.labels

The nodes are the cluster's real node containers (found by kind's Docker labels), and they come as
kubelets register in a real cluster: never all at once, never in name order. The control plane(s)
register before `kind create` returns (kubeadm init waits for them); each worker registers later,
one at a time, $NPPCTL_STANDIN_REGISTER_DELAY seconds apart (default 1.0), in the order
$NPPCTL_STANDIN_REGISTER_ORDER names: `reverse` (the default: workers against name order), `names`,
or a comma-separated list of container names. A registered Node has no spec.podCIDR for a moment
(half the delay); then the node IPAM controller gives it the next /24 of the podSubnet in
registration order (10.244.0.0/24, 10.244.1.0/24, ...), so kind-worker2 may well hold 10.244.1.0/24.

Each Node carries labels (kind's defaults plus what PATCH set; kept in a JSON file) and a Ready
condition that is True exactly when the node holds a CNI config in /etc/cni/net.d, as a kubelet
reports NetworkReady. With --kindnet (a config that keeps kind's default CNI), it also plays the
kindnet DaemonSet: $NPPCTL_STANDIN_KINDNET_START seconds (default 1.0: its pod starting) after a
node has its podCIDR it writes /etc/cni/net.d/10-kindnet.conflist there
(ptp + host-local over the node's podCIDR, host-local state in /run/cni-ipam-state, as kindnetd
writes it), and, once the first control plane has it, reserves the addresses CoreDNS (2 replicas)
and local-path-provisioner get from that node's podCIDR by running the real host-local plugin in
the node (from the node's /opt/cni/bin, else the host's) with kindnet's IPAM config.
Anything else (pods, exec, ...) answers 404: there is no kubelet to run pods.

Run by the stand-in `kind` (tests/standins/kind):
  apiserver.py --cluster NAME --pod-subnet CIDR --state DIR [--kindnet]
It writes DIR/port once it listens on 127.0.0.1 and the control plane(s) have registered;
DIR/nodes.json records the registrations (name, time, podCIDR).
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import itertools
import json
import os
import re
import secrets
import tarfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LABEL_CLUSTER = "io.x-k8s.kind.cluster"
LABEL_ROLE = "io.x-k8s.kind.role"
CNI_CONF_DIR = "/etc/cni/net.d"
KINDNET_CONFLIST = CNI_CONF_DIR + "/10-kindnet.conflist"
KINDNET_IPAM_DIR = "/run/cni-ipam-state"  # kindnetd's host-local dataDir
HOST_LOCAL = ("/opt/cni/bin/host-local", "/usr/lib/cni/host-local")
KINDNET_START = float(os.environ.get("NPPCTL_STANDIN_KINDNET_START", "1.0"))  # seconds after podCIDR
STANDIN_TMP = "/var/lib/kindnet-standin"  # scratch folder in a node, removed after use (not /tmp:
# put_archive cannot write under a tmpfs mount)
KINDNET_PODS = ("coredns-0", "coredns-1", "local-path-provisioner-0")  # land on the first Ready node
STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def cluster_containers(client, cluster: str) -> list:
    """The cluster's node containers: control plane(s) first, then workers, each by name."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster}"})
    return sorted(found, key=lambda c: (c.labels.get(LABEL_ROLE) != "control-plane", natural_key(c.name)))


def registration_order(containers: list, order: str) -> list:
    """Control planes first (kubeadm init registers them), then the workers in ORDER."""
    planes = [c for c in containers if c.labels.get(LABEL_ROLE) == "control-plane"]
    workers = [c for c in containers if c.labels.get(LABEL_ROLE) != "control-plane"]
    if order == "names":
        return planes + workers
    if order == "reverse":
        return planes + workers[::-1]
    wanted = [n.strip() for n in order.split(",") if n.strip()]
    rank = {name: i for i, name in enumerate(wanted)}
    return planes + sorted(workers, key=lambda c: rank.get(c.name, len(wanted)))


class Store:
    """The cluster's node objects: the registered containers, their podCIDRs and persisted labels."""

    def __init__(self, cluster: str, pod_subnet: str, state: Path, kindnet: bool):
        import docker

        self.client = docker.from_env()
        self.cluster = cluster
        self.subnets = list(itertools.islice(ipaddress.ip_network(pod_subnet).subnets(new_prefix=24), 256))
        self.labels_file = state / "labels.json"
        self.nodes_file = state / "nodes.json"
        self.kindnet = kindnet
        self.lock = threading.Lock()
        self.registered: dict[str, dict] = {}  # name -> {"at": seconds, "podCIDR": str | None}

    # ------------------------------------------------------------ registration (kubelets, node IPAM)

    def register_all(self, delay: float, order: str) -> None:
        """Register the control plane(s) now; the workers from a thread, one at a time."""
        nodes = registration_order(cluster_containers(self.client, self.cluster), order)
        planes = [c for c in nodes if c.labels.get(LABEL_ROLE) == "control-plane"]
        for container in planes:
            self._register(container.name)
        threading.Thread(target=self._later, args=(nodes, len(planes), delay), daemon=True).start()

    def _later(self, nodes: list, planes: int, delay: float) -> None:
        started = time.monotonic()
        for container in nodes[:planes]:
            time.sleep(delay / 2)
            self._assign_cidr(container)
        for k, container in enumerate(nodes[planes:], start=1):
            time.sleep(max(0.0, started + delay * k - time.monotonic()))
            self._register(container.name)
            time.sleep(delay / 2)
            self._assign_cidr(container)

    def _register(self, name: str) -> None:
        with self.lock:
            self.registered[name] = {"at": round(time.time(), 3), "podCIDR": None}
            self._save()

    def _assign_cidr(self, container) -> None:
        with self.lock:
            given = sum(1 for r in self.registered.values() if r["podCIDR"])
            cidr = str(self.subnets[given])
            self.registered[container.name]["podCIDR"] = cidr
            self._save()
        if self.kindnet:
            threading.Thread(target=self._kindnet_later, args=(container, cidr), daemon=True).start()

    def _kindnet_later(self, container, cidr: str) -> None:
        time.sleep(KINDNET_START)  # the DaemonSet's pod starts a while after the node has its podCIDR
        try:
            self._kindnet(container, cidr)
        except Exception as err:  # noqa: BLE001 - logged: the test sees the node stay NotReady
            print(f"kindnet on {container.name} failed: {err!r}", flush=True)

    def _save(self) -> None:
        self.nodes_file.write_text(json.dumps(self.registered, indent=2))

    # ------------------------------------------------------------ kindnet (kind's default CNI)

    def _kindnet(self, container, cidr: str) -> None:
        """What kindnetd does on a node that got its podCIDR: write its conflist (ptp, host-local in
        /run/cni-ipam-state); on the first control plane, CoreDNS and local-path-provisioner then
        get host-local addresses from that podCIDR (they tolerate the control plane's taint, and it is
        the first node Ready)."""
        ipam = {
            "type": "host-local",
            "dataDir": KINDNET_IPAM_DIR,
            "routes": [{"dst": "0.0.0.0/0"}],
            "ranges": [[{"subnet": cidr}]],
        }
        rc, mtu = container.exec_run(["cat", "/sys/class/net/eth0/mtu"])  # kindnetd reads eth0's
        ptp = {"type": "ptp", "ipMasq": False, "ipam": ipam}
        if rc == 0 and mtu.strip().isdigit():
            ptp["mtu"] = int(mtu)
        conflist = {
            "cniVersion": "0.3.1",
            "name": "kindnet",
            "plugins": [
                ptp,
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        _put(container, {KINDNET_CONFLIST: json.dumps(conflist, indent=1).encode()})
        first_plane = next(
            c.name
            for c in cluster_containers(self.client, self.cluster)
            if c.labels.get(LABEL_ROLE) == "control-plane"
        )
        if container.name == first_plane:
            for pod in KINDNET_PODS:
                _host_local_add(container, {"cniVersion": "0.3.1", "name": "kindnet", "ipam": ipam}, pod)
            container.exec_run(["rm", "-rf", STANDIN_TMP])

    # ------------------------------------------------------------ the API's view

    def _labels(self) -> dict:
        return json.loads(self.labels_file.read_text()) if self.labels_file.is_file() else {}

    def nodes(self) -> list[dict]:
        saved = self._labels()
        with self.lock:
            registered = dict(self.registered)
        return [
            self._node(registered[c.name]["podCIDR"], c, saved.get(c.name, {}))
            for c in cluster_containers(self.client, self.cluster)
            if c.name in registered
        ]

    def node(self, name: str) -> dict | None:
        return next((n for n in self.nodes() if n["metadata"]["name"] == name), None)

    def patch_labels(self, name: str, labels: dict) -> dict | None:
        with self.lock:
            if name not in self.registered:
                return None
            saved = self._labels()
            mine = saved.setdefault(name, {})
            for key, value in labels.items():
                if value is None:
                    mine[key] = None  # a deletion, remembered over kind's defaults
                else:
                    mine[key] = str(value)
            self.labels_file.write_text(json.dumps(saved, indent=2))
        return self.node(name)

    def _node(self, cidr: str | None, container, saved: dict) -> dict:
        container.reload()
        role = container.labels.get(LABEL_ROLE, "worker")
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": container.name,
            "kubernetes.io/os": "linux",
        }
        if role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
        for key, value in saved.items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value
        net = (container.attrs["NetworkSettings"]["Networks"] or {}).get("kind") or {}
        ready, message = self._network_ready(container)
        spec = {"providerID": f"kind://docker/{self.cluster}/{container.name}"}
        if cidr:
            spec.update(podCIDR=cidr, podCIDRs=[cidr])
        return {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {
                "name": container.name,
                "uid": container.id[:32],
                "resourceVersion": "1",
                "creationTimestamp": STARTED,
                "labels": labels,
            },
            "spec": spec,
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "KubeletReady" if ready else "KubeletNotReady",
                        "message": message,
                        "lastHeartbeatTime": STARTED,
                        "lastTransitionTime": STARTED,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": net.get("IPAddress", "")},
                    {"type": "Hostname", "address": container.name},
                ],
            },
        }

    @staticmethod
    def _network_ready(container) -> tuple[bool, str]:
        if container.status != "running":
            return False, f"container is {container.status}"
        rc, out = container.exec_run(["find", CNI_CONF_DIR, "-maxdepth", "1", "-name", "*.conf*"])
        if rc == 0 and out.strip():
            return True, "kubelet is posting ready status (stand-in: a CNI config is present)"
        return False, (
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
            "message:Network plugin returns error: cni plugin not initialized"
        )


def _put(container, files: dict[str, bytes]) -> None:
    """Write FILES (absolute path -> bytes, mode 0644) into the node, making their folders."""
    for folder in sorted({os.path.dirname(p) for p in files}):
        container.exec_run(["mkdir", "-p", folder])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    container.put_archive("/", buf.getvalue())


def _host_local_add(container, netconf: dict, pod: str) -> None:
    """One pod sandbox's IPAM ADD through the real host-local plugin in the node, as containerd runs
    kindnet's chain for it (the node's own plugin, else the host's copied into the node)."""
    rc, _ = container.exec_run(["test", "-x", HOST_LOCAL[0]])
    plugin = HOST_LOCAL[0]
    files = {f"{STANDIN_TMP}/netconf.json": json.dumps(netconf).encode()}
    if rc != 0:
        host = next(p for p in HOST_LOCAL if os.access(p, os.X_OK))
        plugin = f"{STANDIN_TMP}/host-local"
        files[plugin] = Path(host).read_bytes()
    _put(container, files)
    container.exec_run(["chmod", "0755", plugin])
    rc, out = container.exec_run(
        ["sh", "-c", 'exec "$0" < "$1"', plugin, f"{STANDIN_TMP}/netconf.json"],
        environment={
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": secrets.token_hex(32),
            "CNI_NETNS": f"/var/run/netns/cni-{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": os.path.dirname(plugin),
        },
    )
    if rc != 0:
        raise RuntimeError(f"host-local ADD for {pod} failed: {out.decode(errors='replace').strip()}")
    print(f"kindnet host-local on {container.name}: {pod} {out.decode().strip()}", flush=True)


def make_handler(store: Store):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: the test output is what matters
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _missing(self, what: str) -> None:
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"{what} not found (stand-in API server: nodes only)",
                    "reason": "NotFound",
                    "code": 404,
                },
            )

        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/version":
                return self._send(
                    200,
                    {
                        "major": "1",
                        "minor": "29",
                        "gitVersion": "v1.29.0-nppctl-standin",
                        "platform": "linux/amd64",
                    },
                )
            if path == "/api/v1/nodes":
                return self._send(
                    200,
                    {
                        "kind": "NodeList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "1"},
                        "items": store.nodes(),
                    },
                )
            match = re.fullmatch(r"/api/v1/nodes/([^/]+)", path)
            if match:
                node = store.node(match.group(1))
                return self._send(200, node) if node else self._missing(f'nodes "{match.group(1)}"')
            return self._missing(path)

        def do_POST(self):  # noqa: N802 - nothing but nodes is served: pods need a kubelet
            return self._missing(self.path.split("?", 1)[0])

        do_DELETE = do_PUT = do_POST  # noqa: N815

        def do_PATCH(self):  # noqa: N802
            path = self.path.split("?", 1)[0].rstrip("/")
            match = re.fullmatch(r"/api/v1/nodes/([^/]+)", path)
            if not match:
                return self._missing(path)
            kind = self.headers.get("Content-Type", "")
            if kind not in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
                return self._send(
                    415,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "code": 415,
                        "reason": "UnsupportedMediaType",
                        "message": f"unsupported {kind}",
                    },
                )
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            labels = (body.get("metadata") or {}).get("labels") or {}
            node = store.patch_labels(match.group(1), labels)
            return self._send(200, node) if node else self._missing(f'nodes "{match.group(1)}"')

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(
        description="STAND-IN Kubernetes API server (nodes only) for nppctl tests"
    )
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--pod-subnet", default="10.244.0.0/16")
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--kindnet", action="store_true", help="the config keeps kind's default CNI")
    args = parser.parse_args()
    store = Store(args.cluster, args.pod_subnet, args.state, args.kindnet)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    store.register_all(
        float(os.environ.get("NPPCTL_STANDIN_REGISTER_DELAY", "1.0")),
        os.environ.get("NPPCTL_STANDIN_REGISTER_ORDER", "reverse"),
    )
    (args.state / "port.tmp").write_text(str(server.server_address[1]))
    (args.state / "port.tmp").rename(args.state / "port")
    server.serve_forever()


if __name__ == "__main__":
    main()
