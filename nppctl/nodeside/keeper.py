"""The keeper: a node keeps its own part of the pod network right by itself, without nppctl.

Installed by `nppctl install` as PROGRAM (the node agent's modules in one file, run with
`/usr/bin/python3 PROGRAM keep {}`) with its config nodenet.KEEPER_CONF (the setup spec: this node's
subnet, bridge, masquerade, and a route per peer node by container name). Started by systemd
(nppctl-keeper.service) in kind nodes, by the container's entrypoint in docker-provider nodes.

At start it makes everything right (nodenet.make_right, the code `setup` runs). Then every PERIOD
seconds a round resolves each peer by name (Docker's DNS on the kind network) and reads the kernel's
routes from /proc/net/route; only when a peer moved, a route or the node's bridge is missing, the
config or the program changed, or every FULL_EVERY rounds, does it run make_right again (which spawns
`ip`/`iptables`). A round where all is right spawns no process. Its actions go to LOG (size-capped)
and to stdout (the journal under systemd, `docker logs` under the docker provider's entrypoint).
One keeper per node: it holds an exclusive POSIX lock on LOCK (in /run, a tmpfs: gone after a
restart); running() asks the kernel who holds it (F_GETLK) without taking it, so a keeper starting
while `nppctl install` probes the node never finds the lock taken by the probe. `nppctl install`
replaces PROGRAM whole (written beside it, renamed over it), so a keeper re-executing itself never
reads a half-written program.
"""

import fcntl
import os
import socket
import struct
import sys
import time

from . import nodenet
from .base import read_json

PROGRAM = "/usr/local/lib/nppctl/keeper.py"
LOCK = "/run/nppctl-keeper.lock"
LOG = "/var/log/nppctl-keeper.log"
LOG_MAX = 256 * 1024  # bytes; the log rotates once to LOG.1
PERIOD = 2.0
FULL_EVERY = 30  # rounds between full checks (masquerade, forwarding) when all looked right
RTF_GATEWAY = 0x2


def log(msg):
    line = "{} {}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), msg)
    sys.stdout.write(line)
    sys.stdout.flush()
    try:
        if os.path.getsize(LOG) > LOG_MAX:
            os.replace(LOG, LOG + ".1")
    except OSError:
        pass
    try:
        with open(LOG, "a") as f:
            f.write(line)
    except OSError:
        pass


_FLOCK = "hhqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (and padding)


def running():
    """True when a keeper holds LOCK in this node; the lock is only looked at, never taken."""
    try:
        fd = os.open(LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        held = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return held != fcntl.F_UNLCK


def kernel_routes():
    """{(dst/prefix, gateway or None, interface)} of the main IPv4 table, read without a process."""
    out = set()
    with open("/proc/net/route") as f:
        next(f, None)
        for line in f:
            p = line.split()
            if len(p) < 8:
                continue
            dst = socket.inet_ntoa(struct.pack("<I", int(p[1], 16)))
            gw = socket.inet_ntoa(struct.pack("<I", int(p[2], 16)))
            prefix = bin(int(p[7], 16)).count("1")
            out.add((f"{dst}/{prefix}", gw if int(p[3], 16) & RTF_GATEWAY else None, p[0]))
    return out


def resolve(name):
    """The peer's IPv4 address by its container name, or None (stopped, restarting, unknown)."""
    try:
        return socket.gethostbyname(name)
    except OSError:
        return None


def _mtime(path):
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


class Keeper:
    def __init__(self, conf_path=nodenet.KEEPER_CONF, program=None):
        self.conf_path = conf_path
        self.program = program
        self.program_stamp = _mtime(program) if program else None
        self.conf_stamp = None
        self.spec = None
        self.rounds = 0
        self.warned = set()

    def load(self):
        stamp = _mtime(self.conf_path)
        if stamp == self.conf_stamp:
            return False
        self.conf_stamp = stamp
        conf = read_json(self.conf_path)
        self.spec = conf if isinstance(conf, dict) else None
        log(f"config {self.conf_path}: " + ("loaded" if self.spec else "missing or unreadable, idle"))
        return True

    def drift(self):
        """What looks wrong without spawning a process: moved peers, missing routes, a missing bridge."""
        spec, found, moved = self.spec, [], set()
        for r in spec.get("routes", []):
            addr = resolve(r["peer"]) if r.get("peer") else None
            if addr and addr != r["via"]:
                found.append("{} moved from {} to {}".format(r["peer"], r["via"], addr))
                moved.add(r["dst"])
                r["via"] = addr
        kernel = kernel_routes()
        have = {(dst, gw) for dst, gw, _ in kernel}
        for r in spec.get("routes", []):
            if (r["dst"], r["via"]) not in have and r["dst"] not in moved:
                found.append("no route {} via {}".format(r["dst"], r["via"]))
        if spec.get("make_bridge") and (spec["pod_subnet"], None, spec["bridge"]) not in kernel:
            found.append("{} is missing, down or without its address".format(spec["bridge"]))
        return found

    def round(self):
        """One round; True when it ran make_right."""
        if self.program and _mtime(self.program) != self.program_stamp:
            log(f"{self.program} changed: restarting")
            os.execv(sys.executable, [sys.executable, *sys.argv])
        reloaded = self.load()
        if self.spec is None:
            return False
        self.rounds += 1
        found = self.drift()
        if not (found or reloaded or self.rounds % FULL_EVERY == 0):
            return False
        for what in found:
            log(what)
        changes, warnings = [], []
        try:
            nodenet.make_right(self.spec, changes, warnings)
        except Exception as err:  # noqa: BLE001 - logged; the next round tries again
            warnings.append(f"could not make the node right: {getattr(err, 'msg', err)}")
        for c in changes:
            log(c)
        for w in warnings:
            if w not in self.warned:
                log("warning: " + w)
        self.warned = set(warnings)
        return True


def keep(spec):
    """`keep` command: the keeper's loop (never returns unless spec["rounds"] is given)."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # POSIX: running() can see it without taking it
    except OSError:
        os.close(fd)
        return {"kept": False, "detail": f"another keeper holds {LOCK}"}
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    program = os.path.abspath(sys.argv[0]) if os.path.isfile(sys.argv[0]) else None
    keeper = Keeper(spec.get("config", nodenet.KEEPER_CONF), program)
    log("keeper started (pid {}, every {}s)".format(os.getpid(), spec.get("period", PERIOD)))
    rounds = spec.get("rounds")
    while rounds is None or keeper.rounds < rounds:
        started = time.monotonic()
        keeper.round()
        if rounds is not None and keeper.spec is None:
            break
        time.sleep(max(0.0, float(spec.get("period", PERIOD)) - (time.monotonic() - started)))
    return {"kept": True, "rounds": keeper.rounds}
