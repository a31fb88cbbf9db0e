"""What the card's sandbox keeps from the host besides files and links: mounts whose names are
UTF-8, file bind mounts, the host name, System V IPC; and what the host guard counts (conftest)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from nppctl.conformance.sandbox import SANDBOX_DIRS
from tests.conformance.conftest import CONFS, PLUGINS, by_result, host_state, run_card
from tests.conftest import require


@pytest.fixture
def outside_sandbox(tmp_path):
    """A folder of the host the sandbox does not cover with a tmpfs (pytest's tmp_path, unless that
    is under /tmp or another of sandbox.SANDBOX_DIRS: then one in /var/tmp)."""
    if not any(str(tmp_path).startswith(d.rstrip("/") + "/") for d in SANDBOX_DIRS):
        yield tmp_path
        return
    folder = tempfile.mkdtemp(prefix="reach-", dir="/var/tmp")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reacher_card(tmp_path: Path, reach: dict) -> dict:
    """The card of plugins/reacher with that "reach" in its config: bashnet's, every check passing."""
    conf = json.loads((CONFS / "bashnet.conflist").read_text())
    conf["plugins"][0].update(type="reacher", reach=reach)
    path = tmp_path / "reacher.conflist"
    path.write_text(json.dumps(conf))
    done, card = run_card(
        str(PLUGINS / "reacher"), "--conf", str(path), "--bridge", "cni0=10.244.96.1/24", "--json",
    )
    assert card is not None, done.stdout + done.stderr
    assert by_result(card)["fail"] == set(), json.dumps(card, indent=1)
    return card


def mount(*argv: str) -> None:
    require(shutil.which("mount") is not None, "util-linux's mount")
    subprocess.run(["mount", *argv], check=True, capture_output=True)


def test_mountinfo_paths_decode_as_the_kernel_escapes_them():
    from nppctl.conformance.sandbox import unescape_mount_point

    assert unescape_mount_point("/media/u/Données".encode()) == "/media/u/Données"
    assert unescape_mount_point(rb"/mnt/a\040b\011c\012d\134e") == "/mnt/a b\tc\nd\\e"
    assert unescape_mount_point(b"/mnt/\xff") == os.fsdecode(b"/mnt/\xff")  # not UTF-8: kept as is


def test_a_mount_named_in_utf8_is_read_only_in_the_sandbox(host_untouched, tmp_path, outside_sandbox):
    """A USB stick at /media/USER/Données: a tmpfs at a folder of that name."""
    folder = outside_sandbox / "Données"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "nppt-reach", str(folder))
    try:
        target = folder / "calls"
        target.write_text("before\n")
        reacher_card(tmp_path, {"append": [str(target)]})
        assert target.read_text() == "before\n", "the plugin wrote to the mount named Données"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_file_bind_mount_is_read_only_in_the_sandbox(host_untouched, tmp_path, outside_sandbox):
    """/etc/hosts, /etc/resolv.conf, /etc/hostname in a container or CI runner: a file bind mount."""
    source, target = outside_sandbox / "hosts.source", outside_sandbox / "hosts"
    source.write_text("before\n")
    target.write_text("")
    mount("--bind", str(source), str(target))
    try:
        reacher_card(tmp_path, {"append": [str(target)]})
        assert source.read_text() == "before\n", "the plugin wrote through the file bind mount"
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_plugin_cannot_rename_the_host(host_untouched, tmp_path):
    require(shutil.which("hostname") is not None, "the hostname command")
    before = socket.gethostname()
    try:
        reacher_card(tmp_path, {"hostname": "nppt-renamed"})
        assert socket.gethostname() == before
    finally:
        if socket.gethostname() != before:
            subprocess.run(["hostname", before], check=True)


def _semaphores() -> set[str]:
    out = subprocess.run(["ipcs", "-s"], capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("0x")}


def test_a_plugins_semaphores_go_with_the_sandbox(host_untouched, tmp_path):
    require(shutil.which("ipcmk") is not None and shutil.which("ipcs") is not None, "util-linux's ipcmk")
    before = _semaphores()
    try:
        reacher_card(tmp_path, {"ipcmk": True})
        assert _semaphores() - before == set()
    finally:
        for semid in _semaphores() - before:
            subprocess.run(["ipcrm", "-s", semid])


def test_the_host_guard_counts_what_a_leak_leaves_not_what_others_make():
    """What other processes make while a card runs (a /tmp entry, links, among them one named as
    nppnet names its veths, a netns) is not the card's; what escapee leaves when it gets out (its
    files, a link, a pod's netns) is."""
    require(os.geteuid() == 0, "root (links and netns on the host)")
    tag = os.getpid() % 100000
    others = {"files": [f"/tmp/someone-else-{tag}"], "links": [f"other{tag}", f"veth{tag:05x}a00000"],
              "netns": [f"other-{tag}"]}
    escapes = ["/etc/nppt-escape", "/var/cache/nppt-escape", "/var/lib/nppt-escape", "/dev/shm/nppt-escape"]
    leaked = {"files": escapes, "links": ["nppt-escape"], "netns": [f"nppt-leak{tag}"]}
    before = host_state()
    try:
        os.mkdir(others["files"][0])
        for path in escapes:
            Path(path).write_text("escaped\n")
        for made in (others, leaked):
            for link in made["links"]:
                subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
            subprocess.run(["ip", "netns", "add", made["netns"][0]], check=True)
        after = host_state()
    finally:
        for made in (others, leaked):
            for link in made["links"]:
                subprocess.run(["ip", "link", "del", link], capture_output=True)
            subprocess.run(["ip", "netns", "del", made["netns"][0]], capture_output=True)
        shutil.rmtree(others["files"][0], ignore_errors=True)
        for path in escapes:
            if os.path.lexists(path):
                os.unlink(path)
    new = {k: sorted(after[k] - before[k]) for k in before}
    leaked["files"].append(f"/var/run/netns/{leaked['netns'][0]}")  # the pod's netns is a file there too
    assert {k: v for k, v in new.items() if v} == {k: sorted(v) for k, v in leaked.items()}
