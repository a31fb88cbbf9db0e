"""Shared test plumbing.

Integration tests need root, network namespaces, Docker, the node image or the Go reference
plugins. Missing, they skip on a developer's machine; when CI is set they fail instead, so a
CI run can never pass by skipping them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
REGISTRY_CONTAINER = "nppctl-registry"


def sigint_default() -> None:
    """preexec_fn of every child a test interrupts with SIGINT: the signal's default disposition, whatever
    the runner left (a runner started in the background without job control ignores SIGINT, and its
    children would inherit that: python would then never raise KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ended_by_sigint(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """SIGINT to PROC (what Ctrl-C sends; start it with preexec_fn=sigint_default), then its output once it
    ended: it must end with exit code 130 and no traceback (killed after TIMEOUT otherwise)."""
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    return out, err


def require(ok: bool, what: str) -> None:
    """Skip (locally) or fail (CI set) when a prerequisite is missing."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"prerequisite missing in CI: {what}")
    pytest.skip(f"prerequisite missing: {what}")


@pytest.fixture(scope="session")
def root_netns() -> None:
    """Root and a working `ip netns` (plugin integration tests)."""
    require(os.geteuid() == 0, "root (tests create network namespaces)")
    require(shutil.which("ip") is not None, "iproute2's `ip`")
    probe = "npptest-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    require(made.returncode == 0, f"`ip netns add` works ({made.stderr.decode().strip()})")


@pytest.fixture(scope="session")
def reference_plugins() -> Path:
    """The folder holding the Go reference plugins (Debian's containernetworking-plugins)."""
    for d in REFERENCE_PLUGIN_DIRS:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("bridge", "host-local", "portmap")):
            return Path(d)
    require(False, "reference CNI plugins (apt-get install containernetworking-plugins)")
    raise AssertionError  # unreachable


@pytest.fixture(scope="session")
def plugins(tmp_path_factory) -> Path:
    """The folder holding nppnet and nppnet-skel, built once per session exactly as install ships them."""
    from nppctl.build import artifacts

    out = tmp_path_factory.mktemp("np1-bin")
    artifacts.build_plugins(out)
    return out


@pytest.fixture
def mount_point(tmp_path):
    """A directory on which the test may mount a small tmpfs; unmounted (lazily) at the end."""
    require(os.geteuid() == 0, "root (the test mounts a small tmpfs)")
    target = tmp_path / f"np2-mnt-{uuid.uuid4().hex[:6]}"
    target.mkdir()
    mounted = []

    def mount(*options: str) -> Path:
        opts = ",".join(options) if options else "size=256k"
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "np2tmpfs", str(target)], capture_output=True
        )
        require(out.returncode == 0, f"mount tmpfs ({out.stderr.decode().strip()})")
        mounted.append(target)
        return target

    yield mount
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


@pytest.fixture(scope="session")
def kind_binary() -> Path:
    """A real kind executable as a user downloads or `go install`s it: $NPPCTL_KIND (CI: kind v0.33.0)."""
    path = load_world()["KIND"]  # $NPPCTL_KIND, else the kind world's world.env
    require(bool(path) and os.access(path, os.X_OK), f"a real kind binary in NPPCTL_KIND (got {path!r})")
    return Path(path)


@pytest.fixture(scope="session")
def docker_client():
    """A Docker SDK client whose engine answers."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as err:  # noqa: BLE001 - any failure means no engine
        require(False, f"a running Docker engine ({err})")
    return client


def _built_image(docker_client, suite: str, env_var: str) -> str:
    """A node image of .ci/build-node-image.sh SUITE: $ENV_VAR (.ci/run exports it), else built now."""
    tag = os.environ.get(env_var)
    if not tag:
        out = subprocess.run(
            ["bash", str(REPO / ".ci" / "build-node-image.sh"), suite], capture_output=True, text=True
        )
        require(out.returncode == 0, f"{suite} node image build ({out.stderr.strip()[-300:]})")
        tag = out.stdout.strip().splitlines()[-1]
    try:
        docker_client.images.get(tag)
    except Exception as err:  # noqa: BLE001
        require(False, f"node image {tag} ({err})")
    return tag


@pytest.fixture(scope="session")
def node_image(docker_client) -> str:
    """kindest/node's userland as kind v0.32 builds it (trixie): no python3, no ping."""
    return _built_image(docker_client, "trixie", "NPPCTL_TEST_IMAGE")


