"""nppctl.plugin.ipam.Store driven directly: parallel processes, exhaustion, faults, crashes."""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import time

import pytest

from nppctl.plugin.errors import IO_FAILURE, TRY_AGAIN_LATER, CNIError
from nppctl.plugin.ipam import Store
from tests.harness import fill, run_python, spawn_python

NET = ipaddress.ip_network("10.202.0.0/24")
GW = ipaddress.ip_address("10.202.0.1")

# One process = one reservation, as one plugin call would do.
RESERVE = """
import ipaddress, sys
from nppctl.plugin.ipam import Store
from nppctl.plugin.errors import CNIError
data, net, gw, cid = sys.argv[1:5]
try:
    with Store(data, "np2net", ipaddress.ip_network(net), ipaddress.ip_address(gw)) as s:
        print(s.reserve(cid, "eth0"))
except CNIError as e:
    print("ERR", e.code, e.msg)
"""

# Holds the lock until killed.
HOLD = """
import ipaddress, sys, time
from nppctl.plugin.ipam import Store
with Store(sys.argv[1], "np2net", ipaddress.ip_network("10.202.0.0/24"), ipaddress.ip_address("10.202.0.1")):
    print("locked", flush=True)
    time.sleep(600)
"""

# Reserves and releases forever (killed at a random moment by the test).
CHURN = """
import ipaddress, sys
from nppctl.plugin.ipam import Store
net, gw = ipaddress.ip_network("10.202.0.0/26"), ipaddress.ip_address("10.202.0.1")
i = 0
print("go", flush=True)
while True:
    with Store(sys.argv[1], "np2net", net, gw) as s:
        s.reserve("churn%d" % (i % 40), "eth0")
        if i % 3:
            s.release("churn%d" % ((i * 7) % 40), "eth0")
    i += 1
"""


def store(data_dir, net=NET, gw=GW, **kw) -> Store:
    return Store(str(data_dir), "np2net", net, gw, **kw)


def assert_consistent(data_dir, net=NET, gw=GW) -> list:
    """Every address file is whole, one address per attachment, each found via its index."""
    with store(data_dir, net, gw) as s:
        rows = s.reservations()
        for ip, cid, ifname in rows:
            assert cid and ifname == "eth0", (ip, cid, ifname)
            assert ip in net and ip not in (gw, net.network_address, net.broadcast_address)
            assert s.find(cid, ifname) == ip
        keys = [(cid, ifn) for _, cid, ifn in rows]
        assert len(keys) == len(set(keys)), "an attachment holds two addresses"
    return rows


def test_reserve_is_idempotent_sequential_and_skips_special_addresses(tmp_path):
    with store(tmp_path) as s:
        a = s.reserve("c1", "eth0")
        assert a == ipaddress.ip_address("10.202.0.2")  # .0 network, .1 gateway
        assert s.reserve("c1", "eth0") == a
        b = s.reserve("c1", "net1")  # same container, other interface: its own address
        c = s.reserve("c2", "eth0")
        assert [a, b, c] == [ipaddress.ip_address(f"10.202.0.{n}") for n in (2, 3, 4)]
        assert s.find("c2", "eth0") == c and s.find("c3", "eth0") is None
        assert s.free_count() == 253 - 3
        assert s.release("c1", "eth0") == a
        assert s.release("c1", "eth0") is None  # DEL twice is fine
        # the next free after the last reserved (.4), not the lowest free (.2)
        assert s.reserve("c4", "eth0") == ipaddress.ip_address("10.202.0.5")
        assert [(str(ip), cid) for ip, cid, _ in s.reservations()] == [
            ("10.202.0.3", "c1"),
            ("10.202.0.4", "c2"),
            ("10.202.0.5", "c4"),
        ]
        assert s.writable()


def test_store_outside_with_block_is_refused(tmp_path):
    with pytest.raises(RuntimeError):
        store(tmp_path).reserve("c1", "eth0")


