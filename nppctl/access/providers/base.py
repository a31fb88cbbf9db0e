"""The one interface behind which node providers sit (as kind's providers do).

- kind:   `kind create cluster` makes real Kubernetes nodes (nppctl/access/providers/kind.py).
- docker: kind-shaped node containers with no Kubernetes at all (nppctl/access/providers/docker.py).

Both leave containers named and labelled as kind names them, so the node layer
(nppctl/access/nodes.py) finds them the same way:
  name   <cluster>-control-plane, <cluster>-worker, <cluster>-worker2, ...
  labels io.x-k8s.kind.cluster=<cluster>, io.x-k8s.kind.role=control-plane|worker
  network "kind"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

KIND_NETWORK = "kind"
NETWORK_ENV = "KIND_EXPERIMENTAL_DOCKER_NETWORK"
LABEL_CLUSTER = "io.x-k8s.kind.cluster"
LABEL_ROLE = "io.x-k8s.kind.role"


def network_name() -> str:
    """The Docker network the nodes are on: $KIND_EXPERIMENTAL_DOCKER_NETWORK, else "kind" (as kind)."""
    import os

    return os.environ.get(NETWORK_ENV) or KIND_NETWORK


def kind_node_names(cluster: str, roles: list[str]) -> list[str]:
    """Container names as kind gives them: <cluster>-<role>, then <cluster>-<role>2, 3, ..."""
    seen: dict[str, int] = {}
    names = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        names.append(f"{cluster}-{role}" + (str(seen[role]) if seen[role] > 1 else ""))
    return names


def natural_key(name: str) -> list:
    """Sort key putting kind-worker before kind-worker2 and kind-worker2 before kind-worker10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass
class ClusterSpec:
    """What `nppctl up` asks a provider for."""

    name: str = "kind"
    workers: int = 2
    config_file: Path | None = None  # a rendered or user-given kind cluster config (kind provider)
    image: str | None = None  # node image (docker provider; kind's --image)
    mounts: dict[str, Path] = field(default_factory=dict)  # node name -> host folder mounted at /npp-temp


class Provider(Protocol):
    name: str
    has_kubernetes: bool  # False: no kubelet, no API, no pods (docker provider)
    progress: Callable[[str], None] | None  # given each progress line of create (kind's log), if set

    def create(self, spec: ClusterSpec) -> None:
        """Create the cluster's node containers; safe when it already exists (idempotent)."""

    def delete(self, name: str) -> None:
        """Delete the cluster's node containers (and what the provider made for it); safe when gone."""

    def exists(self, name: str) -> bool: ...

    def kubeconfig(self, name: str) -> str | None:
        """The cluster's kubeconfig text, or None when the provider gives no Kubernetes."""

    def undo_network(self) -> str | None:
        """Remove the Docker network this object created, unless a container uses it; the network still
        there, or None (also when it created none: kind makes and keeps its own)."""
