"""The lab's life cycle: `up` and `down` as lists of actions, each one status line with a spinner (as kind).

What nppctl creates on the host (rendered kind config, mount folders, its state record) is written down
in a state folder, ./.nppctl/<cluster>/ (or $NPPCTL_STATE_DIR/<cluster>/), so `down --purge` removes exactly
that and nothing else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nppctl import kindconfig
from nppctl.errors import NppctlError
from nppctl.kindconfig import MOUNT_POINT, read_kind_config, render_kind_config  # noqa: F401 - their home
from nppctl.providers.base import ClusterSpec, kind_node_names

STATE_FILE = "state.json"


# ---------------------------------------------------------------- actions


@dataclass
class Action:
    """One step: `run(say)` does it (say(text) updates the spinner) and may return a detail for its line."""

    title: str
    run: Callable[[Callable[[str], None]], str | None]


def run_actions(actions: list[Action], console) -> None:
    """Run each action under a spinner, then leave one line: ✓ title (detail), or ✗ title and stop."""
    for action in actions:
        started = time.monotonic()
        try:
            with console.status(f" {action.title} ...", spinner="dots") as spinner:
                detail = action.run(lambda text, t=action.title: spinner.update(f" {t}: {text}"))
        except BaseException:
            console.print(f" [red]✗[/] {action.title}", highlight=False)
            raise
        took = time.monotonic() - started
        extra = f" — {detail}" if detail else ""
        console.print(
            f" [green]✓[/] {action.title}{extra} [dim]({took:.1f}s)[/]", highlight=False, soft_wrap=True
        )


# ---------------------------------------------------------------- state record


def state_dir(name: str) -> Path:
    base = Path(os.environ.get("NPPCTL_STATE_DIR") or Path.cwd() / ".nppctl")
    return base.resolve() / name


@dataclass
class LabState:
    """What nppctl made for one cluster: its provider and every host path it created (in order)."""

    name: str
    provider: str
    created: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = state_dir(name) / STATE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(name=data["name"], provider=data["provider"], created=list(data.get("created", [])))

    def make_dir(self, path: Path) -> Path:
        """mkdir -p PATH, recording each folder this call made."""
        path = path.resolve()
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            self._record(folder)
        return path

    def write_file(self, path: Path, text: str) -> Path:
        self.make_dir(path.parent)
        if not path.exists():
            self._record(path.resolve())
        path.write_text(text)
        return path

    def save(self) -> None:
        path = state_dir(self.name) / STATE_FILE
        self.make_dir(path.parent)
        self._record(path)  # recorded before writing, so the record lists itself
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    def purge(self) -> tuple[int, list[str]]:
        """Remove what was recorded, newest first. Folders holding files nppctl did not make are kept."""
        removed, kept = 0, []
        for raw in reversed(self.created):
            path = Path(raw)
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed += 1
            elif path.is_dir():
                try:
                    path.rmdir()
                    removed += 1
                except OSError:
                    kept.append(raw)
        return removed, kept

    def _record(self, path: Path) -> None:
        if str(path) not in self.created:
            self.created.append(str(path))


# ---------------------------------------------------------------- cluster shape


def default_mounts(cluster: str, workers: int, base: Path) -> dict[str, Path]:
    """The course's mount folders: tmp/cp, tmp/w1, tmp/w2, ... (under tmp/<cluster>/ unless it is `kind`)."""
    root = base / "tmp" if cluster == "kind" else base / "tmp" / cluster
    names = kind_node_names(cluster, ["control-plane"] + ["worker"] * workers)
    folders = ["cp"] + [f"w{i}" for i in range(1, workers + 1)]
    return {node: (root / folder).resolve() for node, folder in zip(names, folders, strict=True)}


# ---------------------------------------------------------------- up


