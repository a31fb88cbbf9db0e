"""Issue 25, point 5, on real kind: a node whose containerd could not get an inotify instance has no CRI,
its kubelet no runtime, and the node stays NotReady; `nppctl status` says why and what to do.

The host's per-user inotify instances (fs.inotify.max_user_instances) run out as they do with several
kind clusters on one host: here this test holds the rest of them itself while the worker's containerd
starts, then lets them go (containerd does not retry: the node stays NotReady). The remedy status
gives (`docker restart` the node) heals it.

One lab, np25n (one worker, nppnet), in file order: up, starve the worker's containerd, status, heal,
down.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
from pathlib import Path

import pytest

from nppctl.lab.status import INOTIFY_FAILED

CLUSTER = "np25n"
WORKER = f"{CLUSTER}-worker"
LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


def inotify_in_use(uid: int = 0) -> int:
    """Inotify instances held by UID's processes on this host (what the per-user limit counts)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    count += 1
        except OSError:
            continue  # gone meanwhile
    return count


class Starve:
    """Holds every inotify instance root may still open; close() gives them back."""

    def __init__(self):
        self.fds: list[int] = []
        self.saved_limit = None
        limit = int(LIMIT.read_text())
        spare = limit - inotify_in_use()
        if spare > 2000:  # a host with a raised limit: lowered for the moment, restored by close()
            self.saved_limit = limit
            LIMIT.write_text(str(limit - spare + 64))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.saved_nofile = (soft, hard)
        libc = ctypes.CDLL(None, use_errno=True)
        while True:
            fd = libc.inotify_init1(os.O_CLOEXEC)
            if fd < 0:
                assert ctypes.get_errno() == errno.EMFILE, os.strerror(ctypes.get_errno())
                break
            self.fds.append(fd)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self.saved_limit is not None:
            LIMIT.write_text(str(self.saved_limit))
        resource.setrlimit(resource.RLIMIT_NOFILE, self.saved_nofile)


def ready(lab) -> bool | None:
    for cond in lab.json("get", "node", WORKER)["status"]["conditions"]:
        if cond["type"] == "Ready":
            return cond["status"] == "True"
    return None


def test_up_makes_a_one_worker_lab(kind_lab):
    lab = kind_lab
    lab.nppctl("up", "--name", CLUSTER, "--workers", "1", "--image", lab.world["NODE_IMAGE"],
               "--registry-mirror", lab.world["REGISTRY"], "--timeout", "400")
    assert ready(lab) is True


def test_a_worker_whose_containerd_got_no_inotify_is_not_ready_and_status_says_why(kind_lab):
    if os.geteuid() != 0:
        pytest.fail("this test holds root's inotify instances: run it as root")
    lab = kind_lab
    lab.node_exec(WORKER, "systemctl", "stop", "containerd")
    starve = Starve()
    try:
        assert starve.fds or inotify_in_use() >= int(LIMIT.read_text())
        lab.node_exec(WORKER, "systemctl", "start", "containerd", ok=None)

        def journal():
            return lab.node_exec(WORKER, "journalctl", "-u", "containerd", "--no-pager", "-o", "cat",
                                 "-n", "400").stdout

        lab.wait("containerd's CRI to fail for want of an inotify instance",
                 lambda: INOTIFY_FAILED in journal().split("starting containerd")[-1], timeout=60)
    finally:
        starve.close()
    # containerd goes on without its CRI: the kubelet finds no runtime and the node goes NotReady
    lab.wait("the worker NotReady", lambda: ready(lab) is False, timeout=240, every=3)
    done = lab.nppctl("status", "--name", CLUSTER, ok=None)
    shown = done.stdout + done.stderr
    assert f"{WORKER}: NotReady: containerd has no CRI" in " ".join(shown.split()), shown
    assert "fs.inotify.max_user_instances=512" in shown and f"docker restart {WORKER}" in shown, shown
    assert done.returncode == 1, shown
    shown = lab.nppctl("status", "--name", CLUSTER, "--json", ok=False).stdout
    rows = {r["node"]: r for r in json.loads(shown)}
    assert INOTIFY_FAILED in rows[WORKER]["not_ready_why"], rows[WORKER]
    assert rows[f"{CLUSTER}-control-plane"]["not_ready_why"] is None


def test_the_remedy_status_gives_heals_the_node(kind_lab):
    lab = kind_lab
    lab.docker.containers.get(WORKER).restart(timeout=30)
    lab.wait("the worker Ready again", lambda: ready(lab) is True, timeout=240, every=3)
    rows = {r["node"]: r for r in json.loads(lab.nppctl("status", "--name", CLUSTER, "--json").stdout)}
    assert rows[WORKER]["not_ready_why"] is None, rows[WORKER]


def test_down_removes_the_lab(kind_lab):
    kind_lab.nppctl("down", "--purge", "--name", CLUSTER)
