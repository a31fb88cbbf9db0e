"""`nppctl doctor`: is this machine ready for the lab? Each failed check says how to fix it.

Checks per provider (run_checks(provider, image)): both need the Docker engine (its version), show
the Docker host's cgroup version (a row), free disk where Docker keeps its data, the node image `up`
would start from (--image, else the provider's default: the docker provider's, nodeimage.DEFAULT_IMAGE, or the
installed kind's default image) on this machine or pullable (the registry is asked for its
manifest, nothing is downloaded), and the local node images usable as --image (nppctl.access.localimages).
kind needs the kind binary on PATH (its version), and shows this host's fs.inotify limits against kind's
recommendation (a warning row below it); for docker kind is not checked. kubectl is
optional for both. The run fails when a required check fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIN_FREE_GB = 5.0  # a kind node image is ~1 GB, each node's writable layer grows with use


@dataclass
class Check:
    name: str
    ok: bool
    detail: str  # version / figure when ok, how to fix when not
    required: bool = True


def _version_of(argv: list[str]) -> str | None:
    """The first version-looking word of a tool's version output, or None when it does not run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    found = re.search(r"v?\d+\.\d+(\.\d+)?\S*", out.stdout + out.stderr)
    return found.group(0) if found else (out.stdout.strip().splitlines() or ["?"])[0]


def check_docker() -> tuple[Check, str]:
    """(the check, Docker's data folder for the disk check)."""
    from nppctl.access.nodes import docker_client
    from nppctl.errors import NppctlError

    try:
        client = docker_client()
        version = client.version().get("Version", "?")
        root = client.info().get("DockerRootDir") or "/"
    except NppctlError as err:
        return Check("docker engine", False, str(err)), "/"
    return Check("docker engine", True, f"server {version}"), root


def check_cgroup() -> Check:
    """The Docker host's cgroup version (a row, never a failure: `up` handles v1 itself)."""
    from nppctl.errors import NppctlError
    from nppctl.lab.kindpatches import host_cgroup_version

    try:
        version = host_cgroup_version()
    except NppctlError:
        return Check("docker cgroup", False, "unknown: the Docker engine does not answer", required=False)
    if version == "2":
        return Check("docker cgroup", True, "v2", required=False)
    return Check(
        "docker cgroup", True,
        "v1: Kubernetes 1.35+ kubelets refuse it unless failCgroupV1: false, which `nppctl up` adds "
        "to the kind config it renders",
        required=False,
    )


def check_tool(name: str, argv: list[str], fix: str, required: bool) -> Check:
    if shutil.which(name) is None:
        return Check(name, False, f"not on PATH: {fix}", required)
    version = _version_of(argv)
    if version is None:
        return Check(name, False, f"`{' '.join(argv)}` failed: {fix}", required)
    return Check(name, True, version, required)


def check_disk(path: str) -> Check:
    try:
        free = shutil.disk_usage(path).free / 2**30
    except OSError:
        free = shutil.disk_usage("/").free / 2**30
        path = "/"
    if free < MIN_FREE_GB:
        return Check(
            "free disk", False,
            f"{free:.1f} GiB free at {path}, the lab needs {MIN_FREE_GB:.0f}: "
            "free some (e.g. `docker system prune`)",
        )
    return Check("free disk", True, f"{free:.1f} GiB free at {path}")


KIND_FIX = "install the kind binary (kind's Quick Start), or use `nppctl up --provider docker`"


def check_node_image(client, ref: str | None, why: str = "") -> Check:
    """Whether `up` can start from REF: on this machine, else pullable (registry manifest, no download)."""
    import docker

    if ref is None:
        return Check("node image", False, f"unknown: {why}; pass --image with a local node image",
                     required=False)
    try:
        client.images.get(ref)
        return Check("node image", True, f"{ref} on this machine")
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as err:
        return Check("node image", False, f"{ref}: the engine failed to answer ({err})")
    try:
        client.images.get_registry_data(ref)
    except docker.errors.DockerException as err:
        from nppctl.errors import one_line

        reason = one_line(getattr(err, "explanation", None) or err)
        return Check("node image", False, f"{ref} is not on this machine and cannot be pulled ({reason}): "
                     f"`docker pull {ref}`, or pass --image with a local node image (listed below)")
    return Check("node image", True, f"{ref} not on this machine, pullable (`up` pulls it)")


