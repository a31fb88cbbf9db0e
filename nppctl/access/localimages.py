"""Local images usable as `nppctl up --image`: the kind node images already on this machine.

The rule (cheap, from the image config only; no container is started): an image is a node image
when one of its tags is in the repository kindest/node or nppctl-node, or it carries the label
io.nppctl.base-image (an image nppctl derived from a node image), or its Entrypoint or Cmd starts
with kind's node entrypoint /usr/local/bin/entrypoint or with /sbin/init (systemd as PID 1, which
is what a kind node runs). Untagged images are left out: --image needs a name.
Interface: node_images(client) -> list of tags; usable_line(client) -> "A, B" or "none found".
"""

from __future__ import annotations

NODE_REPOS = ("kindest/node", "nppctl-node")
NODE_ENTRYPOINTS = ("/usr/local/bin/entrypoint", "/sbin/init")
DERIVED_LABEL = "io.nppctl.base-image"


def _repo(tag: str) -> str:
    """The repository of TAG (registry host kept, tag and digest dropped)."""
    ref = tag.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def looks_like_node(tags: list[str], config: dict) -> bool:
    """Whether an image with these TAGS and this image CONFIG is a kind node image (module rule)."""
    if any(_repo(t) in NODE_REPOS for t in tags):
        return True
    if DERIVED_LABEL in (config.get("Labels") or {}):
        return True
    first = (config.get("Entrypoint") or config.get("Cmd") or [""])[0]
    return first in NODE_ENTRYPOINTS


def node_images(client) -> list[str]:
    """Tags of the local node images, sorted; [] when the engine does not answer."""
    import docker

    try:
        summaries = client.api.images()
    except docker.errors.DockerException:
        return []
    found: list[str] = []
    for summary in summaries:
        tags = [t for t in summary.get("RepoTags") or [] if t != "<none>:<none>"]
        if not tags:
            continue
        try:
            config = client.api.inspect_image(summary["Id"]).get("Config") or {}
        except docker.errors.DockerException:
            continue  # removed meanwhile
        if looks_like_node(tags, config):
            found.extend(tags)
    return sorted(found)


def usable_line(client) -> str:
    """The local node images as one comma-separated line, or "none found"."""
    return ", ".join(node_images(client)) or "none found"
