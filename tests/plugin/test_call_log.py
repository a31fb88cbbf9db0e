"""nppctl.plugin.log.append: size cap, whole lines under parallel writers, never an exception."""

from __future__ import annotations

import os

from nppctl.plugin import log
from tests.harness import spawn_python

WRITER = """
import sys
from nppctl.plugin import log
path, tag, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(400):
    log.append(path, "%s %05d %s" % (tag, i, "x" * 180), max_bytes=cap)
"""


def test_lines_are_appended_one_per_call(tmp_path):
    path = str(tmp_path / "nppnet.log")
    log.append(path, "ADD c1 ok")
    log.append(path, 'DEL c1 {"a":\n 1}')  # a newline in the data must not split the call's line
    assert open(path).read() == 'ADD c1 ok\nDEL c1 {"a":\\n 1}\n'


def test_size_stays_capped_with_one_rotated_file(tmp_path):
    path = str(tmp_path / "nppnet.log")
    cap = 16 * 1024
    for i in range(2000):  # ~200 KiB written in total
        log.append(path, f"{i:06d} " + "y" * 90, max_bytes=cap)
        assert os.path.getsize(path) <= cap
    assert sorted(os.listdir(tmp_path)) == ["nppnet.log", "nppnet.log.1"]
    assert os.path.getsize(path + ".1") <= cap
    last = open(path).read().splitlines()[-1]
    assert last.startswith("001999 ")
    # the rotated file holds the lines just before the current file's first line
    first_now = int(open(path).read().split(" ", 1)[0])
    assert int(open(path + ".1").read().splitlines()[-1].split(" ", 1)[0]) == first_now - 1


def test_one_huge_line_is_cut_not_the_budget(tmp_path):
    path = str(tmp_path / "nppnet.log")
    log.append(path, "z" * (5 << 20))
    size = os.path.getsize(path)
    assert size <= log.MAX_LINE and open(path).read().endswith("...[cut]\n")


def test_parallel_writers_keep_lines_whole_and_size_capped(tmp_path):
    path = str(tmp_path / "nppnet.log")
    cap = 64 * 1024
    procs = [spawn_python(WRITER, path, f"w{n}", str(cap)) for n in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    seen = 0
    for name in ("nppnet.log", "nppnet.log.1"):
        full = os.path.join(tmp_path, name)
        # a writer that saw the file before a rotation may finish its one line in .1
        assert os.path.getsize(full) <= cap + 400
        for line in open(full).read().splitlines():
            tag, num, pad = line.split(" ")
            assert tag[0] == "w" and len(num) == 5 and pad == "x" * 180, line
            seen += 1
    assert 0 < seen <= 6 * 400
    assert sorted(os.listdir(tmp_path)) == ["nppnet.log", "nppnet.log.1"]


def test_failures_never_raise(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for bad in (
        str(blocker / "under-a-file.log"),  # ENOTDIR
        str(tmp_path),  # a directory
        "bad\0path",  # ValueError, not OSError
        "",
    ):
        log.append(bad, "line")
    log.append(str(tmp_path / "x.log"), "\udcff surrogate and é")  # undecodable text
    assert open(tmp_path / "x.log", "rb").read() == b"\\udcff surrogate and \xc3\xa9\n"


def test_missing_log_directory_is_created(tmp_path):
    path = tmp_path / "var" / "log" / "nppnet.log"
    log.append(str(path), "first")
    assert path.read_text() == "first\n"
