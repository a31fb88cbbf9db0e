"""Which byte code a plugin executable ran: its loader's record, read by running it in-process.

`argv(exe, python)` runs the executable's program as its shebang would (python3 -I -S -c), with
posix._exit and builtins.compile patched, and prints on stderr, as its last line,
`RECORD {json}`: "cached", the __cached__ of each embedded module (the loader's record:
"<embedded>" for the byte code the build embedded, the cache file's path for byte code made
for this python, null for modules compiled from the sources on this call), "compiled", the
file names compile() was called for, and "magic", this python's magic number (hex).
Used by the bench (bench/innode.py: which byte code ran) and the tests (tests/plugin/test_build.py,
tests/perf/); nppctl itself never runs it.
"""

from __future__ import annotations

import json

DRIVER = """
import builtins, json, posix, sys
exe = sys.argv.pop(1)
compiled = []
real = builtins.compile
def counting(source, filename, *args, **kwargs):
    compiled.append(str(filename))
    return real(source, filename, *args, **kwargs)
builtins.compile = counting
class Exit(BaseException):
    pass
def fake_exit(code):
    raise Exit(code)
posix._exit = fake_exit
with open(exe, "rb") as f:
    line = f.readline()
# the shebang's program, as the kernel runs it: python3 -ISc CODE FILE
code = real(line.rstrip(b"\\n").split(b" ", 1)[1].partition(b"c")[2], "<string>", "exec")
sys.argv = ["-c", exe]
try:
    exec(code, {"__name__": "__main__"})
except (Exit, SystemExit):
    pass
sys.stdout.flush()
cached = {n: getattr(m, "__cached__", None) for n, m in sys.modules.items() if n.startswith("nppctl")}
magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER.hex()
record = {"cached": cached, "compiled": compiled, "magic": magic}
sys.stderr.write("\\nRECORD " + json.dumps(record, sort_keys=True) + "\\n")
"""


def argv(exe: str, python: str = "/usr/bin/python3") -> list[str]:
    """The command that runs exe in-process and prints its record (the CNI_* environment and
    stdin are the caller's)."""
    return [python, "-I", "-S", "-c", DRIVER, exe]


def parse(stderr: str) -> dict:
    """The record from the driver's stderr."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("RECORD "):
            return json.loads(line[len("RECORD ") :])
    raise ValueError(f"no loader record in: {stderr[-300:]!r}")


def summary(record: dict) -> str:
    """'byte code from <where>' in one phrase."""
    places = {v for k, v in record["cached"].items() if k.startswith("nppctl.plugin.")}
    if record["compiled"] or None in places:
        return f"compiled from the sources ({len(record['compiled'])} compile calls)"
    if places == {"<embedded>"}:
        return "byte code embedded by the build (same python as the builder's)"
    return f"byte code made for this python, cached in {', '.join(sorted(places))}"
