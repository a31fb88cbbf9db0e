"""The plugin's call log: one line per call, size-capped, never an error for the CNI call.

The file is rotated to `<log_file>.1` (replacing the previous one) once it would pass MAX_BYTES,
so a long lab keeps at most about 2 x MAX_BYTES on a node's disk. One line is cut at MAX_LINE.
Writes use O_APPEND with a single write() per line, so lines of parallel calls never interleave.
"""

import posix  # not os: `import os` costs ~1.2 ms of start-up (see fs.py)

from . import fs

MAX_BYTES = 1 << 20  # 1 MiB per file: current + one rotated
MAX_LINE = 64 << 10  # a huge config must not make one line the whole budget
# O_NOFOLLOW: a log path that is a symlink (planted in a world-writable folder, say) is never written
# through: the call goes on unlogged, as for any log failure
_FLAGS = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC | posix.O_NOFOLLOW


def append(log_file: str, line: str, max_bytes: int = MAX_BYTES) -> None:
    """Append line + newline to log_file; rotates past max_bytes; swallows every failure."""
    try:
        data = _encode(line, min(MAX_LINE, max(max_bytes, 1)))
        fd = _open(log_file)
        try:
            if posix.fstat(fd).st_size + len(data) > max_bytes and _rotate(
                log_file, fd, len(data), max_bytes
            ):
                posix.close(fd)
                fd = -1
                fd = _open(log_file)
            posix.write(fd, data)
        finally:
            if fd >= 0:
                posix.close(fd)
    except Exception:  # noqa: BLE001 - a log failure must never fail the CNI call
        pass


def _encode(line: str, limit: int) -> bytes:
    text = line.replace("\r", "\\r").replace("\n", "\\n")  # one call, one line
    data = text.encode("utf-8", "backslashreplace")
    if len(data) >= limit:
        marker = b"...[cut]"
        data = data[: max(limit - len(marker) - 1, 0)] + marker
    return data + b"\n"


def _open(log_file: str) -> int:
    try:
        return posix.open(log_file, _FLAGS, 0o644)
    except FileNotFoundError:
        parent = fs.dirname(log_file)
        if not parent:
            raise
        fs.makedirs(parent, 0o755)
        return posix.open(log_file, _FLAGS, 0o644)


def _rotate(log_file: str, fd: int, incoming: int, max_bytes: int) -> bool:
    """Move the full file behind fd to .1 unless another call did; True when fd is stale now."""
    import fcntl  # only here: a module's first import costs every call that makes it

    fcntl.flock(fd, fcntl.LOCK_EX)  # parallel calls: one at a time decides and rotates
    try:
        mine, now = posix.fstat(fd), posix.stat(log_file)
        if (mine.st_dev, mine.st_ino) != (now.st_dev, now.st_ino):
            return True  # rotated by another call meanwhile
        if posix.fstat(fd).st_size + incoming > max_bytes:
            posix.replace(log_file, log_file + ".1")
            return True
        return False
    except FileNotFoundError:
        return True  # moved away just now: a fresh file will be created
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
