"""What `up` adds to the kind config it renders: failCgroupV1: false on a cgroup v1 Docker host, the
containerd registry config path for --registry-mirror; the mirror URL's validation and hosts.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra's tomli
    import tomli as tomllib

from nppctl.access import registrymirror
from nppctl.errors import NppctlError
from nppctl.lab import kindconfig, kindpatches

REPO = Path(__file__).resolve().parents[2]
COURSE = REPO / "cluster-configs" / "1master2workerMount.yaml"
USER_PATCHES = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
kubeadmConfigPatches:
- |
  kind: InitConfiguration
  nodeRegistration:
    kubeletExtraArgs:
      node-labels: "ingress-ready=true"
containerdConfigPatches:
- |
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
nodes:
- role: control-plane
- role: worker
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "tier=web"
"""


def _kubelet_patches(cfg: dict) -> list[dict]:
    docs = [yaml.safe_load(p) for p in cfg.get("kubeadmConfigPatches") or []]
    return [d for d in docs if d.get("kind") == "KubeletConfiguration"]


def _own(cgroup: str, mirrors=()) -> str:
    patches = kindpatches.for_up(cgroup, mirrors)
    return kindconfig.render_kind_config("kind", {}, 2, "10.244.0.0/16", False, patches)


def test_cgroup_v1_gives_every_kubelet_fail_cgroup_v1_false_in_nppctls_own_config(tmp_path):
    text = _own("1")
    cfg = yaml.safe_load(text)
    assert _kubelet_patches(cfg) == [
        {"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1", "failCgroupV1": False}
    ]
    assert "kubeadmConfigPatches:\n- |\n  kind: KubeletConfiguration\n" in text  # kind's docs' form
    assert "containerdConfigPatches" not in cfg
    (tmp_path / "c.yaml").write_text(text)  # still a config nppctl (and kind's rules) read
    assert kindconfig.load(tmp_path / "c.yaml", "kind").roles == ["control-plane", "worker", "worker"]
    assert kindpatches.for_up("1").cgroup_note.startswith("every kubelet gets failCgroupV1: false")


def test_cgroup_v2_changes_nothing():
    plain = kindconfig.render_kind_config("kind", {}, 2, "10.244.0.0/16", False)
    assert _own("2") == plain
    assert kindpatches.for_up("2").cgroup_note is None
    user = kindconfig.load(COURSE, "kind")
    assert kindconfig.render_copy(user, "kind", False, True, kindpatches.for_up("2", (), user.data)) == \
        kindconfig.render_copy(user, "kind", False, True)


def test_cgroup_v1_patch_comes_after_the_users_own_patches(tmp_path):
    (tmp_path / "user.yaml").write_text(USER_PATCHES)
    user = kindconfig.load(tmp_path / "user.yaml", "kind")
    patches = kindpatches.for_up("1", ("http://10.0.0.5:5000",), user.data)
    cfg = yaml.safe_load(kindconfig.render_copy(user, "kind", False, True, patches))
    kinds = [yaml.safe_load(p)["kind"] for p in cfg["kubeadmConfigPatches"]]
    assert kinds == ["InitConfiguration", "KubeletConfiguration"]  # the user's first, kept whole
    assert yaml.safe_load(cfg["kubeadmConfigPatches"][0])["nodeRegistration"]["kubeletExtraArgs"] == {
        "node-labels": "ingress-ready=true"
    }
    assert _kubelet_patches(cfg)[0]["failCgroupV1"] is False
    node_kinds = [yaml.safe_load(p)["kind"] for p in cfg["nodes"][1]["kubeadmConfigPatches"]]
    assert node_kinds == ["JoinConfiguration"]  # node-level patches untouched
    toml = [tomllib.loads(p) for p in cfg["containerdConfigPatches"]]
    assert toml[0] == {"plugins": {"io.containerd.grpc.v1.cri": {"containerd": {"snapshotter": "native"}}}}
    assert toml[1] == {"plugins": {"io.containerd.grpc.v1.cri": {"registry": {
        "config_path": "/etc/containerd/certs.d"}}}}
    assert cfg["networking"]["disableDefaultCNI"] is True and cfg["name"] == "kind"


