"""What `up` adds to the kind config it renders, as kind's own documentation configures it.

- On a cgroup v1 Docker host (`docker info` CgroupVersion "1"; Docker before 20.10 says nothing and
  runs only v1, and kind reads it the same way): a kubeadmConfigPatches entry giving every kubelet
  `failCgroupV1: false` (Kubernetes 1.35+ kubelets refuse to start on cgroup v1 without it; older ones
  default to false). kind applies cluster-level patches to every node's kubeadm config; a user's own
  patches come first, and one that sets failCgroupV1 itself is left to decide.
- With `--registry-mirror`: a containerdConfigPatches entry pointing the CRI's registry config at
  /etc/containerd/certs.d (kind's local-registry guide), where nppctl.access.registrymirror writes each
  node's docker.io/hosts.toml once the nodes exist.

Interface: host_cgroup_version(client) -> "1" | "2"; for_up(cgroup_version, mirrors, user_data) ->
UpPatches; merge(data, patches) (a parsed config); as_yaml(patches) (text to append to one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nppctl.access.registrymirror import CERTS_D

KUBEADM_KEY = "kubeadmConfigPatches"
CONTAINERD_KEY = "containerdConfigPatches"
KUBELET_CGROUP_V1 = (
    "kind: KubeletConfiguration\n"
    "apiVersion: kubelet.config.k8s.io/v1beta1\n"
    "failCgroupV1: false\n"
)
CONTAINERD_CERTS_D = f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_D}"\n'


@dataclass
class UpPatches:
    kubeadm: list[str] = field(default_factory=list)
    containerd: list[str] = field(default_factory=list)
    cgroup_note: str | None = None  # the status line `up` prints on a cgroup v1 host

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in ((KUBEADM_KEY, self.kubeadm), (CONTAINERD_KEY, self.containerd)) if v}


def host_cgroup_version(client=None) -> str:
    """The Docker host's cgroup version as kind reads it: "2" only when `docker info` says so."""
    if client is None:
        from nppctl.access.nodes import docker_client

        client = docker_client()
    return "2" if str(client.info().get("CgroupVersion") or "") == "2" else "1"


def _kubeadm_patches(data: dict) -> list:
    """Every kubeadmConfigPatches entry of a config: cluster level and each node's."""
    found = list(data.get(KUBEADM_KEY) or [])
    for node in data.get("nodes") or []:
        if isinstance(node, dict):
            found += list(node.get(KUBEADM_KEY) or [])
    return found


def sets_fail_cgroup_v1(data: dict) -> bool:
    """Whether a kind config's own patches set the kubelets' failCgroupV1 (merge or JSON 6902)."""
    import yaml

    for patch in _kubeadm_patches(data):
        try:
            doc = yaml.safe_load(patch) if isinstance(patch, str) else patch
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "KubeletConfiguration" and "failCgroupV1" in doc:
            return True
    json6902 = list(data.get("kubeadmConfigPatchesJSON6902") or [])
    for node in data.get("nodes") or []:
        if isinstance(node, dict):
            json6902 += list(node.get("kubeadmConfigPatchesJSON6902") or [])
    return any("failCgroupV1" in str(p) for p in json6902)


def for_up(cgroup_version: str, mirrors: list | tuple = (), user_data: dict | None = None
           ) -> UpPatches:
    """The patches `up` adds for a host of CGROUP_VERSION ("1" | "2") and --registry-mirror MIRRORS,
    to nppctl's own config or to USER_DATA (a --config as parsed)."""
    patches = UpPatches()
    if cgroup_version != "2":
        if user_data is not None and sets_fail_cgroup_v1(user_data):
            patches.cgroup_note = "the kind config sets the kubelets' failCgroupV1 itself: left as it is"
        else:
            patches.kubeadm.append(KUBELET_CGROUP_V1)
            patches.cgroup_note = (
                "every kubelet gets failCgroupV1: false in the kind config "
                "(Kubernetes 1.35+ kubelets refuse cgroup v1 without it)"
            )
    if mirrors:
        patches.containerd.append(CONTAINERD_CERTS_D)
    return patches


def merge(data: dict, patches: UpPatches) -> dict:
    """Append PATCHES to a parsed kind config's own lists (kind applies them in order)."""
    for key, extra in patches.as_dict().items():
        data[key] = list(data.get(key) or []) + [p for p in extra if p not in (data.get(key) or [])]
    return data


def dump(data: dict) -> str:
    """YAML of DATA with every multi-line string a literal block, as kind's documentation writes patches."""
    import yaml

    class Literal(yaml.SafeDumper):
        pass

    Literal.add_representer(
        str, lambda dumper, text: dumper.represent_scalar(
            "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
        )
    )
    return yaml.dump(data, Dumper=Literal, sort_keys=False, default_flow_style=False)


def as_yaml(patches: UpPatches) -> str:
    """PATCHES as top-level YAML keys, to append to a rendered config that has none of its own."""
    data = patches.as_dict()
    return dump(data) if data else ""