@dataclass
class UpOptions:
    name: str = "kind"
    config: Path | None = None
    workers: int = 2
    plugin: str = "nppnet"
    pod_cidr: str = "10.244.0.0/16"
    keep_kindnet: bool = False
    mounts: bool = True
    provider: str = "kind"
    image: str | None = None
    timeout: float = 300.0
    ensure_python: bool = True  # a node image without python3 gets it (nppctl.nodeimage, else apt per node)


def up(opts: UpOptions, console) -> dict[str, bool] | None:
    """Create (or keep) the cluster, label, install, wait for Ready. Returns Ready per node (kind)."""
    from nppctl.providers import get_provider

    provider = get_provider(opts.provider)
    state = LabState.load(opts.name) or LabState(name=opts.name, provider=opts.provider)
    if state.provider != opts.provider and provider.exists(opts.name):
        raise NppctlError(
            f"cluster {opts.name!r} was made by the {state.provider} provider: "
            f"run `nppctl down --name {opts.name}` first, or pass --provider {state.provider}"
        )
    state.provider = opts.provider
    spec = ClusterSpec(name=opts.name, workers=opts.workers, image=opts.image)
    result: dict = {"ready": None, "pod_cidr": opts.pod_cidr}  # pod_cidr: a --config's podSubnet

    def prepare(say) -> str:
        user = None
        if opts.config is not None:
            user = kindconfig.load(opts.config, opts.name)
            spec.workers, spec.mounts = user.workers, (user.mounts if opts.mounts else {})
            result["pod_cidr"] = _config_pod_cidr(opts, user)
        elif opts.mounts:
            spec.mounts = default_mounts(opts.name, opts.workers, Path.cwd())
        for folder in spec.mounts.values():
            state.make_dir(folder)
        if provider.has_kubernetes:
            if user is not None:  # a copy: kindnet disabled (unless kept), hostPaths absolute
                text = kindconfig.render_copy(user, opts.name, opts.keep_kindnet, opts.mounts)
            else:
                text = render_kind_config(
                    opts.name, spec.mounts, opts.workers, opts.pod_cidr, opts.keep_kindnet
                )
            spec.config_file = state.write_file(state_dir(opts.name) / "kind-config.yaml", text)
            result["kindnet"] = opts.keep_kindnet and not (user is not None and user.disable_default_cni)
        state.save()
        what = f"{spec.workers} worker(s)"
        if spec.mounts:
            what += f", {len(spec.mounts)} mount folder(s) at {MOUNT_POINT}"
        return what + (f", config {spec.config_file}" if spec.config_file else "")

    def node_image(say) -> str:
        from nppctl.nodeimage import image_for_up

        if provider.exists(opts.name):
            return "cluster exists, kept"
        chosen = image_for_up(provider, opts.image, say, opts.config)
        if chosen is None:
            return "left to kind; python3 from apt in each node if it lacks one"
        spec.image = chosen.image
        return chosen.describe()

    def create(say) -> str:
        if provider.exists(opts.name):
            return "exists, kept"
        if hasattr(provider, "progress"):
            provider.progress = say  # kind's own progress lines under the spinner
        provider.create(spec)
        result["created"] = True
        return f"provider {provider.name}"

    def register(say) -> str:
        from nppctl import kube

        result["subnets"] = kube.wait_registered(opts.name, opts.timeout)
        detail = ", ".join(f"{n} {cidr}" for n, cidr in result["subnets"].items())
        if result.get("kindnet") and result.get("created"):  # let kindnet lay its conflist first
            from nppctl import install

            say("waiting for kindnet's conflist on every node")
            install.wait_kindnet(opts.name, opts.timeout)
            detail += "; kindnet kept and active"
        return detail

    def label(say) -> str:
        from nppctl import kube

        applied = kube.label_nodes(opts.name)
        return ", ".join(f"{n} {k}={v}" for n, labels in applied.items() for k, v in labels.items()) or "none"

    def install_plugin(say) -> str:
        from nppctl import install

        subnets = result.get("subnets") or None  # the API's podCIDRs, read once every node registered
        done = install.install(
            opts.name,
            plugin=opts.plugin,
            pod_cidr=result["pod_cidr"],
            node_subnets=subnets,
            ensure_python=opts.ensure_python,
            keep_kindnet=opts.keep_kindnet,
            on_step=say,
        )
        split = f"subnets split from {result['pod_cidr']}"
        source = "subnets from the API's spec.podCIDR" if subnets else split
        warned = list(dict.fromkeys(w for r in done for w in r.warnings if "kindnet" in w))
        return f"{len(done)} node(s), {source}" + "".join(f"; warning: {w}" for w in warned)

    def wait_ready(say) -> str:
        from nppctl import kube

        result["ready"] = kube.wait_ready(opts.name, opts.timeout)
        return f"{len(result['ready'])} node(s) Ready"

    actions = [
        Action("Preparing config and mount folders", prepare),
        *([Action("Ensuring a node image with python3", node_image)] if opts.ensure_python else []),
        Action(f"Creating cluster {opts.name!r} ({provider.name})", create),
    ]
    if provider.has_kubernetes:
        actions.append(Action("Waiting for every node to register with the API (podCIDRs)", register))
        actions.append(Action("Labelling workers node=node1, node2, ...", label))
    actions.append(Action(f"Installing plugin {opts.plugin} on every node", install_plugin))
    if provider.has_kubernetes:
        actions.append(
            Action(f"Waiting for every node to be Ready (timeout {opts.timeout:.0f}s)", wait_ready)
        )
    run_actions(actions, console)
    return result["ready"]


