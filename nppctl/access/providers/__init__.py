"""Node providers: `kind` (real Kubernetes nodes) and `docker` (kind-shaped containers, no Kubernetes)."""

from __future__ import annotations

from nppctl.access.providers.base import Provider
from nppctl.errors import NppctlError

PROVIDER_NAMES = ("kind", "docker")


def get_provider(name: str) -> Provider:
    """The provider called `name`; its module (and docker/kind access) loads only when asked for."""
    if name == "kind":
        from nppctl.access.providers.kind import KindProvider

        return KindProvider()
    if name == "docker":
        from nppctl.access.providers.docker import DockerProvider

        return DockerProvider()
    raise NppctlError(f"unknown provider {name!r}: use one of {', '.join(PROVIDER_NAMES)}")
