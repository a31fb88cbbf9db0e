"""`nppctl up --registry-mirror URL`: every node's containerd pulls docker.io images through URL first
(a classroom's pull-through cache of Docker Hub), as kind's local-registry guide sets a registry up.

The kind config gets containerdConfigPatches pointing the CRI's registry config at
CERTS_D (the patch is nppctl.lab.kindpatches'); once the nodes exist, each gets
/etc/containerd/certs.d/docker.io/hosts.toml naming the mirrors in the order given, Docker Hub itself
(server) after them. containerd reads hosts.toml at each pull, so no restart is needed, and on a
cluster made before, containerd 2.x (kind v0.32 and v0.33 nodes carry 2.3) reads that folder by
default: `up --registry-mirror` on an existing cluster rewrites the file too. The file is written
through the Docker SDK (mkdir -p and put_archive, argument lists), only when its text differs.

Interface: parse(raw) -> str (the URL normalised, NppctlError otherwise); hosts_toml(mirrors);
write_hosts(cluster, mirrors) -> {node: "written" | "unchanged"}.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from nppctl.errors import NppctlError

CERTS_D = "/etc/containerd/certs.d"  # containerd's registry config folder (kindpatches points the CRI at it)
HOSTS_DIR = f"{CERTS_D}/docker.io"
HOSTS_FILE = f"{HOSTS_DIR}/hosts.toml"
DOCKER_HUB = "https://registry-1.docker.io"
USAGE = "write http://HOST[:PORT] or https://HOST[:PORT] (a pull-through cache of Docker Hub), " \
        "e.g. --registry-mirror http://10.0.0.5:5000"
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


def parse(raw: str) -> str:
    """RAW as hosts.toml will name it (scheme and host lower case, no trailing /); NppctlError, one
    line saying what is wrong and what to write, otherwise."""
    why = _why_not(raw)
    if why is not None:
        raise NppctlError(f"--registry-mirror {raw!r}: {why}; {USAGE}")
    url = urlsplit(raw)
    netloc = url.netloc.lower()
    return f"{url.scheme.lower()}://{netloc}"


def hosts_toml(mirrors: list[str] | tuple[str, ...]) -> str:
    """containerd's hosts.toml for docker.io: each mirror for pull and resolve, in order, then Docker Hub."""
    lines = [
        "# Written by `nppctl up --registry-mirror`: docker.io pulls try these mirrors in order, then",
        "# Docker Hub (server).",
        f"server = {json.dumps(DOCKER_HUB)}",
    ]
    for mirror in mirrors:
        lines += ["", f"[host.{json.dumps(mirror)}]", '  capabilities = ["pull", "resolve"]']
    return "\n".join(lines) + "\n"


def write_hosts(cluster: str, mirrors: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Write hosts.toml naming MIRRORS into every running node of CLUSTER; node -> written | unchanged."""
    from nppctl.access.nodes import for_each_node, list_nodes, node_exec, node_run, put_file

    text = hosts_toml(mirrors)

    def write(node) -> str:
        now = node_run(node, ["cat", HOSTS_FILE])
        if now.code == 0 and now.stdout == text:
            return "unchanged"
        node_exec(node, ["mkdir", "-p", HOSTS_DIR])
        put_file(node, HOSTS_FILE, text.encode(), 0o644)
        return "written"

    nodes = list_nodes(cluster)
    if not nodes:
        raise NppctlError(f"cluster {cluster!r} has no running node to give the registry mirror")
    return dict(zip((n.name for n in nodes), for_each_node(nodes, write), strict=True))
