"""Network namespaces by path: validate, open a netlink socket inside; remove an old pin.

Python 3.11 has no fs.setns, and `import ctypes` costs 2-3 ms, so the two libc calls needed
(setns, umount2) are bound through `_ctypes` directly.
"""

import fcntl

from . import fs
from .errors import INVALID_ENVIRONMENT, CNIError

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703
MNT_DETACH = 0x2
NETNS_RUN_DIR = "/var/run/netns"

_functions = {}


def _bind(name):
    """The libc function `name` through _ctypes; only what a call uses is bound (ADD needs just
    setns: binding umount2 too would cost every ADD tens of microseconds)."""
    import _ctypes

    flags = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO

    class Libc:
        _handle = _ctypes.dlopen(None, 2)

    if name == "setns":  # setns(int, int) -> int: _ctypes' defaults for ints, nothing to declare

        class Function(_ctypes.CFuncPtr):
            _flags_ = flags

    else:

        class Int(_ctypes._SimpleCData):
            _type_ = "i"

        class CharP(_ctypes._SimpleCData):
            _type_ = "z"

        class Function(_ctypes.CFuncPtr):  # _ctypes wants _flags_ in each class's own dict
            _flags_ = flags
            _restype_ = Int
            _argtypes_ = {"umount2": (CharP, Int)}[name]

    _functions[name] = function = Function((name, Libc))
    return function


def _call(name, *args):
    if name == "setns" and fs.setns is not None:  # Python 3.12+
        fs.setns(*args)
        return
    function = _functions.get(name) or _bind(name)
    if function(*args) != 0:
        import _ctypes

        code = _ctypes.get_errno()
        raise OSError(code, f"{name}: {fs.strerror(code)}")


def open_netns(path):
    """An O_RDONLY fd of the network namespace at path; CNIError(4) when it is not one."""
    if not path or not path.startswith("/"):
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS must be an absolute path, got {path!r}")
    try:
        fd = fs.open(path, fs.O_RDONLY | fs.O_CLOEXEC)
    except OSError as err:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS {path}: {err.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        kind = None
    if kind != CLONE_NEWNET:
        fs.close(fd)
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS {path} is not a network namespace")
    return fd


def socket_in(netns_fd, factory):
    """Call factory() (say, netlink.Netlink) with this thread inside the netns; the result's
    sockets stay in that netns once the thread is back home."""
    home = fs.open("/proc/thread-self/ns/net", fs.O_RDONLY | fs.O_CLOEXEC)
    try:
        _call("setns", netns_fd, CLONE_NEWNET)
        try:
            return factory()
        finally:
            _call("setns", home, CLONE_NEWNET)  # failing here is fatal: it raises, never ignored
    finally:
        fs.close(home)


def entry_path(name):
    return fs.join(NETNS_RUN_DIR, name)


def unpin(name):
    """Unmount and remove /var/run/netns/NAME, a pin an older nppnet made (quietly when gone)."""
    entry = entry_path(name)
    try:
        _call("umount2", entry.encode(), MNT_DETACH)
    except OSError:
        pass
    try:
        fs.unlink(entry)
    except FileNotFoundError:
        pass
