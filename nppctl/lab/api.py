"""What the cluster's Kubernetes API says, when there is one and it answers: pod CIDRs, Ready.

A kindless lab (the docker provider's nodes) has no API: kindless() tells it from the nodes' labels,
and the answers are None without loading the Kubernetes client. So is an API that does not answer
(a kind cluster still starting, a kubeconfig gone): `install` then splits the pod CIDR itself and
`status` leaves Ready unknown.

Interface: kindless(cluster) -> bool; pod_cidrs(cluster) -> dict | None; ready(cluster) -> dict | None
"""

from __future__ import annotations

from nppctl.errors import NppctlError


def kindless(cluster: str) -> bool:
    """Whether the cluster's nodes are the docker provider's (no Kubernetes API to ask)."""
    from nppctl.access.nodes import list_nodes
    from nppctl.access.providers.docker import LABEL_PROVIDER, DockerProvider

    nodes = list_nodes(cluster, stopped=True)
    return all(n.container.labels.get(LABEL_PROVIDER) == DockerProvider.name for n in nodes)


def pod_cidrs(cluster: str) -> dict[str, str] | None:
    """Node -> its pod CIDR as the API gives it, or None (kindless, or no answer)."""
    return _ask(cluster, "pod_cidrs")


def ready(cluster: str) -> dict[str, bool] | None:
    """Node -> its Ready condition as the API gives it, or None (kindless, or no answer)."""
    return _ask(cluster, "ready")


def _ask(cluster: str, what: str):
    if kindless(cluster):
        return None  # the kindless provider's nodes: no API to ask (saves loading the client)
    try:
        from nppctl.access import kube
    except ImportError:
        return None
    try:
        if not kube.answers(cluster):
            return None
        return kube.pod_cidrs(cluster) if what == "pod_cidrs" else kube.ready(cluster)
    except NppctlError:
        return None