def test_64_parallel_processes_get_64_distinct_addresses(tmp_path):
    procs = [spawn_python(RESERVE, str(tmp_path), str(NET), str(GW), f"par{i}") for i in range(64)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert not [o for o in outs if not o.startswith("10.202.0.")], outs
    assert len(set(outs)) == 64
    rows = assert_consistent(tmp_path)
    assert {str(ip) for ip, _, _ in rows} == set(outs)


def test_exhausted_subnet_is_error_11_and_recovers_after_release(tmp_path):
    net, gw = ipaddress.ip_network("10.202.1.0/29"), ipaddress.ip_address("10.202.1.1")
    with store(tmp_path, net, gw) as s:
        got = [s.reserve(f"c{i}", "eth0") for i in range(5)]  # .2 .. .6
        assert s.free_count() == 0
        with pytest.raises(CNIError) as err:
            s.reserve("one-too-many", "eth0")
        assert err.value.code == TRY_AGAIN_LATER
        assert "exhausted" in err.value.msg and "10.202.1.0/29" in err.value.msg
        assert s.release("c3", "eth0") == got[3]
        assert s.reserve("one-too-many", "eth0") == got[3]
    # the same through separate processes
    out = run_python(RESERVE, str(tmp_path), str(net), str(gw), "late")
    assert out.stdout.startswith("ERR 11 "), out


def test_lock_wait_is_bounded_and_killed_holder_does_not_block(tmp_path):
    holder = spawn_python(HOLD, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(CNIError) as err:
            with store(tmp_path, lock_timeout=0.4):
                pass
        waited = time.monotonic() - started
        assert err.value.code == TRY_AGAIN_LATER and "busy" in err.value.msg
        assert 0.35 < waited < 2.0, waited
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    with store(tmp_path, lock_timeout=2) as s:  # the kernel dropped the dead holder's lock
        s.reserve("after", "eth0")
    assert time.monotonic() - started < 0.5


def test_waiter_gets_the_lock_as_soon_as_it_is_released(tmp_path):
    holder = spawn_python(HOLD, str(tmp_path))
    assert holder.stdout.readline().strip() == "locked"
    waiter = spawn_python(RESERVE, str(tmp_path), str(NET), str(GW), "waiter")
    time.sleep(0.5)
    assert waiter.poll() is None  # blocked on the lock
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    out, _ = waiter.communicate(timeout=5)
    assert out.strip() == "10.202.0.2"


def test_sigkill_at_random_points_never_corrupts_the_store(tmp_path):
    net, gw = ipaddress.ip_network("10.202.0.0/26"), ipaddress.ip_address("10.202.0.1")
    rng = random.Random(4)
    for _ in range(12):
        proc = spawn_python(CHURN, str(tmp_path))
        assert proc.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        proc.wait()
        assert_consistent(tmp_path, net, gw)
    with store(tmp_path, net, gw, lock_timeout=1) as s:
        s.reserve("final", "eth0")  # a write cleans temporaries of killed writers
        assert not [n for n in os.listdir(s.dir) if n.startswith(".tmp")]
        for _, cid, ifn in s.reservations():
            s.release(cid, ifn)
        assert s.reservations() == [] and s.free_count() == 61
        assert sorted(os.listdir(s.dir)) == ["last_reserved_ip.0", "lock"]  # no index left behind


def test_dangling_index_of_a_killed_call_is_ignored_and_cleaned(tmp_path):
    with store(tmp_path) as s:
        # state of a call killed between writing the index link and the address file
        os.symlink("10.202.0.9", os.path.join(s.dir, "a.ghost:eth0"))
        assert s.find("ghost", "eth0") is None
        assert s.reservations() == []
        assert s.release("ghost", "eth0") is None
        assert not os.path.lexists(os.path.join(s.dir, "a.ghost:eth0"))
        os.symlink("10.202.0.9", os.path.join(s.dir, "a.ghost:eth0"))
        assert s.reserve("ghost", "eth0") == ipaddress.ip_address("10.202.0.2")
        assert os.readlink(os.path.join(s.dir, "a.ghost:eth0")) == "10.202.0.2"
        # an index of an attachment never deleted: GC's full scan drops it, keeps the live one
        os.symlink("10.202.0.7", os.path.join(s.dir, "a.never-deleted:eth0"))
        assert [cid for _, cid, _ in s.reservations()] == ["ghost"]
        assert not os.path.lexists(os.path.join(s.dir, "a.never-deleted:eth0"))
        assert s.find("ghost", "eth0") == ipaddress.ip_address("10.202.0.2")


def test_hostile_names_stay_inside_the_store(tmp_path):
    data = tmp_path / "data"
    hostile = [("../../evil", "eth0"), ("c1", "../x"), ("a/b", "a b"), ("x" * 400, "eth0"), ("\udcff", "é")]
    with store(data) as s:
        got = {key: s.reserve(*key) for key in hostile}
        assert len(set(got.values())) == len(hostile)
        for key, ip in got.items():
            assert s.find(*key) == ip
        assert sorted((cid, ifn) for _, cid, ifn in s.reservations()) == sorted(hostile)
        for key, ip in got.items():
            assert s.release(*key) == ip
    assert sorted(os.listdir(tmp_path)) == ["data"]
    assert sorted(os.listdir(data)) == ["np2net"]
    with pytest.raises(CNIError):
        Store(str(data), "../up", NET, GW)


def test_unwritable_data_dir_is_an_error_and_store_unchanged(tmp_path, mount_point):
    mnt = mount_point("size=256k")
    with store(mnt) as s:
        kept = s.reserve("kept", "eth0")
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    with store(mnt) as s:  # still readable: CHECK and STATUS work
        assert not s.writable()
        with pytest.raises(CNIError) as err:
            s.reserve("new", "eth0")
        assert err.value.code == IO_FAILURE and str(mnt) in err.value.msg
        assert s.find("kept", "eth0") == kept
        with pytest.raises(CNIError):
            s.release("kept", "eth0")
    with pytest.raises(CNIError) as err:  # a network never seen: its directory cannot be made
        with Store(str(mnt), "np2other", NET, GW):
            pass
    assert err.value.code == IO_FAILURE
    subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
    assert [(str(ip), cid) for ip, cid, _ in assert_consistent(mnt)] == [(str(kept), "kept")]


def test_full_disk_is_an_error_and_store_unchanged(tmp_path, mount_point):
    mnt = mount_point("size=64k", "nr_inodes=64")
    with store(mnt) as s:
        kept = s.reserve("kept", "eth0")
    fill(mnt)  # no block and no inode left
    with store(mnt) as s:
        assert not s.writable()
        with pytest.raises(CNIError) as err:
            s.reserve("new", "eth0")
        assert err.value.code == IO_FAILURE
        assert s.find("new", "eth0") is None
    assert [(str(ip), cid) for ip, cid, _ in assert_consistent(mnt)] == [(str(kept), "kept")]
    assert not [n for n in os.listdir(mnt / "np2net") if n.startswith(".tmp")]
