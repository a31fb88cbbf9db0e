"""kind cluster configs (kind.x-k8s.io/v1alpha4): read a user's, render nppctl's own, render a user's copy.

`nppctl up --config FILE` never hands FILE to kind as is: it renders a copy into .nppctl/<name>/ with
`networking.disableDefaultCNI: true` (unless --keep-kindnet), every hostPath made absolute, the
cluster's name, and the patches of nppctl.lab.kindpatches (cgroup v1, a registry mirror) after its own.
kind's defaults apply as kind applies them: a node without a role is a control plane, no nodes is
one control plane, no podSubnet is 10.244.0.0/16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nppctl.access.providers.base import kind_node_names
from nppctl.errors import NppctlError
from nppctl.lab import kindpatches
from nppctl.lab.kindpatches import UpPatches

API_VERSION = "kind.x-k8s.io/v1alpha4"
KIND_POD_SUBNET = "10.244.0.0/16"  # kind's default networking.podSubnet (IPv4)
MOUNT_POINT = "/npp-temp"


@dataclass
class KindConfig:
    """What nppctl needs of a kind config, with kind's defaults applied."""

    path: Path
    data: dict  # the file as parsed, roles defaulted
    roles: list[str]
    mounts: dict[str, Path]  # node name -> absolute host folder mounted at /npp-temp
    pod_subnet: str
    disable_default_cni: bool

    @property
    def workers(self) -> int:
        return self.roles.count("worker")


def load(path: Path, cluster: str) -> KindConfig:
    """Read PATH as kind would (roles, mounts, podSubnet, disableDefaultCNI); relative hostPaths are
    resolved against the current folder, as kind resolves them."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise NppctlError(f"cannot read kind config {path}: {err}") from None
    if not isinstance(data, dict) or data.get("kind") != "Cluster" or data.get("apiVersion") != API_VERSION:
        raise NppctlError(
            f"{path} is not a kind config: it needs `kind: Cluster` and `apiVersion: {API_VERSION}`"
        )
    nodes = data.get("nodes") or [{"role": "control-plane"}]
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise NppctlError(f"{path}: `nodes` must be a list of nodes (`- role: control-plane`, ...)")
    for node in nodes:
        node.setdefault("role", "control-plane")  # kind's default role
    data["nodes"] = nodes
    roles = [str(n["role"]) for n in nodes]
    if roles.count("control-plane") < 1 or any(r not in ("control-plane", "worker") for r in roles):
        raise NppctlError(f"{path}: nodes need one control-plane and roles control-plane|worker, got {roles}")
    mounts = {}
    for node_name, node in zip(kind_node_names(cluster, roles), nodes, strict=True):
        for mount in node.get("extraMounts") or []:
            if str(mount.get("containerPath", "")).rstrip("/") == MOUNT_POINT:
                mounts[node_name] = Path(str(mount["hostPath"])).expanduser().resolve()
    networking = data.get("networking") or {}
    return KindConfig(
        path=path,
        data=data,
        roles=roles,
        mounts=mounts,
        pod_subnet=str(networking.get("podSubnet") or KIND_POD_SUBNET),
        disable_default_cni=networking.get("disableDefaultCNI") is True,
    )


def read_kind_config(path: Path, cluster: str) -> tuple[int, dict[str, Path]]:
    """Workers and /npp-temp host mounts of a kind config (absolute, as kind resolves them)."""
    cfg = load(path, cluster)
    return cfg.workers, cfg.mounts


def render_copy(
    cfg: KindConfig, cluster: str, keep_kindnet: bool, mounts: bool = True, patches: UpPatches | None = None
) -> str:
    """The config nppctl hands kind for `up --config`: the user's, named CLUSTER, hostPaths absolute,
    without kindnet unless KEEP_KINDNET (a config that disables it itself keeps that), without
    its /npp-temp mounts when not MOUNTS (--no-mounts), PATCHES after the user's own (kindpatches)."""
    import copy

    data = copy.deepcopy(cfg.data)
    data["name"] = cluster
    for node in data["nodes"]:
        kept = []
        for mount in node.get("extraMounts") or []:
            if not mounts and str(mount.get("containerPath", "")).rstrip("/") == MOUNT_POINT:
                continue
            if "hostPath" in mount:
                mount["hostPath"] = str(Path(str(mount["hostPath"])).expanduser().resolve())
            kept.append(mount)
        if kept:
            node["extraMounts"] = kept
        else:
            node.pop("extraMounts", None)
    if not keep_kindnet:
        networking = data.get("networking") or {}
        networking["disableDefaultCNI"] = True
        data["networking"] = networking
    if patches is not None:
        kindpatches.merge(data, patches)
    head = f"# Rendered by `nppctl up` from {cfg.path.resolve()}"
    if not keep_kindnet and not cfg.disable_default_cni:
        head += "\n# (networking.disableDefaultCNI added: no kindnet, nppctl installs the CNI plugin)"
    return head + "\n" + kindpatches.dump(data)


def render_kind_config(
    cluster: str, mounts: dict[str, Path], workers: int, pod_cidr: str, keep_kindnet: bool,
    patches: UpPatches | None = None,
) -> str:
    """nppctl's own config (no --config): a control plane and WORKERS workers, MOUNTS at /npp-temp,
    then PATCHES (kindpatches) as top-level keys."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from nppctl.resources import resource_dir

    names = kind_node_names(cluster, ["control-plane"] + ["worker"] * workers)
    nodes = [
        {"role": "control-plane" if i == 0 else "worker", "mount": str(mounts[n]) if n in mounts else None}
        for i, n in enumerate(names)
    ]
    env = Environment(
        loader=FileSystemLoader(resource_dir("templates")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    text = env.get_template("kind-cluster.yaml.j2").render(
        name=cluster,
        nodes=nodes,
        pod_cidr=pod_cidr,
        keep_kindnet=keep_kindnet,
        mount_point=MOUNT_POINT,
    )
    return text + (kindpatches.as_yaml(patches) if patches is not None else "")
