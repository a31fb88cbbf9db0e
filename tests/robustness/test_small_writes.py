"""Issue 25, point 6: two small writers made safe, each tested on the code itself.

- The node agent's write_json (its state record, the keeper's config, the runtime's cached results) used
  one fixed `path + ".tmp"`: two agents writing at once (two installs) shared it, and one's rename found it
  gone or renamed the other's half-written file.
- The plugin's call log opened its path following symlinks: a log path that is a symlink wrote wherever
  the link pointed.
"""

from __future__ import annotations

import json
import multiprocessing
import os

from nppctl.nodeside.base import write_json
from nppctl.plugin import log


def _writer(path: str, who: int, rounds: int, errors) -> None:
    for i in range(rounds):
        try:
            write_json(path, {"who": who, "i": i, "pad": "x" * 4096})
        except Exception as err:  # noqa: BLE001 - counted: the test says which
            errors.put(f"{who}: {type(err).__name__}: {err}")


def test_concurrent_write_json_never_fails_nor_leaves_a_torn_file(tmp_path):
    path = str(tmp_path / "state.json")
    errors = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_writer, args=(path, who, 300, errors)) for who in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, f"{len(found)} failed writes, e.g. {found[:3]}"
    with open(path) as f:
        last = json.load(f)  # whole: one writer's last record
    assert last["i"] == 299 and len(last["pad"]) == 4096
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temporary file left behind


def test_the_call_log_is_never_written_through_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("before\n")
    link = tmp_path / "nppnet.log"
    link.symlink_to(target)
    log.append(str(link), "ADD something")
    assert target.read_text() == "before\n"
    plain = tmp_path / "plain.log"
    log.append(str(plain), "ADD something")  # an ordinary path still logs
    assert plain.read_text() == "ADD something\n"
