"""The lab's life cycle: `up` and `down` as lists of actions, each one status line (as kind): the actions
report as steps to the caller's Steps (the face draws them: a spinner, then ✓ or ✗); nothing here prints.

What nppctl creates on the host (rendered kind config, mount folders, its state record) is written down
in a state folder, ./.nppctl/<cluster>/ (or $NPPCTL_STATE_DIR/<cluster>/), so `down --purge` removes exactly
that and nothing else.

Fail-safe: `up` checks what it needs (valid name, Docker engine, kind on PATH, a readable config, the
plugin) before it writes anything; a failure or Ctrl-C afterwards removes what that run created when no
cluster was made, else names what is left and the command that removes it. `down --purge` removes only
what the state file lists inside the lab folder (the working folder or the state folder), and only the
kinds of path nppctl creates (folders, removed only when empty; its own two files in the state folder);
anything else makes it refuse before deleting anything.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nppctl.access.providers.base import ClusterSpec, kind_node_names
from nppctl.errors import Interrupted, NppctlError, check_name, explain, one_line
from nppctl.lab import kindconfig, labshape
from nppctl.lab.kindconfig import MOUNT_POINT, read_kind_config, render_kind_config  # noqa: F401 - their home
from nppctl.lab.labshape import UpOptions, half_made  # noqa: F401 - their home: what up asks, what is there

STATE_FILE = "state.json"
KIND_CONFIG_FILE = "kind-config.yaml"
OWN_FILES = (STATE_FILE, KIND_CONFIG_FILE)  # the only files nppctl writes (in the state folder)


# ---------------------------------------------------------------- actions


@dataclass
class Action:
    """One step: `run(say)` does it (say(text) updates the spinner) and may return a detail for its line."""

    title: str
    run: Callable[[Callable[[str], None]], str | None]


class Steps(Protocol):
    """Where up and down report (the face's nppctl.cli.render.Steps: one line per step, as kind prints
    them). Every text is plain text, never markup."""

    def step(self, title: str) -> None: ...  # an action begins
    def say(self, text: str) -> None: ...  # progress of the action running
    def done(self, detail: str | None = None) -> None: ...  # it ended well
    def fail(self) -> None: ...  # it failed (the exception follows)
    def line(self, text: str, ok: bool | None = None) -> None: ...  # a line of its own


def run_actions(actions: list[Action], steps: Steps) -> None:
    """Run each action as a step of STEPS: done with its detail, or failed and stop."""
    for action in actions:
        steps.step(action.title)
        try:
            detail = action.run(steps.say)
        except BaseException:
            steps.fail()
            raise
        steps.done(detail)


# ---------------------------------------------------------------- state record


def state_dir(name: str) -> Path:
    base = Path(os.environ.get("NPPCTL_STATE_DIR") or Path.cwd() / ".nppctl")
    return base.resolve() / check_name(name)


@dataclass
class LabState:
    """What nppctl made for one cluster: its provider, every host path it created (in order), and
    what the `up` that created it was asked (labshape.shape: roles, provider, image, pod_cidr)."""

    name: str
    provider: str
    created: list[str] = field(default_factory=list)
    asked: dict = field(default_factory=dict)
    made_now: list[str] = field(default_factory=list, repr=False)  # created by this run (not saved)

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = state_dir(name) / STATE_FILE
        if not path.is_file():
            return None
        from nppctl.access.providers import PROVIDER_NAMES

        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise NppctlError(
                f"state file {path} is unreadable ({one_line(err)}): fix or remove it "
                f"(nppctl's record of what `up --name {name}` created)"
            ) from None
        created = data.get("created", []) if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("name") != name
            or data.get("provider") not in PROVIDER_NAMES
            or not isinstance(created, list)
            or not all(isinstance(c, str) for c in created)
        ):
            raise NppctlError(
                f"state file {path} is corrupt (needs name {name!r}, provider kind|docker and a list "
                "of created paths): fix or remove it"
            )
        asked = data.get("asked")
        return cls(name=name, provider=data["provider"], created=list(created),
                   asked=asked if isinstance(asked, dict) else {})

    def make_dir(self, path: Path) -> Path:
        """mkdir -p PATH, recording each folder this call made."""
        path = path.resolve()
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for folder in reversed(missing):
            self._record(folder)  # first: a Ctrl-C between the two leaves no folder unrecorded
            folder.mkdir()
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
        if not path.exists():
            self._record(path)  # recorded before writing, so the record lists itself
        data = {"name": self.name, "provider": self.provider, "created": self.created}
        if self.asked:
            data["asked"] = self.asked
        path.write_text(json.dumps(data, indent=2) + "\n")

    def undo(self) -> list[str]:
        """Remove what this run created (newest first; folders only when empty); returns what stays.

        The state file goes too when this run made it, else it is rewritten without this run's paths."""
        made = [Path(raw) for raw in self.made_now]
        self.created = [c for c in self.created if c not in self.made_now]
        self.made_now = []
        state_file = state_dir(self.name) / STATE_FILE
        if state_file.exists() and state_file not in made:
            self.save()
        return self._remove(reversed(made))[1]

    def check_purge(self) -> None:
        """Refuse (NppctlError, one line) unless every recorded path is one nppctl may remove: an
        absolute, normalised path inside the lab folder (the working folder or the state folder, or the
        folder holding state folders), not a symlink, and a file only when it is one of nppctl's own
        files in the state folder."""
        own = state_dir(self.name)
        lab = Path.cwd().resolve()
        where = own / STATE_FILE
        base = own.parent  # ./.nppctl or $NPPCTL_STATE_DIR: a folder up may have made, removed when empty
        for raw in self.created:
            path = Path(raw)
            reason = None
            if not path.is_absolute() or os.path.normpath(raw) != raw:
                reason = "not an absolute, normalised path"
            elif path.is_symlink():
                reason = "a symlink (nppctl makes none)"
            elif not (path.resolve().is_relative_to(lab) or path.resolve().is_relative_to(own)
                      or path.resolve() == base):
                reason = f"outside the lab folder {lab} and the state folder {own}"
            elif path.resolve() == lab:
                reason = "the lab folder itself"
            elif path.exists() and not path.is_dir() and not (path.parent == own and path.name in OWN_FILES):
                reason = f"a file nppctl does not write (it writes only {', '.join(OWN_FILES)} in {own})"
            if reason:
                raise NppctlError(
                    f"refusing to purge: {where} lists {raw!r}, {reason}; nothing was deleted "
                    "(fix or remove that state file)"
                )

    def purge(self) -> tuple[int, list[str]]:
        """Remove what was recorded, newest first (check_purge first: all or nothing). Folders holding
        files nppctl did not make are kept. Returns (paths removed, folders kept)."""
        self.check_purge()
        return self._remove(Path(raw) for raw in reversed(self.created))

    @staticmethod
    def _remove(paths) -> tuple[int, list[str]]:
        removed, kept = 0, []
        for path in paths:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
            elif path.is_dir() and not path.is_symlink():
                try:
                    path.rmdir()
                    removed += 1
                except OSError:
                    kept.append(str(path))
        return removed, kept

    def _record(self, path: Path) -> None:
        if str(path) not in self.created:
            self.created.append(str(path))
            self.made_now.append(str(path))


