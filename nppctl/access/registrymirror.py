"""`nppctl up --registry-mirror [REGISTRY=]URL`: every node's containerd pulls REGISTRY's images (docker.io
when no REGISTRY is named) through URL first (a classroom's pull-through cache of Docker Hub, of
registry.k8s.io, ...), as kind's local-registry guide sets a registry up.

The kind config gets containerdConfigPatches pointing the CRI's registry config at CERTS_D (the patch is
nppctl.lab.kindpatches'); once the nodes exist, each gets CERTS_D/<registry>/hosts.toml for every
registry named, its mirrors in the order given, the registry itself (server) after them. containerd
reads hosts.toml at each pull, so no restart is needed, and on a cluster made before, containerd 2.x
(kind v0.32 and v0.33 nodes carry 2.3) reads that folder by default: `up --registry-mirror` on an
existing cluster rewrites the files too, and removes the ones it wrote before for a registry no longer
named. The files are written through the Docker SDK (mkdir -p and put_archive, argument lists), only
when their text differs.

Interface: Mirror(registry, url); parse(raw) -> Mirror (normalised, NppctlError otherwise);
hosts_toml(registry, urls); hosts_file(registry); write_hosts(cluster, mirrors) -> {node: "written" |
"unchanged"}.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from nppctl.errors import NppctlError

CERTS_D = "/etc/containerd/certs.d"  # containerd's registry config folder (kindpatches points the CRI at it)
DOCKER_IO = "docker.io"  # the registry of a bare URL, and of an image named without one (`image: nginx`)
DOCKER_HUB = "https://registry-1.docker.io"  # where containerd pulls docker.io's images from
MARK = "# Written by `nppctl up --registry-mirror`"  # first line of every hosts.toml nppctl writes
USAGE = "write [REGISTRY=]http[s]://HOST[:PORT], a pull-through cache of REGISTRY (docker.io when not " \
        "named), e.g. --registry-mirror http://10.0.0.5:5000 or registry.k8s.io=http://10.0.0.5:5001"
_REGISTRY = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*(:[0-9]{1,5})?$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # _: Docker container names resolve too


def _why_not(raw: str) -> str | None:
    """Why RAW is not a mirror URL nppctl accepts, or None."""
    if not raw or raw != raw.strip() or any(c.isspace() or ord(c) < 32 for c in raw):
        return "empty or holds white space"
    try:
        url = urlsplit(raw)
        port = url.port  # ValueError: not a number or out of 0-65535
    except ValueError as err:
        return f"not a URL ({err})"
    if url.scheme.lower() not in ("http", "https"):
        return "the scheme must be http or https"
    if url.username is not None or url.password is not None:
        return "no user or password in the URL (containerd's hosts.toml takes no credentials)"
    host = url.hostname or ""
    if not host:
        return "no host"
    if url.path not in ("", "/") or url.query or url.fragment or raw.endswith(("?", "#")):
        return "a mirror is a registry's root: no path, query or fragment"
    if port == 0 or url.netloc.endswith(":"):
        return "the port must be 1-65535"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
        if "[" in url.netloc or not all(_LABEL.match(label) for label in host.rstrip(".").split(".")):
            return f"{host!r} is not a host name or an IP address"
    if host == "localhost" or (address is not None and address.is_loopback):
        return (f"{host} inside a node is the node itself: name the registry's address the nodes reach "
                "(its container name on the Docker network kind, or this machine's IP)")
    return None


@dataclass(frozen=True)
class Mirror:
    """A pull-through cache URL for REGISTRY (a registry's host[:port], as image names spell it)."""

    registry: str
    url: str

    def __str__(self) -> str:
        return self.url if self.registry == DOCKER_IO else f"{self.registry}={self.url}"


def _registry_why_not(registry: str) -> str | None:
    # as image references tell a registry from a path: it holds a dot or a port, or is localhost
    looks_like_one = "." in registry or ":" in registry or registry == "localhost"
    if not _REGISTRY.match(registry) or not looks_like_one:
        return (f"{registry!r} is not a registry's host name (as image names spell it: docker.io, "
                "registry.k8s.io, quay.io, ghcr.io)")
    return None


def parse(raw: str) -> Mirror:
    """RAW ([REGISTRY=]URL) as hosts.toml will name it (registry, scheme and host lower case, no trailing
    /); NppctlError, one line saying what is wrong and what to write, otherwise."""
    registry, url = DOCKER_IO, raw
    if "=" in raw and not raw.lower().startswith(("http://", "https://")):
        registry, url = raw.split("=", 1)
        registry = registry.lower()
        why = _registry_why_not(registry)
        if why is not None:
            raise NppctlError(f"--registry-mirror {raw!r}: {why}; {USAGE}")
    why = _why_not(url)
    if why is not None:
        raise NppctlError(f"--registry-mirror {raw!r}: {why}; {USAGE}")
    parts = urlsplit(url)
    return Mirror("docker.io" if registry in ("index.docker.io", "registry-1.docker.io") else registry,
                  f"{parts.scheme.lower()}://{parts.netloc.lower()}")


def hosts_file(registry: str) -> str:
    return f"{CERTS_D}/{registry}/hosts.toml"


def server(registry: str) -> str:
    """Where containerd pulls REGISTRY's images from when no mirror gives them."""
    return DOCKER_HUB if registry == DOCKER_IO else f"https://{registry}"


def hosts_toml(registry: str, urls: list[str] | tuple[str, ...]) -> str:
    """containerd's hosts.toml for REGISTRY: each mirror URL for pull and resolve, in order, then the
    registry itself."""
    lines = [
        f"{MARK}: {registry} pulls try these mirrors in order, then",
        f"# {registry} itself (server).",
        f"server = {json.dumps(server(registry))}",
    ]
    for url in urls:
        lines += ["", f"[host.{json.dumps(url)}]", '  capabilities = ["pull", "resolve"]']
    return "\n".join(lines) + "\n"


def by_registry(mirrors: list[Mirror] | tuple[Mirror, ...]) -> dict[str, list[str]]:
    """Registry -> its mirror URLs in the order given (each once)."""
    found: dict[str, list[str]] = {}
    for m in mirrors:
        if m.url not in found.setdefault(m.registry, []):
            found[m.registry].append(m.url)
    return found


def write_hosts(cluster: str, mirrors: list[Mirror] | tuple[Mirror, ...]) -> dict[str, str]:
    """Write each named registry's hosts.toml into every running node of CLUSTER, and remove those nppctl
    wrote before for registries not named now; node -> written | unchanged."""
    from nppctl.access.nodes import for_each_node, list_nodes, node_exec, node_run, put_file

    files = {hosts_file(r): hosts_toml(r, urls) for r, urls in by_registry(mirrors).items()}

    def write(node) -> str:
        changed = False
        ours = node_run(node, ["grep", "-rlF", "--include=hosts.toml", MARK, CERTS_D]).stdout.split()
        for stale in sorted(set(ours) - set(files)):
            node_exec(node, ["rm", "-f", stale])
            changed = True
        for path, text in files.items():
            now = node_run(node, ["cat", path])
            if now.code == 0 and now.stdout == text:
                continue
            node_exec(node, ["mkdir", "-p", path.rsplit("/", 1)[0]])
            put_file(node, path, text.encode(), 0o644)
            changed = True
        return "written" if changed else "unchanged"

    nodes = list_nodes(cluster)
    if not nodes:
        raise NppctlError(f"cluster {cluster!r} has no running node to give the registry mirror")
    return dict(zip((n.name for n in nodes), for_each_node(nodes, write), strict=True))