def _config_pod_cidr(opts: UpOptions, user: kindconfig.KindConfig) -> str:
    """The pod CIDR of `up --config`: the config's networking.podSubnet (kind's default without one),
    which kind allocates the nodes' podCIDRs from; a different --pod-cidr is refused."""
    if opts.pod_cidr not in (UpOptions.pod_cidr, user.pod_subnet):
        raise NppctlError(
            f"--pod-cidr {opts.pod_cidr} differs from {user.path}'s networking.podSubnet {user.pod_subnet}: "
            "drop --pod-cidr, or set podSubnet in the config"
        )
    return user.pod_subnet


# ---------------------------------------------------------------- down


def detect_provider(name: str) -> str | None:
    """Which provider made cluster NAME: its state record, else its containers (the docker provider marks
    its own), else kind's cluster list. None: no such cluster."""
    import shutil

    state = LabState.load(name)
    if state is not None:
        return state.provider
    from nppctl.nodes import list_nodes
    from nppctl.providers.docker import LABEL_PROVIDER

    try:
        found = list_nodes(name)
    except NppctlError:
        found = []
    if any(n.container.labels.get(LABEL_PROVIDER) == "docker" for n in found):
        return "docker"
    if found:
        return "kind" if shutil.which("kind") else "docker"
    if shutil.which("kind"):
        from nppctl.providers.kind import KindProvider

        if KindProvider().exists(name):
            return "kind"
    return None


def down(name: str, purge: bool, console) -> None:
    from nppctl.providers import get_provider

    provider_name = detect_provider(name)
    actions = []
    if provider_name is None:
        console.print(f" no cluster {name!r} found (nothing to delete)", highlight=False)
    else:
        provider = get_provider(provider_name)

        def delete(say) -> str:
            if not provider.exists(name):
                return "already gone"
            provider.delete(name)
            return f"provider {provider_name}"

        actions.append(Action(f"Deleting cluster {name!r} ({provider_name})", delete))
    if purge:

        def remove_files(say) -> str:
            state = LabState.load(name)
            if state is None:
                return "nothing recorded"
            removed, kept = state.purge()
            return f"{removed} path(s) removed" + (
                f"; kept (hold files nppctl did not make): {', '.join(kept)}" if kept else ""
            )

        actions.append(Action("Removing the configs and mount folders nppctl created", remove_files))
    run_actions(actions, console)
