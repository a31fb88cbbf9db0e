"""Address reservations on disk: one file per allocated address, guarded by an exclusive flock.

Layout of DATA_DIR/<network>/ (compatible in spirit with host-local's store):
  lock                      the flock target; the kernel drops the lock when its holder dies
  10.244.1.5                one reservation: "<containerID>\\r\\n<ifname>" (a regular file)
  last_reserved_ip.0        symlink -> the last address handed out; the next search starts after it
  a.<containerID>:<ifname>  symlink -> "10.244.1.5": O(1) lookup of an attachment's address
  h.<hex>                   the same index for IDs or names outside [A-Za-z0-9_.-] (hex of the key)

Crash safety: an address file is written to a temporary name in the same directory and renamed
into place; links are made by symlink(), which is atomic. A SIGKILL at any point leaves a whole
file or none, never a half-written one, and the kernel drops the dead holder's flock. The index
link is written before the address file and removed after it, so every address file has an
index; a dangling index (a call killed in between) is ignored and overwritten. Temporaries of a
killed writer are removed by the next one. No fsync: this guards against killed processes, not
power loss (as host-local). Speed (ext4, 60 reservations): enter + find + reserve ~0.4 ms,
enter + release ~0.06 ms; files of data are never replaced in place (ext4 would force writeback).

Signature: subnet needs int(subnet.network_address), subnet.num_addresses and str(subnet);
gateway needs int(gateway); results are type(gateway)(int). So ipaddress objects work, and so do
the plugin's own addr.IPv4 / addr.Subnet (ints, no `ipaddress` import: ~1-3 ms of start-up).
"""

import fcntl
import posix  # not os: `import os` costs ~1.2 ms of start-up (see fs.py)

from . import fs
from .errors import IO_FAILURE, TRY_AGAIN_LATER, CNIError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~3 ms of start-up
if TYPE_CHECKING:  # pragma: no cover - annotations only
    import ipaddress

LOCK_NAME = "lock"
ENOSPC = 28  # errno.ENOSPC on Linux; importing errno costs ~40 us of start-up
LAST_RESERVED = "last_reserved_ip.0"
TMP_PREFIX = ".tmp."
SEP = "\r\n"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_NAME = 250


class _LockTimeout(Exception):
    pass


def _ip_to_int(text: str) -> "int | None":
    """'10.244.1.5' -> int, None for anything else (file names that are not addresses)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


def _int_to_ip(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def index_name(container_id: str, ifname: str) -> "str | None":
    """The index link's file name for an attachment; None when too long to be a file name."""
    if container_id and all(c in _SAFE for c in container_id) and all(c in _SAFE or c == ":" for c in ifname):
        name = "a." + container_id + ":" + ifname
    else:
        raw = (container_id + "\n" + ifname).encode("utf-8", "surrogateescape")
        name = "h." + raw.hex()
    return name if len(name) <= _MAX_NAME else None


def _io_error(what: str, path: str, err: OSError) -> CNIError:
    return CNIError(IO_FAILURE, f"IPAM store: cannot {what} {path}: {err.strerror or err}")