def test_a_config_that_sets_fail_cgroup_v1_itself_is_left_to_decide(tmp_path):
    (tmp_path / "own.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
        "  kubeadmConfigPatches:\n  - |\n    kind: KubeletConfiguration\n    failCgroupV1: true\n"
    )
    user = kindconfig.load(tmp_path / "own.yaml", "kind")
    patches = kindpatches.for_up("1", (), user.data)
    assert patches.kubeadm == [] and "sets the kubelets' failCgroupV1 itself" in patches.cgroup_note
    cfg = yaml.safe_load(kindconfig.render_copy(user, "kind", False, True, patches))
    assert "kubeadmConfigPatches" not in cfg
    assert yaml.safe_load(cfg["nodes"][0]["kubeadmConfigPatches"][0])["failCgroupV1"] is True


def test_the_real_docker_hosts_cgroup_version_decides(docker_client):
    version = kindpatches.host_cgroup_version(docker_client)
    # the kernel's own answer: a unified hierarchy at /sys/fs/cgroup is v2
    assert version == ("2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1")
    cfg = yaml.safe_load(_own(version))
    assert bool(_kubelet_patches(cfg)) == (version == "1")


def test_registry_mirror_adds_the_certs_d_config_path():
    cfg = yaml.safe_load(_own("2", ("http://kind-registry:5000",)))
    assert [tomllib.loads(p) for p in cfg["containerdConfigPatches"]] == [
        {"plugins": {"io.containerd.grpc.v1.cri": {"registry": {"config_path": "/etc/containerd/certs.d"}}}}
    ]
    assert "kubeadmConfigPatches" not in cfg


def test_hosts_toml_names_each_mirror_then_docker_hub():
    text = registrymirror.hosts_toml("docker.io", ["http://10.0.0.5:5000", "https://cache.school.example"])
    data = tomllib.loads(text)
    assert data["server"] == "https://registry-1.docker.io"
    assert list(data["host"]) == ["http://10.0.0.5:5000", "https://cache.school.example"]  # in order
    assert all(h == {"capabilities": ["pull", "resolve"]} for h in data["host"].values())


def test_hosts_toml_of_another_registry_falls_back_to_that_registry():
    data = tomllib.loads(registrymirror.hosts_toml("registry.k8s.io", ["http://nppctl-registry:5000"]))
    assert data["server"] == "https://registry.k8s.io"
    assert list(data["host"]) == ["http://nppctl-registry:5000"]


def test_mirrors_are_grouped_by_registry_in_the_order_given():
    given = ["http://a:5000", "registry.k8s.io=http://b:5000", "https://c", "quay.io=http://a:5000",
             "Registry.K8s.io=http://B:5000/", "registry.k8s.io=http://d:5000"]
    assert registrymirror.by_registry([registrymirror.parse(m) for m in given]) == {
        "docker.io": ["http://a:5000", "https://c"],
        "registry.k8s.io": ["http://b:5000", "http://d:5000"],
        "quay.io": ["http://a:5000"],
    }


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("http://10.0.0.5:5000", "http://10.0.0.5:5000"),
        ("HTTPS://Cache.School.example/", "https://cache.school.example"),
        ("http://kind-registry:5000", "http://kind-registry:5000"),
        ("http://[fd00::5]:5000", "http://[fd00::5]:5000"),
    ],
)
def test_a_mirror_url_is_normalised(raw, url):
    assert registrymirror.parse(raw) == registrymirror.Mirror("docker.io", url)