# ---------------------------------------------------------------- cluster shape


def default_mounts(cluster: str, workers: int, base: Path) -> dict[str, Path]:
    """The course's mount folders: tmp/cp, tmp/w1, tmp/w2, ... (under tmp/<cluster>/ unless it is `kind`)."""
    root = base / "tmp" if cluster == "kind" else base / "tmp" / cluster
    names = kind_node_names(cluster, ["control-plane"] + ["worker"] * workers)
    folders = ["cp"] + [f"w{i}" for i in range(1, workers + 1)]
    return {node: (root / folder).resolve() for node, folder in zip(names, folders, strict=True)}


# ---------------------------------------------------------------- up




HOST_NAME_MAX = 64  # Linux's limit on a host name: kind names each node's host after its container


def preflight(opts: UpOptions, provider) -> bool:
    """What `up` needs, checked before it writes or creates anything: the name (kind's rule, and its
    longest node name within HOST_NAME_MAX), --config without --workers, the Docker engine, kind on
    PATH (kind provider), a readable config, the plugin (a user's file must be a #! script or a binary:
    nppctl.build.plugincheck; each node asks it CNI VERSION at install; its --conf rendered and
    checked for every node to be made: install.check_conf),
    the pod CIDR and enough /24s in it for every node, and the node image
    (on this machine, or known to its registry) when a cluster is to be created. Returns whether the
    cluster exists."""
    import shutil

    from nppctl.access.nodes import docker_client
    from nppctl.lab import install, subnets

    check_name(opts.name)
    if opts.config is not None and labshape.asked(opts, "workers"):
        raise NppctlError(
            f"--config {opts.config} and --workers {opts.workers} both say how many nodes: the config's "
            "nodes win, so drop --workers (or drop --config)"
        )
    _check_mirrors(opts, provider)
    subnets.parse_cidr(opts.pod_cidr, "--pod-cidr")
    if opts.config is not None:
        read_kind_config(opts.config, opts.name)
        if opts.keep_kindnet and kindconfig.load(opts.config, opts.name).disable_default_cni:
            raise NppctlError(
                f"--keep-kindnet keeps kind's default CNI, but {opts.config} sets networking."
                "disableDefaultCNI: true, so kind would never deploy kindnet: drop --keep-kindnet (nppctl's "
                "keeper routes the nodes), or use a config without disableDefaultCNI"
            )
    roles = labshape.roles(opts)
    longest = max(kind_node_names(opts.name, roles), key=len)
    if len(longest) > HOST_NAME_MAX:
        raise NppctlError(
            f"--name {opts.name!r} is too long: its node {longest!r} has {len(longest)} characters, and a "
            f"node's host name may have at most {HOST_NAME_MAX}: use a name of at most "
            f"{HOST_NAME_MAX - len(longest) + len(opts.name)} characters"
        )
    cidr_what = f"{opts.config}'s podSubnet" if opts.config is not None else "--pod-cidr"
    subnets.split(labshape.pod_cidr(opts), len(roles), what=cidr_what)
    pf = install.resolve_plugin(opts.plugin)
    if opts.conf is not None:
        install.check_conf(opts.conf, pf, labshape.pod_cidr(opts), kind_node_names(opts.name, roles))
    if provider.has_kubernetes and shutil.which("kind") is None:
        from nppctl.access.providers.kind import INSTALL_HINT

        raise NppctlError(f"kind not found on PATH: {INSTALL_HINT}")
    client = docker_client()
    existed = provider.exists(opts.name)
    if not existed:
        _check_image(opts, provider, client)
    return existed


