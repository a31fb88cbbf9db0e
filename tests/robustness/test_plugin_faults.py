"""The built nppnet under faults: SIGKILL mid-call, a held lock, an unwritable or full store,
an exhausted subnet, a runaway log."""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import time

from tests.harness import fill
from tests.robustness.cni import netns_address, netns_links


def kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """SIGKILL proc after delay seconds; True when it was still running (so really killed midway)."""
    time.sleep(delay)
    alive = proc.poll() is None
    proc.kill()
    proc.wait()
    return alive


def test_sigkill_at_random_points_of_add_then_del_or_gc_cleans_fully(make_net):
    net = make_net(10)
    rng = random.Random(10)
    warm = net.netns(4)
    assert net.run("ADD", net.cid("warm"), warm[0]).rc == 0  # the bridge exists: kills land in pod work
    timings = []
    for i, ns in enumerate(warm[1:]):
        timed = net.run("ADD", net.cid(f"time{i}"), ns)
        assert timed.rc == 0 and net.run("DEL", net.cid(f"time{i}"), ns).rc == 0, str(timed)
        timings.append(timed.ms / 1000)
    typical = sorted(timings)[1]
    spaces = net.netns(24)
    killed_midway = left_state = 0
    for i, ns in enumerate(spaces):
        cid = net.cid(f"kill{i}")
        proc = net.spawn("ADD", cid, ns)
        killed_midway += kill_after(proc, rng.uniform(0.2, 1.0) * typical)
        left_state += cid in {c for c, _ in net.reservations().values()} or netns_links(ns) != ["lo"]
        if i % 2:
            clean = net.run("DEL", cid, ns)
        else:  # GC (1.1.0) with only the survivor listed
            valid = [{"containerID": net.cid("warm"), "ifname": "eth0"}]
            clean = net.run("GC", conf=net.conf("1.1.0", **{"cni.dev/valid-attachments": valid}))
        assert clean.rc == 0, f"{cid}: {clean}"
        assert netns_links(ns) == ["lo"], f"{cid}: left in its namespace: {netns_links(ns)}"
        assert [c for c, _ in net.reservations().values()] == [net.cid("warm")], net.reservations()
        assert len(net.host_veths()) == 1, net.host_veths()
        nxt = net.run("ADD", net.cid(f"next{i}"), ns)  # not blocked by a dead call's lock
        assert nxt.rc == 0 and nxt.ms < 5000, str(nxt)
        assert net.run("DEL", net.cid(f"next{i}"), ns).rc == 0
    assert killed_midway >= 8, f"only {killed_midway} of 24 calls were killed while running"
    assert left_state >= 2, f"only {left_state} of 24 kills left anything to clean"
    assert not [n for n in os.listdir(net.store_dir) if n.startswith(".tmp")]


def test_lock_wait_is_bounded_and_ends_in_error_11(make_net):
    net = make_net(11)
    ns = net.netns(1)[0]
    assert net.run("ADD", net.cid("first"), ns).rc == 0
    with open(net.store_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another call stuck while holding the store
        started = time.monotonic()
        stuck = net.run("ADD", net.cid("second"), net.netns(1)[0])
        waited = time.monotonic() - started
    assert stuck.rc != 0 and stuck.obj["code"] == 11, str(stuck)
    assert waited < 30, waited
    assert net.run("ADD", net.cid("second"), net.netns(1)[0]).rc == 0  # fine once released


def test_exhausted_subnet_is_error_11_and_addresses_come_back_after_del(make_net):
    net = make_net(12, prefix=29)  # 8 addresses: network, gateway, broadcast and 5 pods
    spaces = net.netns(6)
    got = [net.run("ADD", net.cid(f"ex{i}"), spaces[i]) for i in range(5)]
    assert [r.rc for r in got] == [0] * 5, [str(r) for r in got]
    full = net.run("ADD", net.cid("ex5"), spaces[5])
    assert full.rc != 0 and full.obj["code"] == 11 and "exhausted" in full.obj["msg"], str(full)
    assert netns_address(spaces[5]) is None and len(net.host_veths()) == 5  # nothing half made
    status = net.run("STATUS", conf=net.conf("1.1.0"))
    assert status.rc != 0 and status.obj["code"] == 50, str(status)
    assert net.run("DEL", net.cid("ex2"), spaces[2]).rc == 0
    again = net.run("ADD", net.cid("ex5"), spaces[5])
    assert again.rc == 0 and again.ip == got[2].ip, str(again)


def test_unwritable_data_dir_is_an_error_and_the_store_stays_intact(make_net, mount_point):
    net = make_net(13)
    mnt = mount_point("size=1m")
    net.work = mnt  # the store lives on the tmpfs; the log too
    ns = net.netns(2)
    kept = net.run("ADD", net.cid("kept"), ns[0])
    assert kept.rc == 0, str(kept)
    before = net.reservations()
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    try:
        failed = net.run("ADD", net.cid("new"), ns[1])
        assert failed.rc != 0 and failed.obj["code"] in (5, 11), str(failed)
        assert "Traceback" not in failed.stderr
        assert netns_address(ns[1]) is None and len(net.host_veths()) == 1  # undone
        status = net.run("STATUS", conf=net.conf("1.1.0"))
        assert status.rc != 0 and status.obj["code"] == 50, str(status)
        assert net.reservations() == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
    assert net.run("ADD", net.cid("new"), ns[1]).rc == 0
    assert net.run("DEL", net.cid("new"), ns[1]).rc == 0 and net.run("DEL", net.cid("kept"), ns[0]).rc == 0
    assert net.reservations() == {}


def test_full_disk_is_an_error_and_the_store_stays_intact(make_net, mount_point):
    net = make_net(14)
    mnt = mount_point("size=128k", "nr_inodes=48")
    net.work = mnt
    ns = net.netns(2)
    assert net.run("ADD", net.cid("kept"), ns[0]).rc == 0
    before = net.reservations()
    fill(mnt)
    failed = net.run("ADD", net.cid("new"), ns[1])
    assert failed.rc != 0 and failed.obj["code"] in (5, 11), str(failed)
    assert netns_address(ns[1]) is None and len(net.host_veths()) == 1
    assert net.reservations() == before
    assert not [n for n in os.listdir(net.store_dir) if n.startswith(".tmp")]


def test_log_file_stays_capped(make_net):
    from nppctl.plugin import log

    net = make_net(15)
    net.log_file.write_bytes(b"x" * (log.MAX_BYTES - 100) + b"\n")  # the next line passes the cap
    ns = net.netns(1)[0]
    assert net.run("ADD", net.cid("logged"), ns).rc == 0
    assert net.run("DEL", net.cid("logged"), ns).rc == 0
    assert os.path.getsize(net.log_file) < 64 * 1024  # rotated: the fresh file holds 2 lines
    assert os.path.getsize(str(net.log_file) + ".1") <= log.MAX_BYTES
    lines = net.log_file.read_text().splitlines()
    assert len(lines) == 2 and net.cid("logged") in lines[0] and "ADD" in lines[0] and "DEL" in lines[1]
