"""`nppctl doctor`: is this machine ready for the lab? Each failed check says how to fix it.

Checks: Docker engine reachable (its version), the Docker host's cgroup version (a row), kind on PATH
(its version), kubectl (optional), free disk where Docker keeps its data. The run fails when a
required check fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

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
    from nppctl.errors import NppctlError
    from nppctl.nodes import docker_client

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
    from nppctl.kindpatches import host_cgroup_version

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


def run_checks() -> list[Check]:
    docker, root = check_docker()
    return [
        docker,
        check_cgroup(),
        check_tool(
            "kind", ["kind", "version"],
            "install the kind binary (kind's Quick Start), or use `nppctl up --provider docker`",
            required=True,
        ),
        check_tool(
            "kubectl", ["kubectl", "version", "--client"],
            "optional: install kubectl to run the course's kubectl commands (nppctl itself does not need it)",
            required=False,
        ),
        check_disk(root),
    ]


def healthy(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)