def _check_image(opts: UpOptions, provider, client) -> None:
    """The node image `up` would create nodes from (--image, else the docker provider's default; kind
    picks its own) is on this machine, or its registry knows it (a manifest look-up: nothing pulled)."""
    import docker

    image = opts.image
    if image is None and provider.name == "docker":
        from nppctl.access.nodeimage import DEFAULT_IMAGE

        image = DEFAULT_IMAGE
    if image is None:
        return
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as err:
        raise NppctlError(
            f"node image {image}: the Docker engine could not look it up ({one_line(err)})"
        ) from None
    try:
        client.images.get_registry_data(image)
    except docker.errors.APIError as err:
        raise NppctlError(
            f"node image {image} is not on this machine and its registry does not give it "
            f"({one_line(explain(err) or err)}): pass --image with a local node image "
            "(`docker images`), or pull it first"
        ) from None


def _check_mirrors(opts: UpOptions, provider) -> None:
    """--registry-mirror: valid URLs (normalised in OPTS), and only for nodes that run containerd."""
    from nppctl.access import registrymirror

    if not opts.registry_mirrors:
        return
    mirrors = tuple(dict.fromkeys(registrymirror.parse(raw) for raw in opts.registry_mirrors))
    if not provider.has_kubernetes:
        raise NppctlError(
            f"--registry-mirror is for the containerd of kind nodes; --provider {provider.name}'s nodes "
            "run none (no pods pull images there): drop --registry-mirror, or use --provider kind"
        )
    opts.registry_mirrors = mirrors