class Store:
    """Reservations of one network's subnet. Use as a context manager: `with Store(...) as s:`."""

    def __init__(
        self,
        data_dir: str,
        network: str,
        subnet: "ipaddress.IPv4Network",
        gateway: "ipaddress.IPv4Address",
        lock_timeout: float = 10.0,
    ):
        if not network or "/" in network or network in (".", ".."):
            raise CNIError(IO_FAILURE, f"IPAM store: unusable network name {network!r} for a directory")
        self.dir = fs.join(data_dir, network)
        self.lock_timeout = lock_timeout
        self._subnet = str(subnet)
        self._addr = type(gateway)
        self._gateway = int(gateway)
        net = int(subnet.network_address)
        size = subnet.num_addresses
        if size >= 4:  # skip the network and broadcast addresses
            self._first, self._last = net + 1, net + size - 2
        else:  # /31 and /32: every address is usable (RFC 3021)
            self._first, self._last = net, net + size - 1
        self._fd = -1

    # -- locking -------------------------------------------------------------------------------

    def __enter__(self) -> "Store":
        try:
            fs.makedirs(self.dir, 0o755)
        except OSError as err:
            raise _io_error("create", self.dir, err) from None
        path = fs.join(self.dir, LOCK_NAME)
        try:
            fd = posix.open(path, posix.O_RDWR | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
        except OSError as err:
            try:  # a read-only store can still be read under the lock (CHECK, STATUS)
                fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
            except OSError:
                raise _io_error("open", path, err) from None
        try:
            self._acquire(fd)
        except BaseException:
            posix.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd >= 0:
            posix.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1

    def _acquire(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as err:
            raise _io_error("lock", self.dir, err) from None
        import _signal  # only on contention; not `signal`, which imports enum (~3 ms)

        def expire(signum, frame):
            raise _LockTimeout()

        try:
            previous = _signal.signal(_signal.SIGALRM, expire)
        except ValueError:  # not the main thread: no signals, poll instead
            self._poll(fd)
            return
        try:
            _signal.setitimer(_signal.ITIMER_REAL, self.lock_timeout)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except _LockTimeout:
            raise self._busy() from None
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, previous)

    def _poll(self, fd: int) -> None:
        import time

        deadline = time.monotonic() + self.lock_timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._busy() from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)

    def _busy(self) -> CNIError:
        return CNIError(
            TRY_AGAIN_LATER,
            f"IPAM store busy: lock {fs.join(self.dir, LOCK_NAME)} held by another call "
            f"for over {self.lock_timeout:g}s; try again later",
        )

    def _check_locked(self) -> None:
        if self._fd < 0:
            raise RuntimeError("Store used outside `with Store(...)`")

    # -- files ---------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return fs.join(self.dir, name)

    def _write(self, name: str, data: str) -> None:
        """Atomically create or replace DIR/name with data."""
        tmp = self._path(TMP_PREFIX + name)
        try:
            fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o644)
            try:
                raw = data.encode("utf-8", "surrogateescape")
                if posix.write(fd, raw) != len(raw):
                    raise OSError(ENOSPC, posix.strerror(ENOSPC))
            finally:
                posix.close(fd)
            posix.replace(tmp, self._path(name))
        except OSError as err:
            self._discard(tmp)
            raise _io_error("write", self._path(name), err) from None

    def _link(self, name: str, target: str, exists: bool = False) -> None:
        """Atomically point the symlink DIR/name at target; exists: it most likely is there."""
        path = self._path(name)
        if not exists:
            try:
                posix.symlink(target, path)  # a new name: one syscall
                return
            except FileExistsError:
                pass
            except OSError as err:
                raise _io_error("write", path, err) from None
        tmp = self._path(TMP_PREFIX + name)
        try:
            try:
                posix.symlink(target, tmp)
            except FileExistsError:  # left by a killed call
                posix.unlink(tmp)
                posix.symlink(target, tmp)
            posix.replace(tmp, path)  # a symlink has no data blocks: replacing it forces no writeback
        except OSError as err:
            self._discard(tmp)
            raise _io_error("write", path, err) from None

    @staticmethod
    def _discard(path: str) -> None:
        try:
            posix.unlink(path)
        except OSError:
            pass

    def _read(self, name: str) -> "str | None":
        try:
            fd = posix.open(self._path(name), posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            return posix.read(fd, 4096).decode("utf-8", "surrogateescape")
        except OSError:
            return None
        finally:
            posix.close(fd)

    def _listing(self) -> list[str]:
        try:
            return posix.listdir(self.dir)
        except OSError as err:
            raise _io_error("list", self.dir, err) from None

    def _owner_matches(self, ip: int, container_id: str, ifname: str) -> bool:
        return self._read(_int_to_ip(ip)) == container_id + SEP + ifname

    # -- lookups -------------------------------------------------------------------------------

    def _lookup(self, container_id: str, ifname: str) -> "int | None":
        name = index_name(container_id, ifname)
        if name is None:  # no index for this key: scan the address files
            for ip, cid, ifn in self._scan():
                if cid == container_id and ifn == ifname:
                    return ip
            return None
        try:
            target = posix.readlink(self._path(name))
        except OSError:
            return None
        ip = _ip_to_int(target)
        if ip is None or not self._owner_matches(ip, container_id, ifname):
            return None  # dangling index left by a killed call: ignored, overwritten later
        return ip

    def _scan(self) -> list[tuple[int, str, str]]:
        found = []
        for name in self._listing():
            ip = _ip_to_int(name)
            if ip is None:
                continue
            content = self._read(name)
            if content is None:
                continue
            cid, _, ifn = content.partition(SEP)
            found.append((ip, cid, ifn))
        return found

    def _taken(self, names: list[str]) -> set[int]:
        taken = set()
        for name in names:
            ip = _ip_to_int(name)
            if ip is not None:
                taken.add(ip)
        return taken

    def find(self, container_id: str, ifname: str) -> "ipaddress.IPv4Address | None":
        """The address reserved for this attachment, or None."""
        self._check_locked()
        ip = self._lookup(container_id, ifname)
        return None if ip is None else self._addr(ip)

    def reservations(self) -> "list[tuple[ipaddress.IPv4Address, str, str]]":
        """Every reservation as (address, container ID, ifname), sorted by address.

        The full scan GC needs anyway also drops index links that name no reservation (left by
        a call killed between writing its index and its address file)."""
        self._check_locked()
        found = sorted(self._scan())
        self._prune_index({(_int_to_ip(ip), index_name(cid, ifn)) for ip, cid, ifn in found})
        return [(self._addr(ip), cid, ifn) for ip, cid, ifn in found]

    def _prune_index(self, valid: "set[tuple[str, str | None]]") -> None:
        for name in self._listing():
            if name[:2] not in ("a.", "h."):
                continue
            try:
                target = posix.readlink(self._path(name))
            except OSError:
                continue
            if (target, name) not in valid:
                try:
                    posix.unlink(self._path(name))
                except OSError:
                    return  # a read-only store: leave it, it is harmless

    def _usable(self) -> int:
        """How many addresses can be handed out at all: the range minus the gateway."""
        total = max(self._last - self._first + 1, 0)
        return total - 1 if self._first <= self._gateway <= self._last else total

    def free_count(self) -> int:
        """Addresses of the subnet still free (network, gateway and broadcast never count)."""
        self._check_locked()
        taken = self._taken(self._listing())
        taken.discard(self._gateway)
        return max(self._usable() - sum(1 for ip in taken if self._first <= ip <= self._last), 0)

    def writable(self) -> bool:
        """True when a reservation could be written now (probes with a real file)."""
        self._check_locked()
        probe = self._path(f"{TMP_PREFIX}probe.{posix.getpid()}")
        try:
            fd = posix.open(probe, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o600)
            try:
                ok = posix.write(fd, b"x") == 1
            finally:
                posix.close(fd)
        except OSError:
            return False
        self._discard(probe)
        return ok

    # -- changes -------------------------------------------------------------------------------

    def reserve(self, container_id: str, ifname: str) -> "ipaddress.IPv4Address":
        """The attachment's address: the existing one, else the next free after the last reserved."""
        self._check_locked()
        current = self._lookup(container_id, ifname)
        if current is not None:
            if self._first <= current <= self._last and current != self._gateway:
                return self._addr(current)
            self._release_ip(current, container_id, ifname)  # subnet changed since: move
        names = self._listing()
        for name in names:  # temporaries of a killed writer; we hold the lock, nobody else writes
            if name.startswith(TMP_PREFIX):
                self._discard(self._path(name))
        ip = self._next_free(self._taken(names))
        if ip is None:
            raise CNIError(
                TRY_AGAIN_LATER,
                f"subnet {self._subnet} exhausted: all {self._usable()} usable addresses are reserved "
                f"(store {self.dir}); delete pods to free some, or use a larger subnet",
            )
        text = _int_to_ip(ip)
        index = index_name(container_id, ifname)
        if index is not None:
            self._link(index, text)
        try:
            self._write(text, container_id + SEP + ifname)
        except CNIError:
            if index is not None:
                self._discard(self._path(index))
            raise
        try:
            self._link(LAST_RESERVED, text, exists=True)
        except CNIError:
            pass  # only a hint for where the next search starts
        return self._addr(ip)

    def _next_free(self, taken: set[int]) -> "int | None":
        first, last = self._first, self._last
        if first > last:
            return None
        try:
            last_reserved = _ip_to_int(posix.readlink(self._path(LAST_RESERVED)))
        except OSError:
            last_reserved = None
        start = last_reserved + 1 if last_reserved is not None and first <= last_reserved < last else first
        ip = start
        while True:
            if ip not in taken and ip != self._gateway:
                return ip
            ip = ip + 1 if ip < last else first
            if ip == start:
                return None

    def release(self, container_id: str, ifname: str) -> "ipaddress.IPv4Address | None":
        """Drop the attachment's reservation; the freed address, or None when there was none."""
        self._check_locked()
        ip = self._lookup(container_id, ifname)
        if ip is None:
            index = index_name(container_id, ifname)
            if index is not None and fs.lexists(self._path(index)):
                self._unlink(index)  # dangling index of a killed call
            return None
        self._release_ip(ip, container_id, ifname)
        return self._addr(ip)

    def _release_ip(self, ip: int, container_id: str, ifname: str) -> None:
        self._unlink(_int_to_ip(ip))
        index = index_name(container_id, ifname)
        if index is not None:
            self._unlink(index)

    def _unlink(self, name: str) -> None:
        try:
            posix.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _io_error("remove", self._path(name), err) from None