@pytest.mark.parametrize(
    ("raw", "registry", "url"),
    [
        ("registry.k8s.io=http://nppctl-registry:5000", "registry.k8s.io", "http://nppctl-registry:5000"),
        ("Quay.IO=HTTPS://Cache.example/", "quay.io", "https://cache.example"),
        ("index.docker.io=http://m:5000", "docker.io", "http://m:5000"),
        ("localhost:5000=http://m:5000", "localhost:5000", "http://m:5000"),
        ("http://m:5000/?a=b".split("?")[0], "docker.io", "http://m:5000"),
    ],
)
def test_a_registry_may_be_named_before_its_mirror(raw, registry, url):
    assert registrymirror.parse(raw) == registrymirror.Mirror(registry, url)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty or holds white space"),
        ("10.0.0.5:5000", "the scheme must be http or https"),
        ("ftp://mirror", "the scheme must be http or https"),
        ("http://", "no host"),
        ("http://mirror:99999", "not a URL"),
        ("http://mirror:0", "the port must be 1-65535"),
        ("http://mirror:", "the port must be 1-65535"),
        ("http://mirror:50x0", "not a URL"),
        ("http://mirror/v2/dockerhub", "no path, query or fragment"),
        ("http://mirror?x=1", "no path, query or fragment"),
        ("http://me:secret@mirror", "no user or password"),
        ('http://mi"rror', "is not a host name or an IP address"),
        ("http://mirror .example", "empty or holds white space"),
        ("http://localhost:5000", "inside a node is the node itself"),
        ("http://127.0.0.1:5000", "inside a node is the node itself"),
        ("k8s=http://m:5000", "'k8s' is not a registry's host name"),
        ("registry.k8s.io/x=http://m:5000", "is not a registry's host name"),
        ("=http://m:5000", "is not a registry's host name"),
        ("registry.k8s.io=ftp://m", "the scheme must be http or https"),
        ("registry.k8s.io=", "empty or holds white space"),
    ],
)
def test_a_bad_mirror_url_is_one_line_saying_what_to_write(raw, why):
    with pytest.raises(NppctlError) as err:
        registrymirror.parse(raw)
    line = str(err.value)
    assert line.startswith(f"--registry-mirror {raw!r}: ") and why in line and "\n" not in line
    assert line.endswith("e.g. --registry-mirror http://10.0.0.5:5000 or registry.k8s.io=http://10.0.0.5:5001")


def _nppctl(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "nppctl", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_up_refuses_a_bad_mirror_before_making_anything(tmp_path):
    done = _nppctl(tmp_path, "up", "--name", "np4mirror", "--registry-mirror", "http://mirror:5000",
                   "--registry-mirror", "ftp://mirror")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --registry-mirror 'ftp://mirror': the scheme must be http or https; "
        f"{registrymirror.USAGE}"
    )
    assert list(tmp_path.iterdir()) == []  # no .nppctl, no tmp/


def test_up_refuses_a_mirror_for_the_docker_provider(tmp_path):
    done = _nppctl(tmp_path, "up", "--name", "np4mirror", "--provider", "docker",
                   "--registry-mirror", "http://mirror:5000")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: --registry-mirror is for the containerd of kind nodes;")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("user", [False, True], ids=["own", "user-patches-copy"])
def test_real_kind_reads_the_rendered_config(kind_binary, tmp_path, user):
    """kind decodes configs strictly (an unknown field is an error): the real kind gets past reading
    nppctl's rendering with both patches and stops only at pulling an image that does not exist."""
    patches = kindpatches.for_up("1", ("http://kind-registry:5000",))
    if not user:
        text = kindconfig.render_kind_config("np4cfg", {}, 1, "10.244.0.0/16", False, patches)
    else:
        (tmp_path / "user.yaml").write_text(USER_PATCHES)
        data = kindconfig.load(tmp_path / "user.yaml", "np4cfg")
        text = kindconfig.render_copy(data, "np4cfg", False, False, kindpatches.for_up(
            "1", ("http://kind-registry:5000",), data.data))
    (tmp_path / "c.yaml").write_text(text)
    bogus = tmp_path / "bogus.yaml"
    bogus.write_text(text + "bogusField: 1\n")
    args = ["create", "cluster", "--name", "np4cfg", "--image", "nppctl-absent.invalid/none:none"]
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    done = subprocess.run([str(kind_binary), *args, "--config", str(tmp_path / "c.yaml")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'failed to pull image "nppctl-absent.invalid/none:none"' in done.stderr, done.stderr
    refused = subprocess.run([str(kind_binary), *args, "--config", str(bogus)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert "field bogusField not found" in refused.stderr, refused.stderr  # the check can fail