def _after_failure(
    err: BaseException, opts: UpOptions, provider, state: LabState, existed: bool
) -> Exception:
    """The error `up` ends with: what went wrong, what this run left, and the command that removes it.
    Without a cluster to show for it (none made, or Ctrl-C took back the one this run was making), what
    this run created is removed first, and "nothing left behind" is said only once that is checked.
    A second Ctrl-C does not stop this clean-up."""
    from nppctl.access.throwaway import sigint_held

    interrupted = not isinstance(err, Exception)
    if interrupted:
        what = "interrupted"
    elif isinstance(err, NppctlError):
        what = str(err)
    else:
        what = explain(err) or f"{type(err).__name__}: {one_line(err)}"
    with sigint_held():
        if interrupted:
            from nppctl.access.nodes import stop_node_work

            stop_node_work()
        now = _still_there(provider, opts.name)
        if now and interrupted and not existed:  # Ctrl-C: the cluster this run was making goes too
            now = _take_back(provider, opts.name)
        purge = f"`nppctl down --purge --name {opts.name}`"
        if not now:
            made = list(state.made_now)
            state.undo()
            found = _left_behind(opts, provider, [p for p in made if os.path.lexists(p)])
            left = "nothing left behind" if not found else "left behind: " + "; ".join(found)
        elif existed:
            left = (f"cluster {opts.name!r} kept: finish with `nppctl up --name {opts.name}`, "
                    f"remove with {purge}")
        else:
            left = f"cluster {opts.name!r} is half made: {purge} removes it and the files this run created"
        if now and "nppctl down" in what:
            left = ""  # the message already says how to remove it
        if now:
            left = "; ".join([left, *_left_behind(opts, None, [])]).strip("; ")
    line = f"{what}; {left}" if left else what
    return Interrupted(line) if interrupted else NppctlError(line)


def _take_back(provider, name: str, within: float = 30.0) -> bool:
    """Delete cluster NAME that an interrupted `up` was making; True when it is still there after
    WITHIN seconds. A node container whose create the Ctrl-C cut off (kind's `docker run` dies with
    it) is listed for a few seconds before the engine can remove it ("No such container"), and a
    create already sent may add one: the cluster is gone when two looks a second apart find none."""
    deadline = time.monotonic() + within
    gone_once = False
    while True:
        if not _still_there(provider, name):
            if gone_once:
                return False
            gone_once = True
        else:
            gone_once = False
            try:
                provider.delete(name)
            except Exception:  # noqa: BLE001 - looked at again below: what stays is named
                pass
            if not _still_there(provider, name):
                gone_once = True
        if time.monotonic() >= deadline:
            return _still_there(provider, name)
        time.sleep(1.0)


def _still_there(provider, name: str) -> bool:
    try:
        return provider.exists(name)
    except Exception:  # noqa: BLE001 - cannot tell: assume the cluster is there, keep the files
        return True


