"""The built executables (as install copies them) and the rendered conflists."""

from __future__ import annotations

import ast
import importlib.util
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
from binascii import a2b_base64
from pathlib import Path

import pytest

from nppctl.build import artifacts, record
from nppctl.errors import NppctlError
from tests.harness import Reply, run, runtime_env

PLUGIN_DIR = Path(artifacts.__file__).parents[1] / "plugin"  # nppctl/plugin
MAGIC = importlib.util.MAGIC_NUMBER.hex()  # this python's (tests fake the builder's)


def _run(exe: Path, command: str, stdin: bytes, cwd: Path, **env: str) -> Reply:
    """EXE called with only PATH, CNI_COMMAND and ENV (no CNI_PATH), from CWD."""
    return run([exe], runtime_env(command, CNI_PATH=None, **env), stdin, cwd=cwd, timeout=30)


def test_build_writes_two_single_file_executables(tmp_path):
    written = artifacts.build_plugins(tmp_path / "out")
    assert [p.name for p in written] == ["nppnet", "nppnet-skel"]
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o755
        assert path.read_bytes().startswith(b"#!/usr/bin/python3 -ISc")
    assert sorted(os.listdir(tmp_path / "out")) == ["nppnet", "nppnet-skel"]
    # building again replaces them in place
    assert artifacts.build_plugins(tmp_path / "out") == written


def test_executables_run_alone_from_any_folder(tmp_path, plugins):
    """Copied elsewhere and run with a runtime's PATH, nothing of nppctl installed is used."""
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("nppnet", "nppnet-skel"):
        shutil.copy2(plugins / name, alone / name)
        done = _run(alone / name, "VERSION", b'{"cniVersion": "1.0.0"}', cwd=alone)
        assert done.rc == 0, done.stderr
        assert json.loads(done.stdout)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    probe = _run(alone / "nppnet", "VERSION", b"", cwd=alone)
    assert probe.rc == 0 and probe.stderr == ""


def _other_python_build(tmp_path, monkeypatch, module="nppctl.plugin.entry", name="nppnet") -> Path:
    """An executable built as by another python3 minor version (its magic number is not this
    python's), keeping its cache in tmp_path/cache."""
    monkeypatch.setattr(importlib.util, "MAGIC_NUMBER", b"\x00\x00\r\n")
    return artifacts.build_plugin(tmp_path / name, module, cache=str(tmp_path / "cache"))


def _record(exe: Path, command: str, stdin: bytes, cwd: Path) -> tuple[Reply, dict]:
    """One call run in-process by nppctl/build/record.py's driver: the reply and the loader's record."""
    done = run(record.argv(str(exe)), runtime_env(command, CNI_PATH=None), stdin, cwd=cwd)
    return done, record.parse(done.stderr)


def _cache_files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name != ".lock")


def test_another_python_runs_byte_code_made_for_it_and_cached_once(tmp_path, monkeypatch, plugins):
    nppnet = _other_python_build(tmp_path, monkeypatch)
    magic = MAGIC
    for _ in range(2):  # the first call makes the cache, the second one reads it
        done, rec = _record(nppnet, "VERSION", b'{"cniVersion": "0.4.0"}', cwd=tmp_path)
        assert done.rc == 0 and json.loads(done.stdout)["cniVersion"] == "0.4.0", done
        [cache] = _cache_files(tmp_path)
        assert cache.startswith(f"nppnet.{magic}.")
        assert rec["compiled"] == [] and rec["magic"] == magic
        assert set(rec["cached"].values()) == {str(tmp_path / "cache" / cache)}
    # verifiable: the cache holds, for this python, the very byte code the build embeds when this
    # python builds (the same compiler, in a fresh interpreter: the same sources, the same bytes)
    blob = (tmp_path / "cache" / cache).read_bytes()
    key = bytes.fromhex(magic) + cache.rsplit(".", 1)[1].encode()
    assert blob[: len(key)] == key
    cached_codes = marshal.loads(blob[len(key) + 4 :])
    embedded = (plugins / "nppnet").read_bytes().split(b"\n")
    tag_at = next(i for i, line in enumerate(embedded) if re.fullmatch(rb"#[0-9a-f]{16}", line))
    modules = sorted(_carried(plugins / "nppnet"))
    module_lines = embedded[tag_at + 4 : tag_at + 4 + len(modules)]  # after loader, slow start, restart
    assert [a2b_base64(line[1:]) for line in module_lines] == cached_codes[1:]
    # the skeleton keeps its own cache file beside nppnet's
    skel = _other_python_build(tmp_path, monkeypatch, "nppctl.plugin.skel", "nppnet-skel")
    log = tmp_path / "skel.log"
    conf = json.dumps({"cniVersion": "1.0.0", "name": "np1skel", "logFile": str(log)}).encode()
    done = _run(skel, "DEL", conf, cwd=tmp_path, CNI_CONTAINERID="np1c1", CNI_IFNAME="eth0")
    assert done.rc == 0, done
    assert " DEL " in log.read_text()
    assert sorted(f.split(".")[0] for f in _cache_files(tmp_path)) == ["nppnet", "nppnet-skel"]