def check_local_images(client) -> Check:
    """The local node images usable as --image (a row, never a failure)."""
    from nppctl.access.localimages import node_images

    found = node_images(client)
    return Check("local node images (--image)", bool(found), ", ".join(found) or "none found", required=False)


def _default_image(provider: str, kind_ok: bool) -> tuple[str | None, str]:
    """(the node image `up --provider PROVIDER` starts from without --image, why None)."""
    if provider == "docker":
        from nppctl.access.nodeimage import DEFAULT_IMAGE

        return DEFAULT_IMAGE, ""
    if not kind_ok:
        return None, "kind's default image: kind is not on PATH"
    from nppctl.access.nodeimage import installed_kind_image
    from nppctl.access.providers.kind import KindProvider
    from nppctl.errors import NppctlError

    try:
        return installed_kind_image(KindProvider().version)[0], "kind's default image is not known to nppctl"
    except NppctlError as err:
        return None, str(err)


# kind's Known Issues ("Pod errors due to too many open files"): each node's containerd, kubelet and
# pods take inotify instances of the one host, and a cluster needs more than Linux's default allows
INOTIFY = {"max_user_watches": 524288, "max_user_instances": 512}
INOTIFY_FIX = ("sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512 "
               "(kind's Known Issues; add them to /etc/sysctl.conf to keep them)")


def inotify_limits() -> dict[str, int | None]:
    """This host's fs.inotify limits (None: unreadable)."""
    found: dict[str, int | None] = {}
    for key in INOTIFY:
        try:
            found[key] = int(Path(f"/proc/sys/fs/inotify/{key}").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            found[key] = None
    return found


def inotify_low() -> str | None:
    """One line when a limit is below kind's recommendation (a restarted node's containerd then cannot
    watch its CNI config and the node stays NotReady), else None."""
    limits = inotify_limits()
    low = [f"fs.inotify.{k} is {v} (kind recommends {INOTIFY[k]})" for k, v in limits.items()
           if v is not None and v < INOTIFY[k]]
    if not low:
        return None
    return ("; ".join(low) + ": several kind nodes exhaust it (a node's containerd fails with \"too many "
            f"open files\" and the node stays NotReady): {INOTIFY_FIX}")


def check_inotify() -> Check:
    """A row (a warning, never a failure): the host's inotify limits against kind's recommendation."""
    limits = inotify_limits()
    shown = ", ".join(f"{k} {v if v is not None else '?'}" for k, v in limits.items())
    low = inotify_low()
    return Check("inotify limits", low is None, shown if low is None else low, required=False)


def run_checks(provider: str = "kind", image: str | None = None) -> list[Check]:
    """The checks of what `up --provider PROVIDER [--image IMAGE]` needs (see the module doc)."""
    docker, root = check_docker()
    checks = [docker, check_cgroup()]
    if provider == "kind":
        checks.append(check_tool("kind", ["kind", "version"], KIND_FIX, required=True))
        checks.append(check_inotify())
    checks.append(check_tool(
        "kubectl", ["kubectl", "version", "--client"],
        "optional: install kubectl to run the course's kubectl commands (nppctl itself does not need it)",
        required=False,
    ))
    checks.append(check_disk(root))
    if docker.ok:
        from nppctl.access.nodes import docker_client

        client = docker_client()
        kind_ok = any(c.name == "kind" and c.ok for c in checks)
        ref, why = (image, "") if image else _default_image(provider, kind_ok)
        checks += [check_node_image(client, ref, why), check_local_images(client)]
    return checks


def healthy(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)