def _left_behind(opts: UpOptions, provider, paths: list[str]) -> list[str]:
    """What a failed `up` still leaves, looked up in the engine and on disk, each with how to remove
    it: containers of the cluster (PROVIDER given: it is meant to be gone), this run's throwaway
    containers, the network this run made (PROVIDER's undo_network, when no container uses it), and
    PATHS (this run's, still there: folders holding files nppctl did not make)."""
    from nppctl.access import throwaway
    from nppctl.access.nodes import docker_client
    from nppctl.access.providers.base import LABEL_CLUSTER

    found = []
    try:
        client = docker_client()
        names = throwaway.leftovers(client)
        if provider is not None:
            nodes = client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={opts.name}"})
            names = sorted(c.name for c in nodes) + names
        if names:
            found.append(f"container(s) {', '.join(names)} (remove: `docker rm -f {' '.join(names)}`)")
        network = getattr(provider, "undo_network", lambda: None)()
        if network:
            found.append(f"network {network} (remove: `docker network rm {network}`)")
    except Exception as err:  # noqa: BLE001 - unchecked is not "nothing"
        found.append(f"the Docker engine could not be checked ({one_line(explain(err) or err)})")
    if paths:
        found.append(f"kept (hold other files): {', '.join(paths)}")
    return found


def sweep_strays(steps: Steps) -> None:
    """Remove the throwaway containers of nppctl runs that are gone (nppctl.access.throwaway.sweep), with one
    status line when there were any. Best effort: an engine that does not answer is left to the caller."""
    from nppctl.access import throwaway
    from nppctl.access.nodes import docker_client

    try:
        gone = throwaway.sweep(docker_client())
    except NppctlError:
        return
    if gone:
        steps.line(f"Removed {len(gone)} container(s) left by an nppctl that is gone: " + ", ".join(gone),
                   ok=True)


