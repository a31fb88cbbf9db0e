"""The lab's life cycle, the parts `up` and `down` share: actions, each one status line (as kind), run
in order (run_actions); the checks `up` makes before it writes anything (preflight) and the error it
ends with when it fails (after_failure); which provider made a cluster; `down`; the step that proves
the plugin. `up` itself, its typed context and its list of actions: nppctl/lab/up.py. The lab's
on-disk record: nppctl/lab/labstate.py. The actions report as steps to the caller's Steps (the face
draws them: a spinner, then ✓ or ✗); nothing here prints.

Fail-safe: `up` checks what it needs (valid name, Docker engine, kind on PATH, a readable config, the
plugin) before it writes anything; a failure or Ctrl-C afterwards removes what that run created when no
cluster was made, else names what is left and the command that removes it. `down --purge` removes only
what the lab's record lists, and refuses before deleting anything when it lists anything else
(labstate.LabState.check_purge).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nppctl.access.providers.base import kind_node_names
from nppctl.errors import Interrupted, NppctlError, check_name, explain, one_line
from nppctl.lab import kindconfig, labshape
from nppctl.lab.labshape import UpOptions
from nppctl.lab.labstate import LabState

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


# ---------------------------------------------------------------- up's checks and failures


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
        kindconfig.read_kind_config(opts.config, opts.name)
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


def after_failure(
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
        network = provider.undo_network() if provider is not None else None
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


def choose_provider(opts: UpOptions) -> str:
    """opts.provider, settled: when --provider was not asked (labshape.asked), an existing cluster's own
    provider (detect_provider), else the default. Returns it."""

    if not labshape.asked(opts, "provider"):
        opts.provider = detect_provider(opts.name) or opts.provider
    return opts.provider


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