@pytest.fixture(scope="session")
def node_image_bookworm(docker_client) -> str:
    """kindest/node's userland as kind v0.21-v0.31 build it (bookworm): python3 3.11 via nfs-common."""
    return _built_image(docker_client, "bookworm", "NPPCTL_TEST_IMAGE_BOOKWORM")


@pytest.fixture(scope="session")
def python_node_image(docker_client, node_image) -> str:
    """The image `up` derives from node_image (nppctl.access.nodeimage: python3 3.13 from trixie's apt),
    built once and then cached by the engine."""
    from nppctl.access import nodeimage
    from nppctl.errors import NppctlError

    try:
        return nodeimage.ensure_python_image(node_image, client=docker_client).image
    except NppctlError as err:
        require(False, f"python3 image derived from {node_image} ({err})")
        raise


# Chains that outlive any one network on a node: the plugin's own (nppctl/plugin/firewall.py) and the
# reference portmap's. A chain the session made (absent at its start) is removed at its end, with the
# rules that jump to it.
_SESSION_CHAINS = (
    ("filter", "NPPNET-FORWARD"),
    ("nat", "NPPNET-POSTROUTING"),
    ("nat", "CNI-HOSTPORT-DNAT"),
    ("nat", "CNI-HOSTPORT-MASQ"),
    ("nat", "CNI-HOSTPORT-SETMARK"),
)


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def _remove_chain(table: str, chain: str) -> None:
    for line in _iptables("-t", table, "-S").stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["-A"] and words[-2:] == ["-j", chain]:
            _iptables("-t", table, "-D", *words[1:])
    _iptables("-t", table, "-F", chain)
    _iptables("-t", table, "-X", chain)


@pytest.fixture(scope="session", autouse=True)
def _remove_chains_made_by_tests():
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        yield
        return
    absent = [(t, c) for t, c in _SESSION_CHAINS if _iptables("-t", t, "-S", c).returncode != 0]
    yield
    for table, chain in absent:
        _remove_chain(table, chain)


# The kind world of .ci/kind-world.sh: real kind, Kubernetes, node image and registry (tests/kind).
WORLD_KEYS = ("KIND", "KUBECTL", "NODE_IMAGE", "REGISTRY", "E2E_TEST", "GINKGO", "CONFORMANCE_IMAGE")


def load_world() -> dict[str, str]:
    world = {k: os.environ.get(f"NPPCTL_{k}", "") for k in WORLD_KEYS}
    env_file = Path(os.environ.get("NPPCTL_WORLD", "/var/cache/nppctl-world")) / "world.env"
    if not all(world.values()) and env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in world and not world[key]:
                world[key] = value.strip()
    return world


@pytest.fixture(scope="session")
def world(docker_client) -> dict[str, str]:
    found = load_world()
    missing = [k for k in WORLD_KEYS if not found[k]]
    require(not missing, f"the kind world ({', '.join(missing)} unset: run bash .ci/kind-world.sh)")
    for key in ("KIND", "KUBECTL"):
        require(os.access(found[key], os.X_OK), f"{key}={found[key]} executable")
    try:
        docker_client.images.get(found["NODE_IMAGE"])
        registry = docker_client.containers.get(REGISTRY_CONTAINER)
    except Exception as err:  # noqa: BLE001
        require(False, f"the kind world's node image and registry ({err})")
    require(registry.status == "running", f"{REGISTRY_CONTAINER} running")
    return found


# Test tiers (markers registered in pyproject.toml), given from what a test uses: `python3 -m pytest -m
# "not docker and not kind and not netns"` is the fast tier; `python3 -m pytest -q` runs every tier.
TIER_FIXTURES = {
    "kind": {"world", "kind_world", "kind_binary"},
    "docker": {"docker_client"},
    "netns": {"root_netns", "host_untouched"},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)
