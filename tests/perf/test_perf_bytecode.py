"""The installed plugin in a node runs byte code made for the node's own python3.

In a trixie node (python3 3.13, not the builder's python) the first call compiles the plugin once
into /var/cache/nppnet, every later call runs that byte code; in a bookworm node (python3 3.11)
likewise, or the byte code the build embedded when the builder's python is the same minor
version. Told by the loader's record (nppctl/build/record.py: each module's __cached__, and no
compile() call). 64 parallel first calls all succeed and leave one cache file; a python3 replaced by
another minor version after the install still runs the plugin right, from byte code for itself.
Clusters np12t (trixie) and np12b (bookworm), one node each, deleted at the end.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from nppctl.access.nodes import get_node, node_run
from nppctl.build import record
from nppctl.lab.install import install
from tests.nodes.conftest import make_cluster

BUILDER_MAGIC = importlib.util.MAGIC_NUMBER.hex()  # install builds with this python
CACHE = "/var/cache/nppnet"
RUNTIME_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": "/opt/cni/bin", "CNI_IFNAME": "eth0"}
CONF = {
    "cniVersion": "1.0.0",
    "name": "np12net",
    "type": "nppnet",
    "bridge": "np12br",
    "subnet": "10.212.0.0/24",
    "ipMasq": False,
    "dataDir": "/var/lib/cni/np12",
}
# Run by the node's python3: N netns, N parallel ADDs, then N parallel DELs; JSON of the replies.
PARALLEL = r"""
import json, subprocess, sys
n, conf = int(sys.argv[1]), sys.argv[2].encode()
names = ["np12p%d" % i for i in range(n)]
ip = ["ip", "-batch", "-"]
subprocess.run(ip, input="".join("netns add %s\n" % x for x in names), text=True, check=True)
replies = {}
for command in ("ADD", "DEL"):
    procs = []
    for i, name in enumerate(names):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": "/opt/cni/bin", "CNI_IFNAME": "eth0",
               "CNI_COMMAND": command, "CNI_CONTAINERID": "np12c%d" % i,
               "CNI_NETNS": "/var/run/netns/" + name}
        proc = subprocess.Popen(
            ["/opt/cni/bin/nppnet"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        proc.stdin.write(conf)
        proc.stdin.close()
        procs.append(proc)
    replies[command] = [(p.wait(60), p.stdout.read().decode()) for p in procs]
subprocess.run(ip, input="".join("netns del %s\n" % x for x in names), text=True)
print(json.dumps(replies))
"""


def _installed(request, docker_client, image: str, name: str):
    make_cluster(request, docker_client, image, name, workers=0)
    install(name)
    return get_node(name, "control-plane")


@pytest.fixture(scope="module")
def trixie(request, docker_client, python_node_image):
    return _installed(request, docker_client, python_node_image, "np12t")


@pytest.fixture(scope="module")
def bookworm(request, docker_client, node_image_bookworm):
    return _installed(request, docker_client, node_image_bookworm, "np12b")


def sh(node, *argv: str) -> str:
    res = node_run(node, list(argv))
    assert res.code == 0, (argv, res.stdout, res.stderr)
    return res.stdout


def call(node, command: str, container_id: str = "np12c", netns: str = "np12ns") -> tuple[dict, dict]:
    """One call of the installed nppnet in the node, run by the record driver: (reply, record)."""
    netns_path = f"/var/run/netns/{netns}"
    env = dict(RUNTIME_ENV, CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns_path)
    res = node_run(node, record.argv("/opt/cni/bin/nppnet"), stdin=json.dumps(CONF).encode(), env=env)
    rec = record.parse(res.stderr)
    assert res.code == 0, (command, res.stdout, res.stderr[-500:])
    return (json.loads(res.stdout) if res.stdout.strip() else {}), rec


def cache_files(node) -> list[str]:
    res = node_run(node, ["ls", "-A", CACHE])
    return sorted(f for f in res.stdout.split() if f != ".lock") if res.code == 0 else []


def assert_own_byte_code(node, rec: dict) -> None:
    """The record says: no compile, every module from byte code for this node's python."""
    assert rec["compiled"] == [], rec
    places = set(rec["cached"].values())
    if rec["magic"] == BUILDER_MAGIC:
        assert places == {"<embedded>"}, rec
        return
    [only] = cache_files(node)  # one cache file, for this python and this build
    assert only.startswith(f"nppnet.{rec['magic']}."), (only, rec)
    assert places == {f"{CACHE}/{only}"}, rec


def add_del_round(node, suffix: str) -> dict:
    """ADD into a fresh netns, then DEL; both from the node's own byte code. The ADD's record."""
    sh(node, "ip", "netns", "add", f"np12ns{suffix}")
    try:
        result, rec = call(node, "ADD", f"np12c{suffix}", f"np12ns{suffix}")
        assert result["ips"][0]["address"].startswith("10.212.0."), result
        assert_own_byte_code(node, rec)
        _, rec_del = call(node, "DEL", f"np12c{suffix}", f"np12ns{suffix}")
        assert_own_byte_code(node, rec_del)
    finally:
        node_run(node, ["ip", "netns", "del", f"np12ns{suffix}"])
    return rec


def test_trixie_node_runs_byte_code_made_for_its_python3_313(trixie):
    assert sh(trixie, "python3", "-c", "import sys; print(sys.version_info[:2])").strip() == "(3, 13)"
    node_run(trixie, ["rm", "-rf", CACHE])
    version, rec = call(trixie, "VERSION")  # the first call makes the cache
    assert "1.0.0" in version["supportedVersions"]
    assert rec["magic"] != BUILDER_MAGIC  # 3.13: not the builder's byte code
    assert_own_byte_code(trixie, rec)
    [made] = cache_files(trixie)
    first = sh(trixie, "sha256sum", f"{CACHE}/{made}").split()[0]
    add_del_round(trixie, "a")
    # reproducible: made again from nothing, the same bytes
    node_run(trixie, ["rm", "-rf", CACHE])
    call(trixie, "VERSION")
    assert cache_files(trixie) == [made]
    assert sh(trixie, "sha256sum", f"{CACHE}/{made}").split()[0] == first


def test_bookworm_node_runs_byte_code_made_for_its_python3_311(bookworm):
    assert sh(bookworm, "python3", "-c", "import sys; print(sys.version_info[:2])").strip() == "(3, 11)"
    version, rec = call(bookworm, "VERSION")
    assert "1.0.0" in version["supportedVersions"]
    assert_own_byte_code(bookworm, rec)
    add_del_round(bookworm, "b")


def test_64_parallel_first_calls_all_succeed(trixie):
    node_run(trixie, ["rm", "-rf", CACHE])
    res = node_run(trixie, ["python3", "-c", PARALLEL, "64", json.dumps(CONF)])
    assert res.code == 0, res.stderr[-500:]
    replies = json.loads(res.stdout)
    bad = [r for r in replies["ADD"] + replies["DEL"] if r[0] != 0]
    assert not bad, bad[:3]
    addresses = {json.loads(out)["ips"][0]["address"] for _, out in replies["ADD"]}
    assert len(addresses) == 64
    [made] = cache_files(trixie)  # one writer: one file, no temporary left
    _, rec = call(trixie, "VERSION")
    assert rec["cached"]["nppctl.plugin.nppnet"] == f"{CACHE}/{made}"


def _copy_python311(docker_client, image: str, node) -> None:
    """python3.11 and its standard library from the bookworm image into the node."""
    donor = docker_client.containers.create(image, command=["true"])
    try:
        for path, into in (("/usr/bin/python3.11", "/usr/bin"), ("/usr/lib/python3.11", "/usr/lib")):
            stream, _ = donor.get_archive(path)
            assert node.container.put_archive(into, b"".join(stream))
    finally:
        donor.remove(force=True)


def test_a_python3_replaced_by_another_minor_version_still_runs_the_plugin(
    trixie, docker_client, node_image_bookworm
):
    add_del_round(trixie, "c")  # 3.13's cache in place
    [before] = cache_files(trixie)
    _copy_python311(docker_client, node_image_bookworm, trixie)
    sh(trixie, "ln", "-sf", "python3.11", "/usr/bin/python3")
    try:
        assert sh(trixie, "python3", "-c", "import sys; print(sys.version_info[:2])").strip() == "(3, 11)"
        rec = add_del_round(trixie, "d")  # right, from 3.11's own byte code: never 3.13's
        assert f"{CACHE}/{before}" not in rec["cached"].values()
    finally:
        sh(trixie, "ln", "-sf", "python3.13", "/usr/bin/python3")
    rec = add_del_round(trixie, "e")  # and back to 3.13
    assert rec["magic"] != BUILDER_MAGIC