def up(opts: UpOptions, steps: Steps) -> dict[str, bool] | None:
    """Create (or keep) the cluster, label, install, wait for Ready. Returns Ready per node (kind)."""
    from nppctl.access.providers import get_provider

    recorded = LabState.load(opts.name)  # a corrupt record stops `up` before anything else
    choose_provider(opts)
    provider = get_provider(opts.provider)
    existed = preflight(opts, provider)
    state = recorded or LabState(name=opts.name, provider=opts.provider)
    if state.provider != opts.provider and existed:
        raise NppctlError(
            f"cluster {opts.name!r} was made by the {state.provider} provider: "
            f"run `nppctl down --name {opts.name}` first, or pass --provider {state.provider}"
        )
    if existed:  # the lab asked for, or one line saying how it differs: nothing is written before this
        differs = labshape.difference(opts, provider, state)
        if differs:
            raise NppctlError(differs)
    if not existed:  # what this lab is made as (a record left by a lab gone without --purge is replaced)
        state.asked = labshape.shape(opts)
    state.provider = opts.provider
    if provider.has_kubernetes and not existed:
        _inotify_line(steps)
    spec = ClusterSpec(name=opts.name, workers=opts.workers, image=opts.image)
    result: dict = {"ready": None, "pod_cidr": opts.pod_cidr}  # pod_cidr: a --config's podSubnet

    def prepare(say) -> str:
        from nppctl.lab import kindpatches

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
            patches = kindpatches.for_up(
                result["cgroup"], opts.registry_mirrors, user.data if user is not None else None
            )
            result["cgroup_note"] = patches.cgroup_note
            if user is not None:  # a copy: kindnet disabled (unless kept), hostPaths absolute
                text = kindconfig.render_copy(user, opts.name, opts.keep_kindnet, opts.mounts, patches)
            else:
                text = render_kind_config(
                    opts.name, spec.mounts, opts.workers, opts.pod_cidr, opts.keep_kindnet, patches
                )
            spec.config_file = state.write_file(state_dir(opts.name) / KIND_CONFIG_FILE, text)
            result["kindnet"] = opts.keep_kindnet and not (user is not None and user.disable_default_cni)
        state.save()
        what = f"{spec.workers} worker(s)"
        if spec.mounts:
            what += f", {len(spec.mounts)} mount folder(s) at {MOUNT_POINT}"
        return what + (f", config {spec.config_file}" if spec.config_file else "")

    def node_image(say) -> str:
        from nppctl.access.nodeimage import image_for_up

        if provider.exists(opts.name):
            return "cluster exists: its nodes keep their image"
        chosen = image_for_up(provider, opts.image, say, opts.config)
        spec.image = chosen.image  # None: left to kind
        return chosen.describe()

    def create(say) -> str:
        if provider.exists(opts.name):
            problem = half_made(provider, opts.name)
            if problem:
                raise NppctlError(
                    f"cluster {opts.name!r} exists but is half made ({problem}): remove it with "
                    f"`nppctl down --purge --name {opts.name}`, then run `nppctl up` again"
                )
            return "exists, kept"
        if hasattr(provider, "progress"):
            provider.progress = say  # kind's own progress lines under the spinner
        provider.create(spec)
        result["created"] = True
        return f"provider {provider.name}"

    def mirror(say) -> str:
        from nppctl.access import registrymirror

        done = registrymirror.write_hosts(opts.name, opts.registry_mirrors)
        counts = {what: sum(v == what for v in done.values()) for what in ("written", "unchanged")}
        registries = registrymirror.by_registry(opts.registry_mirrors)
        files = ", ".join(registrymirror.hosts_file(r) for r in registries)
        return f"{files} on {len(done)} node(s) (" + ", ".join(
            f"{n} {what}" for what, n in counts.items() if n) + ")"

    def register(say) -> str:
        from nppctl.access import kube

        result["subnets"] = kube.wait_registered(opts.name, opts.timeout)
        detail = ", ".join(f"{n} {cidr}" for n, cidr in result["subnets"].items())
        if result.get("kindnet") and result.get("created"):  # let kindnet lay its conflist first
            from nppctl.lab import install

            say("waiting for kindnet's conflist on every node")
            install.wait_kindnet(opts.name, opts.timeout)
            detail += "; kindnet kept and active"
        return detail

    def label(say) -> str:
        from nppctl.access import kube

        applied = kube.label_nodes(opts.name)
        return ", ".join(f"{n} {k}={v}" for n, labels in applied.items() for k, v in labels.items()) or "none"

    def install_plugin(say) -> str:
        from nppctl.lab import install

        subnets = result.get("subnets") or None  # the API's podCIDRs, read once every node registered
        done = install.install(
            opts.name,
            plugin=opts.plugin,
            pod_cidr=result["pod_cidr"],
            node_subnets=subnets,
            ensure_python=opts.ensure_python,
            keep_kindnet=opts.keep_kindnet,
            conf=opts.conf,
            record=opts.record,
            on_step=say,
        )
        failed = [r for r in done if r.outcome == "failed"]
        if failed:
            reasons = "; ".join(f"{r.node}: {r.error}" for r in failed)
            raise NppctlError(f"install failed on {len(failed)} of {len(done)} node(s), the others are done: "
                              f"{reasons}")
        split = f"subnets split from {result['pod_cidr']}"
        source = "subnets from the API's spec.podCIDR" if subnets else split
        warned = list(dict.fromkeys(w for r in done for w in r.warnings if "kindnet" in w))
        noted = list(dict.fromkeys(n for r in done for n in r.notes))
        return (f"{len(done)} node(s), {source}" + "".join(f"; warning: {w}" for w in warned)
                + "".join(f"; note: {n}" for n in noted))

    def wait_ready(say) -> str:
        from nppctl.access import kube

        result["ready"] = kube.wait_ready(opts.name, opts.timeout)
        return f"{len(result['ready'])} node(s) Ready"

    if provider.has_kubernetes:
        from nppctl.lab.kindpatches import host_cgroup_version

        result["cgroup"] = host_cgroup_version()
    actions = [
        Action("Preparing config and mount folders", prepare),
        *_cgroup_v1_line(result, existed),
        *([Action("Ensuring a node image with python3", node_image)] if opts.ensure_python else []),
        Action(f"Creating cluster {opts.name!r} ({provider.name})", create),
    ]
    if opts.registry_mirrors:
        from nppctl.access import registrymirror

        mirrors = "; ".join(f"{registry} → {', '.join(urls)}"
                            for registry, urls in registrymirror.by_registry(opts.registry_mirrors).items())
        actions.append(Action(f"Pointing every node's containerd at registry mirrors: {mirrors}", mirror))
    if provider.has_kubernetes:
        actions.append(Action("Waiting for every node to register with the API (podCIDRs)", register))
        actions.append(Action("Labelling workers node=node1, node2, ...", label))
    actions.append(Action(f"Installing plugin {opts.plugin} on every node", install_plugin))
    if provider.has_kubernetes:
        actions.append(
            Action(f"Waiting for every node to be Ready (timeout {opts.timeout:.0f}s)", wait_ready)
        )
    sweep_strays(steps)
    try:
        run_actions(actions, steps)
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        raise _after_failure(err, opts, provider, state, existed) from err
    prove_plugin(opts.name, opts.plugin, steps)
    return result["ready"]


