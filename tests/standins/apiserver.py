"""STAND-IN Kubernetes API server for nppctl's tests — not Kubernetes.

No API server, kubelet or kind can run on the test machines, so this small HTTP server answers the
few paths of the Kubernetes API that the official Python client uses for nodes:

  GET   /version                  a version object
  GET   /api/v1/nodes             NodeList
  GET   /api/v1/nodes/NAME        Node
  PATCH /api/v1/nodes/NAME        merge / strategic-merge patch of metadata.labels

The nodes are the cluster's real node containers (found by kind's Docker labels). Each Node carries
spec.podCIDR (the N-th /24 of the podSubnet, in node order: control plane first, workers by name),
labels (kind's defaults plus what PATCH set; kept in a JSON file), and a Ready condition that is True
exactly when the node holds a CNI config in /etc/cni/net.d, as a kubelet reports NetworkReady.
Anything else (pods, exec, ...) answers 404: there is no kubelet to run pods.

Run by the stand-in `kind` (tests/standins/kind):
  apiserver.py --cluster NAME --pod-subnet CIDR --state DIR
It writes DIR/port once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LABEL_CLUSTER = "io.x-k8s.kind.cluster"
LABEL_ROLE = "io.x-k8s.kind.role"
CNI_CONF_DIR = "/etc/cni/net.d"
STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def cluster_containers(client, cluster: str) -> list:
    """The cluster's node containers: control plane(s) first, then workers, each by name."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster}"})
    return sorted(found, key=lambda c: (c.labels.get(LABEL_ROLE) != "control-plane", natural_key(c.name)))


class Store:
    """The cluster's node objects, built from its containers and the persisted labels."""

    def __init__(self, cluster: str, pod_subnet: str, state: Path):
        import docker

        self.client = docker.from_env()
        self.cluster = cluster
        self.subnets = list(itertools.islice(ipaddress.ip_network(pod_subnet).subnets(new_prefix=24), 256))
        self.labels_file = state / "labels.json"
        self.lock = threading.Lock()

    def _labels(self) -> dict:
        return json.loads(self.labels_file.read_text()) if self.labels_file.is_file() else {}

    def nodes(self) -> list[dict]:
        saved = self._labels()
        return [
            self._node(i, c, saved.get(c.name, {}))
            for i, c in enumerate(cluster_containers(self.client, self.cluster))
        ]

    def node(self, name: str) -> dict | None:
        return next((n for n in self.nodes() if n["metadata"]["name"] == name), None)

    def patch_labels(self, name: str, labels: dict) -> dict | None:
        with self.lock:
            if self.node(name) is None:
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

    def _node(self, index: int, container, saved: dict) -> dict:
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
        cidr = str(self.subnets[index])
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
            "spec": {
                "podCIDR": cidr,
                "podCIDRs": [cidr],
                "providerID": f"kind://docker/{self.cluster}/{container.name}",
            },
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
    args = parser.parse_args()
    store = Store(args.cluster, args.pod_subnet, args.state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    (args.state / "port.tmp").write_text(str(server.server_address[1]))
    (args.state / "port.tmp").rename(args.state / "port")
    server.serve_forever()


if __name__ == "__main__":
    main()
