"""Filling a small tmpfs, for the full-disk tests."""

from __future__ import annotations

import os


def fill(mnt) -> None:
    """Use up every block and inode of a small tmpfs."""
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    n = 0
    try:
        while True:
            os.close(os.open(mnt / f"inode{n}", os.O_WRONLY | os.O_CREAT))
            n += 1
    except OSError:
        pass