def test_a_cache_that_does_not_match_is_never_trusted_and_made_again(tmp_path, monkeypatch):
    nppnet = _other_python_build(tmp_path, monkeypatch)
    assert _run(nppnet, "VERSION", b"", cwd=tmp_path).rc == 0
    [name] = _cache_files(tmp_path)
    path = tmp_path / "cache" / name
    good = path.read_bytes()
    magic = bytes.fromhex(name.split(".")[1])
    other = b"\xa7\r" if magic[:2] != b"\xa7\r" else b"\xf3\r"
    stale = {
        "another python's header": other + good[2:],
        "a flipped bit in the code": good[:-40] + bytes([good[-40] ^ 1]) + good[-39:],
        "cut short": good[: len(good) // 2],
        "empty": b"",
    }
    for what, blob in stale.items():
        path.write_bytes(blob)
        # as an upgrade leaves it: a cache of an older build of this executable, another python's
        (tmp_path / "cache" / f"nppnet.{other.hex()}0d0a.{name.split('.')[2]}").write_bytes(good)
        (tmp_path / "cache" / "nppnet.0d0d0a0d.0123456789abcdef").write_bytes(good)
        done, rec = _record(nppnet, "VERSION", b"", cwd=tmp_path)
        assert done.rc == 0 and json.loads(done.stdout)["supportedVersions"], (what, done)
        assert rec["compiled"] == [] and set(rec["cached"].values()) == {str(path)}, what
        assert path.read_bytes() == good, what  # made again, the same bytes
        assert _cache_files(tmp_path) == [name], what  # the stale ones removed


def test_without_a_writable_cache_the_call_compiles_its_own_code(tmp_path, monkeypatch):
    nppnet = _other_python_build(tmp_path, monkeypatch)
    (tmp_path / "cache").write_text("a file where the folder should be")
    done, rec = _record(nppnet, "VERSION", b'{"cniVersion": "1.0.0"}', cwd=tmp_path)
    assert done.rc == 0 and json.loads(done.stdout)["cniVersion"] == "1.0.0", done
    assert set(rec["cached"].values()) == {None}
    assert "<embedded>/loader.py" in rec["compiled"]


def test_a_cache_folder_others_may_write_or_a_file_of_another_user_is_never_used(tmp_path, monkeypatch):
    """Byte code from the cache runs as root: a folder a group or others may write (anyone could
    put a file there) is not used at all, nor a cache file of another owner or writable by others."""
    nppnet = _other_python_build(tmp_path, monkeypatch)
    assert _run(nppnet, "VERSION", b"", cwd=tmp_path).rc == 0
    [name] = _cache_files(tmp_path)
    folder, path = tmp_path / "cache", tmp_path / "cache" / name
    folder.chmod(0o777)
    done, rec = _record(nppnet, "VERSION", b"", cwd=tmp_path)
    assert done.rc == 0 and set(rec["cached"].values()) == {None}, done
    assert "<embedded>/loader.py" in rec["compiled"]
    folder.chmod(0o755)
    for change in (lambda: path.chmod(0o666), lambda: os.chown(path, 65534, 65534)):
        change()
        inode = path.stat().st_ino
        done, rec = _record(nppnet, "VERSION", b"", cwd=tmp_path)
        assert done.rc == 0 and set(rec["cached"].values()) == {str(path)}, done
        # not read: replaced by one this call made, this user's and written by it alone
        assert path.stat().st_ino != inode
        assert path.stat().st_uid == os.geteuid() and not path.stat().st_mode & 0o022


def test_temporary_files_are_never_written_through_a_link(tmp_path, monkeypatch):
    """The cache's and the build's temporary files: a symlink planted where they go is replaced,
    its target never written."""
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    nppnet = _other_python_build(tmp_path, monkeypatch)
    (tmp_path / "cache").mkdir()
    _record(nppnet, "VERSION", b"", cwd=tmp_path)  # the cache file's name
    [name] = _cache_files(tmp_path)
    (tmp_path / "cache" / name).unlink()
    (tmp_path / "cache" / (name + ".tmp")).symlink_to(victim)
    done, rec = _record(nppnet, "VERSION", b"", cwd=tmp_path)
    assert done.rc == 0 and set(rec["cached"].values()) == {str(tmp_path / "cache" / name)}
    assert victim.read_text() == "untouched"
    out = tmp_path / "out"
    out.mkdir()
    (out / ".nppnet.tmp").symlink_to(victim)
    artifacts.build_plugins(out)
    assert victim.read_text() == "untouched"
    assert not (out / ".nppnet.tmp").exists() and (out / "nppnet").stat().st_size > 1000


def test_the_builders_python_runs_the_embedded_byte_code(tmp_path, plugins):
    done, rec = _record(plugins / "nppnet", "VERSION", b"", cwd=tmp_path)
    assert done.rc == 0, done
    assert rec["compiled"] == [] and set(rec["cached"].values()) == {"<embedded>"}


def test_builds_in_processes_with_different_modules_loaded_give_identical_bytes(tmp_path):
    """marshal's output follows the writer's reference counts: the build must not depend on them."""
    here = {p.name: p.read_bytes() for p in artifacts.build_plugins(tmp_path / "here")}
    # another process, with many other modules (and the plugin's own names) alive: a build in
    # this very process differed from this one before the builds ran in a fresh interpreter
    code = (
        "import sys, asyncio, docker, email.message, json, nppctl.lab.install, nppctl.plugin.nppnet; "
        "from pathlib import Path; from nppctl.build.artifacts import build_plugins; "
        "build_plugins(Path(sys.argv[1]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], capture_output=True)
    assert done.returncode == 0, done.stderr
    there = {p.name: p.read_bytes() for p in (tmp_path / "there").iterdir()}
    assert there.keys() == here.keys() == {"nppnet", "nppnet-skel"}
    for name in here:
        assert here[name] == there[name], name


def _carried(exe: Path) -> set[str]:
    """The modules an executable says it carries (its third line lists them)."""
    line = exe.read_bytes().split(b"\n")[2].decode()
    return set(line.partition("comment lines: ")[2].rstrip(".").split(", "))


def test_each_executable_carries_only_the_modules_it_can_import(plugins):
    skel, nppnet = _carried(plugins / "nppnet-skel"), _carried(plugins / "nppnet")
    common = {f"nppctl.plugin.{m}" for m in ("protocol", "jsonio", "log", "errors", "fs", "names")}
    assert skel == {"nppctl", "nppctl.plugin", "nppctl.plugin.skel"} | common
    only_nppnet = {
        f"nppctl.plugin.{m}"
        for m in ("netlink", "ipam", "firewall", "netns", "config", "addr", "check", "delegate")
    }
    entry = {"nppctl", "nppctl.plugin", "nppctl.plugin.entry", "nppctl.plugin.nppnet"}
    assert nppnet == entry | common | only_nppnet
    # and the payload is what the list says: one base64 line per module after the loader's
    lines = (plugins / "nppnet-skel").read_bytes().split(b"\n")
    payload = [x for x in lines if re.fullmatch(rb"#[\w+/=]+", x)]
    assert len(payload) == 1 + 3 + len(skel) + 1  # tag, loader (code), slow start, restart, modules, sources


def test_a_file_changed_under_a_starting_call_gives_error_11(tmp_path, plugins):
    """The code reads its modules back from its own file: a file that is not the one the code
    was built with (say, replaced by an install meanwhile) is re-run once, then refused."""
    exe = tmp_path / "nppnet-skel"
    exe.write_bytes((plugins / "nppnet-skel").read_bytes() + b"#\n")
    exe.chmod(0o755)
    done = _run(exe, "VERSION", b"", cwd=tmp_path)
    assert done.rc == 1, done
    error = json.loads(done.stdout)
    assert error["code"] == 11 and "changed" in error["msg"]
    assert done.stderr == ""


def test_python_compiles_only_the_first_lines_never_the_payload(tmp_path, plugins):
    """The shebang runs `python3 -I -S -c CODE FILE`: CODE runs the lines before the one holding
    only "#" and python never tokenizes the rest (run as `python3 FILE`, it did: a third of a
    VERSION's instructions). Proof: a byte that is not UTF-8 in the last payload line, which
    python refuses in a source file, does not disturb a call; the shebang line fits the kernel's
    limit (255 bytes)."""
    data = (plugins / "nppnet").read_bytes()
    first = data.split(b"\n", 1)[0]
    assert first.startswith(b"#!/usr/bin/python3 -ISc") and len(first) < 256
    code = data[: data.index(b"\n#\n")]
    assert len(code) < 2000  # compiled on every call: kept to a dozen lines
    exe = tmp_path / "nppnet"
    exe.write_bytes(data[:-2] + b"\xff\n")  # same size: the file is still "as built"
    exe.chmod(0o755)
    as_file = subprocess.run([sys.executable, "-I", "-S", str(exe)], capture_output=True, timeout=30)
    assert b"SyntaxError" in as_file.stderr  # what `python3 FILE` made of it
    done = _run(exe, "VERSION", b'{"cniVersion": "0.4.0"}', cwd=tmp_path)
    assert done.rc == 0 and done.stderr == "", done
    assert json.loads(done.stdout)["cniVersion"] == "0.4.0"


def test_skeleton_logs_every_call_fails_add_and_accepts_the_rest(tmp_path, plugins):
    log = tmp_path / "skel.log"
    conf = json.dumps({"cniVersion": "0.3.1", "name": "np1skel", "type": "nppnet-skel", "logFile": str(log)})
    env = {"CNI_CONTAINERID": "np1cskel", "CNI_NETNS": "/var/run/netns/np1-none", "CNI_IFNAME": "eth0"}
    add = _run(plugins / "nppnet-skel", "ADD", conf.encode(), cwd=tmp_path, **env)
    assert add.rc == 1
    error = json.loads(add.stdout)
    assert error["cniVersion"] == "0.3.1" and "skeleton" in error["msg"] and "no network" in error["msg"]
    assert _run(plugins / "nppnet-skel", "DEL", conf.encode(), cwd=tmp_path, **env).rc == 0
    version = _run(plugins / "nppnet-skel", "VERSION", conf.encode(), cwd=tmp_path)
    assert json.loads(version.stdout)["cniVersion"] == "0.3.1"
    lines = log.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["ADD", "DEL", "VERSION"]
    assert 'container="np1cskel"' in lines[0] and "skeleton" in lines[0] and '"name": "np1skel"' in lines[0]


def test_plugin_package_imports_only_the_standard_library():
    paths = sorted(PLUGIN_DIR.glob("*.py"))
    assert len(paths) > 5, PLUGIN_DIR  # the package itself (nppctl/plugin), not an empty folder
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_render_conflist():
    text = artifacts.render_conflist(
        "10.244.1.7/24", mtu=1450, cluster_cidr="10.244.0.0/16", gateway="10.244.1.1", ip_masq=False
    )
    conf = json.loads(text)
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "nppnet"
    first, portmap = conf["plugins"]
    assert first == {
        "type": "nppnet",
        "bridge": "cni0",
        "subnet": "10.244.1.0/24",
        "gateway": "10.244.1.1",
        "mtu": 1450,
        "clusterCIDR": "10.244.0.0/16",
        "ipMasq": False,
        "dataDir": "/var/lib/cni/nppnet",
        "logFile": "/var/log/nppnet.log",
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    skel = json.loads(artifacts.render_conflist("10.244.2.0/24", plugin="nppnet-skel", cni_version="0.3.1"))
    assert skel["cniVersion"] == "0.3.1" and [p["type"] for p in skel["plugins"]] == ["nppnet-skel"]
    plain = json.loads(artifacts.render_conflist("10.244.3.0/24"))
    assert "gateway" not in plain["plugins"][0] and plain["plugins"][0]["ipMasq"] is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subnet": "10.244.1.0/33"},
        {"subnet": "nope"},
        {"subnet": "10.244.1.0/31"},
        {"subnet": "10.244.1.0/24", "gateway": "10.9.9.9"},
        {"subnet": "10.244.1.0/24", "bridge": "has/slash"},
        {"subnet": "10.244.1.0/24", "mtu": 10},
        {"subnet": "10.244.1.0/24", "cni_version": "0.2.0"},
        {"subnet": "10.244.1.0/24", "plugin": "other"},
        {"subnet": "10.244.1.0/24", "cluster_cidr": "x"},
    ],
)
def test_render_conflist_rejects_bad_values(kwargs):
    subnet = kwargs.pop("subnet")
    with pytest.raises(NppctlError):
        artifacts.render_conflist(subnet, **kwargs)


def test_the_plugin_modules_import_one_way():
    """No plugin module imports (at the top or inside a function) one that imports it back,
    directly or through others: the lower module holds what two modules share."""
    sources = artifacts._plugin_sources()
    graph = {
        name: {m for m in artifacts._imports(name, *sources[name]) if m in sources and not name.startswith(m)}
        for name in sources
    }
    assert "nppctl.plugin.config" in graph["nppctl.plugin.check"]  # the graph is not empty
    circles = []
    for start in graph:
        todo = [(start, (start,))]
        while todo:
            name, path = todo.pop()
            for nxt in graph[name]:
                if nxt == start:
                    circles.append(" -> ".join(path + (nxt,)))
                elif nxt not in path:
                    todo.append((nxt, path + (nxt,)))
    assert circles == []
