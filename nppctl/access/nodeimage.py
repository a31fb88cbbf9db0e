"""The node image `up` creates nodes from: the base image, or one derived from it with python3.

The plugin and the node agent run the node's /usr/bin/python3. kindest/node has none since kind
v0.32 (Debian trixie-slim plus kind's packages, no Recommends); the bookworm images of kind
v0.21-v0.31 have Debian's python3 3.11 only because their nfs-common depends on it. So, before
creating a cluster, `up` asks ensure_python_image(base) for the image to use:

- the base itself when its /usr/bin/python3 imports every module the plugin uses;
- else nppctl-node:<derived_tag(base)>, built once: a container of the base (no extra privileges)
  runs `apt-get update` and `apt-get install --no-install-recommends python3` from the base's own
  apt sources, the apt lists and package cache are emptied again, and the container is committed
  with the base's Entrypoint, Cmd, Env, Labels, StopSignal, WorkingDir and User, plus the labels
  io.nppctl.base-image (the reference) and io.nppctl.base-image-id (the base's image ID). A later
  call whose tag carries the base's current ID reuses it: no container, no apt, no network.

The base is --image, else the default node image of the installed kind: the constant of kind's
pkg/apis/config/defaults/image.go (`kindest/node:vX.Y.Z@sha256:<64 hex>`), read out of the kind
binary's data by kind_binary_image() (Go keeps string constants whole in the binary), so a new kind
release needs no change here. A kind binary without it (a wrapper script, a shim) falls back to
KIND_DEFAULT_IMAGES, kind release -> default image recorded from each tag's image.go; for a release
not in the table either, the image is left to kind and the nodes get python3 from apt one by one
(install's ensure_python), and `up` says why.

apt runs inside the container and needs the internet there: the proxies of ~/.docker/config.json
(the Docker SDK sets them in the container, as kind v0.33+ sets them in its nodes), overridden by
HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case) of nppctl's environment (proxy_env), as kind's
environment overrides them.
Interface: ensure_python_image(base, *, say, client) -> NodeImage; kind_binary_image(path);
default_image(kind_version); derived_tag(base); has_python(image, client).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from nppctl.errors import NppctlError

DERIVED_REPO = "nppctl-node"
LABEL_BASE = "io.nppctl.base-image"
LABEL_BASE_ID = "io.nppctl.base-image-id"
PYTHON = "/usr/bin/python3"  # the plugin's shebang's interpreter (nppctl.build.artifacts.PYTHON)
# Every standard module the plugin and the node-side code import (nppctl/plugin/, the node agent),
# under the flags the plugin runs with (no site, isolated): a python3 lacking one cannot run them.
PLUGIN_MODULES = (
    "binascii", "ctypes", "fcntl", "hashlib", "importlib", "ipaddress", "json", "os", "re", "select",
    "shlex", "shutil", "signal", "socket", "struct", "subprocess", "sys", "time",
)
PROBE = [PYTHON, "-I", "-S", "-c", "import " + ", ".join(PLUGIN_MODULES)]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
# kind release -> its default node image (kind's pkg/apis/config/defaults/image.go at each tag).
KIND_DEFAULT_IMAGES = {
    "v0.21.0": "kindest/node:v1.29.1@sha256:a0cc28af37cf39b019e2b448c54d1a3f789de32536cb5a5db61a49623e527144",
    "v0.22.0": "kindest/node:v1.29.2@sha256:51a1434a5397193442f0be2a297b488b6c919ce8a3931be0ce822606ea5ca245",
    "v0.23.0": "kindest/node:v1.30.0@sha256:047357ac0cfea04663786a612ba1eaba9702bef25227a794b52890dd8bcd692e",
    "v0.24.0": "kindest/node:v1.31.0@sha256:53df588e04085fd41ae12de0c3fe4c72f7013bba32a20e7325357a1ac94ba865",
    "v0.25.0": "kindest/node:v1.31.2@sha256:18fbefc20a7113353c7b75b5c869d7145a6abd6269154825872dc59c1329912e",
    "v0.26.0": "kindest/node:v1.32.0@sha256:c48c62eac5da28cdadcf560d1d8616cfa6783b58f0d94cf63ad1bf49600cb027",
    "v0.27.0": "kindest/node:v1.32.2@sha256:f226345927d7e348497136874b6d207e0b32cc52154ad8323129352923a3142f",
    "v0.28.0": "kindest/node:v1.33.1@sha256:8d866994839cd096b3590681c55a6fa4a071fdaf33be7b9660e5697d2ed13002",
    "v0.29.0": "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f",
    "v0.30.0": "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
    "v0.31.0": "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f",
    "v0.32.0": "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
    "v0.33.0": "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
}
LATEST_KIND = "v0.33.0"
DEFAULT_IMAGE = KIND_DEFAULT_IMAGES[LATEST_KIND]  # the current kind release's node image (docker provider's)
# kind's defaults.Image as it sits in the kind binary's string data.
_KIND_IMAGE_CONST = re.compile(rb"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")
# What apt prints when it cannot reach its mirror (or the proxy it was given).
_OFFLINE = re.compile(
    r"Temporary failure resolving|Could not resolve|Could not connect|Failed to fetch|"
    r"Network is unreachable|Connection (refused|timed out|failed)|Unable to connect|No route to host"
)
_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class NodeImage:
    image: str | None  # what to create the nodes from (None: left to kind)
    base: str | None
    action: str  # "has python3" | "cached" | "built" | "left to kind"
    source: str = ""  # where the base came from, when not from --image or the kind binary

    def describe(self) -> str:
        if self.image is None:
            return f"left to kind ({self.source}); python3 from apt in each node if it lacks one"
        if self.source:
            return f"{self._what()}; {self.source}"
        return self._what()

    def _what(self) -> str:
        if self.action == "has python3":
            return f"{self.image} (has python3)"
        return f"{self.image} ({self.action}: {self.base} + python3)"


def default_image(kind_version: str) -> str | None:
    """kind's default node image for `kind version`'s output ("kind v0.32.0 go1.24 linux/amd64");
    None for a release not in KIND_DEFAULT_IMAGES (a development build, a newer release)."""
    words = kind_version.split()
    release = words[1] if len(words) > 1 and words[0] == "kind" else (words[0] if words else "")
    return KIND_DEFAULT_IMAGES.get(release)


def kind_binary_image(binary) -> str | None:
    """The default node image compiled into the kind executable BINARY (kind's defaults.Image), or
    None when it holds no such constant or several different ones (a wrapper, a shim, not kind)."""
    import mmap

    try:
        with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = {m.group(0) for m in _KIND_IMAGE_CONST.finditer(data)}
    except (OSError, ValueError):  # unreadable, or empty (mmap of 0 bytes)
        return None
    return found.pop().decode() if len(found) == 1 else None


def installed_kind_image(kind_version: Callable[[], str]) -> tuple[str | None, str]:
    """(kind's default node image, where it came from ("" for the binary itself)) for the kind on
    PATH: its binary's constant, else KIND_DEFAULT_IMAGES by KIND_VERSION() (`kind version`)."""
    import shutil

    binary = shutil.which("kind")
    if binary is not None:
        found = kind_binary_image(binary)
        if found is not None:
            return found, ""
    version = kind_version()
    release = version.split()[1] if version.startswith("kind ") else version
    why = f"{binary or 'kind'} holds no kindest/node default image"
    table = default_image(version)
    if table is not None:
        return table, f"{why}: {release}'s from nppctl's table"
    return None, f"{why} and {release or 'its release'} is not in nppctl's table"


def derived_tag(base: str) -> str:
    """nppctl-node:<tag> for BASE: the reference without its digest (the base-ID label pins the
    exact image), without docker.io/ and library/, ":latest" added when it has no tag; every
    character a tag may not hold (/, :, @ ...) becomes "_"; longer than 128: 115 characters, "-" and
    12 hex digits of its SHA-256. kindest/node:v1.36.1@sha256:... -> nppctl-node:kindest_node_v1.36.1."""
    ref = base.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        ref += ":latest"
    for prefix in ("docker.io/", "library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
    tag = _TAG_CHARS.sub("_", ref)
    if tag[0] in ".-":
        tag = "_" + tag
    if len(tag) > 128:
        tag = tag[:115] + "-" + hashlib.sha256(ref.encode()).hexdigest()[:12]
    return f"{DERIVED_REPO}:{tag}"


def _client(client):
    if client is not None:
        return client
    from nppctl.access.nodes import docker_client

    return docker_client()


def base_image(base: str, client, say: Callable[[str], None]):
    """The base image object, pulled when not on this machine (as kind pulls its node image)."""
    import docker

    try:
        return client.images.get(base)
    except docker.errors.ImageNotFound:
        pass
    say(f"pulling {base}")
    try:
        return client.images.pull(base)
    except docker.errors.APIError as err:
        from nppctl.access.localimages import usable_line

        raise NppctlError(
            f"node image {base} is not on this machine and could not be pulled ({err.explanation or err}): "
            f"`docker pull {base}`, or pass --image with a local node image: {usable_line(client)}"
        ) from err


def has_python(image: str, client=None) -> bool:
    """Whether IMAGE's /usr/bin/python3 imports every module the plugin uses (a throwaway container)."""
    import docker

    from nppctl.access import throwaway

    client = _client(client)
    with throwaway.container(
        client, "probe", image, command=PROBE[1:], entrypoint=[PYTHON], network_mode="none"
    ) as box:
        try:
            box.start()
            return box.wait(timeout=60).get("StatusCode") == 0  # 1: a module missing
        except docker.errors.APIError as err:
            if "no such file" in str(err).lower() or "not found" in str(err).lower():
                return False  # no /usr/bin/python3: the engine could not start it
            raise


def ensure_python_image(
    base: str, *, say: Callable[[str], None] | None = None, client=None
) -> NodeImage:
    """The image to create nodes from so that their python3 runs the plugin (see the module doc)."""
    import docker

    say = say or (lambda _text: None)
    client = _client(client)
    img = base_image(base, client, say)
    tag = derived_tag(base)
    try:
        made = client.images.get(tag)
    except docker.errors.ImageNotFound:
        made = None
    if made is not None and (made.labels or {}).get(LABEL_BASE_ID) == img.id:
        return NodeImage(tag, base, "cached")
    say(f"checking {PYTHON} in {base}")
    if has_python(base, client):
        return NodeImage(base, base, "has python3")
    _build(client, base, img, tag, say)
    if made is not None:  # the tag now names the new build: drop the stale one if nothing uses it
        try:
            client.images.remove(made.id, noprune=False)
        except docker.errors.APIError:
            pass
    return NodeImage(tag, base, "built")


def _build(client, base: str, img, tag: str, say: Callable[[str], None]) -> None:
    import docker

    from nppctl.access import throwaway

    # No labels, no env of its own: `docker commit` would keep them in the image (its name is nppctl's).
    cannot = f"cannot start a container of {base} to add python3"
    with throwaway.container(client, "build", img.id, labelled=False, fails=cannot,
                             entrypoint=["sleep", "infinity"], command=[], init=False) as box:
        try:
            box.start()
        except docker.errors.APIError as err:
            raise NppctlError(f"{cannot}: {err.explanation or err}") from err
        _apt(box, ["apt-get", "--version"], say, base, missing=f"{base} has no apt-get")
        _apt(box, ["apt-get", "update"], say, base)
        _apt(box, ["apt-get", "install", "-y", "--no-install-recommends", "python3"], say, base)
        _apt(box, ["apt-get", "clean"], say, base)
        _apt(box, ["find", "/var/lib/apt/lists", "-mindepth", "1", "-delete"], say, base)
        code, out = box.exec_run(PROBE)
        if code != 0:
            why = out.decode(errors="replace").strip()[-200:]
            raise NppctlError(f"python3 installed in {base} still cannot run the plugin: {why}")
        box.kill()
        say(f"committing {tag}")
        cfg = img.attrs.get("Config") or {}
        labels = dict(cfg.get("Labels") or {})
        labels.update({LABEL_BASE: base, LABEL_BASE_ID: img.id})
        conf = {
            # An empty list, not None: None would keep the build container's `sleep infinity`.
            "Entrypoint": cfg.get("Entrypoint") or [],
            "Cmd": cfg.get("Cmd") or [],
            "Env": cfg.get("Env") or [],
            "Labels": labels,
            "WorkingDir": cfg.get("WorkingDir") or "",
            "User": cfg.get("User") or "",
        }
        if cfg.get("StopSignal"):
            conf["StopSignal"] = cfg["StopSignal"]
        repo, _, name = tag.partition(":")
        box.commit(repository=repo, tag=name, conf=conf,
                   message=f"nppctl: {base} plus python3 from its own apt (no Recommends)")


def proxy_env(environ) -> dict[str, str]:
    """The proxy variables apt gets in the build container, as kind gives them to its nodes: each of
    HTTP_PROXY, HTTPS_PROXY and NO_PROXY from ENVIRON (upper case first), in both cases. The
    container already holds ~/.docker/config.json's proxies (the Docker SDK puts them in, as kind
    v0.33+ does for its nodes when the environment names none); these override them, lower case
    (which apt reads) too."""
    env = {}
    for name in PROXY_VARS[:3]:
        value = environ.get(name) or environ.get(name.lower())
        if value:
            env[name] = env[name.lower()] = value
    return env


def _apt(box, argv: list[str], say, base: str, missing: str | None = None) -> None:
    """Run ARGV in the build container, each output line to `say`; a failure is one NppctlError line."""
    api = box.client.api
    env = proxy_env(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    run = api.exec_create(box.id, argv, environment=env)
    lines: list[str] = []
    pending = ""
    for chunk in api.exec_start(run["Id"], stream=True):
        pending += chunk.decode(errors="replace")
        *done, pending = re.split(r"[\r\n]", pending)
        for line in (ln.strip() for ln in done):
            if line:
                lines.append(line)
                say(f"{argv[0]} {argv[1] if len(argv) > 1 else ''}: {line}"[:160])
    if pending.strip():
        lines.append(pending.strip())
    code = api.exec_inspect(run["Id"])["ExitCode"]
    offline = next((ln for ln in lines if _OFFLINE.search(ln)), None)
    fetched = any(ln.startswith("Hit:") or re.match(r"Fetched [1-9]", ln) for ln in lines)
    if argv[1:2] == ["update"] and offline and not fetched:
        code = code or 1  # apt-get update may exit 0 having fetched nothing
    if code == 0:
        return
    if missing and code in (126, 127):
        raise NppctlError(f"{missing}: use a Debian-based node image, or one with python3 in it")
    if offline:
        raise NppctlError(
            f"apt cannot reach its mirror while adding python3 to {base} ({offline[:160]}): apt runs "
            "inside a node container and needs the internet there, or a proxy in HTTP_PROXY/HTTPS_PROXY "
            "or ~/.docker/config.json's proxies (nppctl and kind pass them into nodes); or pass --image "
            "with a node image that has python3"
        )
    last = lines[-1] if lines else f"exit {code}"
    raise NppctlError(f"adding python3 to {base}: `{' '.join(argv)}` failed: {last[:200]}")


def config_images(config) -> set[str]:
    """Node images a kind config names per node (kind's --image would override them)."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return set()
    return {str(n["image"]) for n in data.get("nodes") or [] if isinstance(n, dict) and n.get("image")}


def image_for_up(provider, image: str | None, say: Callable[[str], None], config=None) -> NodeImage:
    """What `up` creates nodes from: ensure_python_image() of --image, else of the provider's default
    (the docker provider's; the installed kind's, see installed_kind_image). Image None leaves it to
    kind and python3 to apt in each node: a --config that names node images itself, or a kind whose
    default image nppctl cannot tell."""
    base, source = image, ""
    if base is None and provider.name == "docker":
        base = DEFAULT_IMAGE
    if base is None:
        if config is not None and config_images(config):
            return NodeImage(None, None, "left to kind", f"{config} names its node images")
        base, source = installed_kind_image(provider.version)
        if base is None:
            return NodeImage(None, None, "left to kind", source)
    chosen = ensure_python_image(base, say=say)
    chosen.source = source
    return chosen