def prove_plugin(name: str, plugin: str, steps: Steps, nodes: list[str] | None = None) -> None:
    """The step that proves the installed plugin works in every node (lab/proof.py): ✓ with what each
    node did, else ✗ and one error line naming the nodes and the plugin's own message. The lab stays as
    it is either way (a plugin that fails is the student's to fix, then `nppctl install`)."""
    from nppctl.lab import install, proof

    pf = install.resolve_plugin(plugin)
    steps.step(f"Proving {pf.type} works: ADD, ping, CHECK, DEL of a throwaway pod in each node")
    proofs = proof.prove(name, nodes, skeleton=pf.builtin and pf.type == install.BUILTIN["skel"])
    failed = proof.failure_line(name, proofs)
    if failed:
        steps.fail()
        for p in proofs:
            steps.line(f"{p.node}: {p.detail}", ok=p.ok)
        raise NppctlError(failed)
    skipped = {p.skipped for p in proofs if p.skipped}
    steps.done(skipped.pop() if skipped else f"{len(proofs)} node(s): " + "; ".join(
        f"{p.node} {p.address}" for p in proofs))


def _inotify_line(steps: Steps) -> None:
    """One warning line before a kind cluster is created on a host whose inotify limits are below kind's
    recommendation (lab/doctor.py says why and the remedy)."""
    from nppctl.lab.doctor import inotify_low

    low = inotify_low()
    if low:
        steps.line(f"warning: {low}")


def choose_provider(opts: UpOptions) -> str:
    """opts.provider, settled: when --provider was not asked (labshape.asked), an existing cluster's own
    provider (detect_provider), else the default. Returns it."""

    if not labshape.asked(opts, "provider"):
        opts.provider = detect_provider(opts.name) or opts.provider
    return opts.provider


def _cgroup_v1_line(result: dict, existed: bool) -> list[Action]:
    """The one status line of a cgroup v1 Docker host (after prepare rendered the kind config); none
    on cgroup v2, or when the cluster exists (kind is not run with that config)."""
    if existed or result.get("cgroup") != "1":
        return []
    return [Action("Docker host on cgroup v1", lambda _say: result.get("cgroup_note"))]


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
    from nppctl.access.nodes import list_nodes
    from nppctl.access.providers.docker import LABEL_PROVIDER

    try:
        found = list_nodes(name, stopped=True)  # a stopped node still tells who made it
    except NppctlError:
        found = []
    if any(n.container.labels.get(LABEL_PROVIDER) == "docker" for n in found):
        return "docker"
    if found:
        return "kind" if shutil.which("kind") else "docker"
    if shutil.which("kind"):
        from nppctl.access.providers.kind import KindProvider

        if KindProvider().exists(name):
            return "kind"
    return None


def down(name: str, purge: bool, steps: Steps) -> None:
    from nppctl.access.providers import get_provider

    check_name(name)
    if purge:
        recorded = LabState.load(name)  # a corrupt or hostile record refuses before anything is deleted
        if recorded is not None:
            recorded.check_purge()
    sweep_strays(steps)
    provider_name = detect_provider(name)
    actions = []
    if provider_name is None:
        steps.line(f"no cluster {name!r} found (nothing to delete)")
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
    run_actions(actions, steps)
