#!/usr/bin/env python3
"""Where one nppnet ADD spends its time: start-up, imports, work, system calls.

Prints, for the built plugin (or --plugin PATH) on this machine:
  1. medians of: the interpreter alone (same shebang: an empty script, and one that leaves
     through posix._exit as the plugin does), the plugin's VERSION
     (start-up + imports), ADD and DEL, and the reference bridge's VERSION / ADD / DEL;
  2. CPU time per call (user + sys, mean over the runs: what bursts on few cores pay);
  3. `-X importtime` of the plugin's modules (cumulative microseconds, biggest first);
  4. cProfile of one ADD in-process (os._exit patched so the profile can print);
  5. `strace -c -w -f` of one ADD: wall time per system call (when strace is installed);
  6. callgrind's instruction counts of one VERSION, ADD, CHECK and DEL (when valgrind is).
Needs root. Uses netns np2p-<pid>-*, bridges np2pN/np2pR, 10.202.238-239.0/24; removes them.
`python3 bench/profile_add.py [--plugin PATH] [--runs N] [--reference-dir DIR]`; with
`--node NODE --name CLUSTER` inside that lab node, on its python3 (see bench/plugin_latency.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plugin_latency import (  # noqa: E402
    RUNTIME_PATH,
    add_place_arguments,
    build_nppnet,
    check_reference,
    drop_firewall_rules,
    nppnet_conf,
    print_place,
    reference_conf,
    run_in_node,
)

PREFIX = f"np2p-{os.getpid()}"
PROFILE_DRIVER = """
import cProfile, io, os, posix, pstats, sys
exe = sys.argv.pop(1)
class Exit(BaseException):
    pass
def fake_exit(code):
    raise Exit(code)
os._exit = posix._exit = fake_exit
with open(exe, "rb") as f:  # the shebang's program (python3 -ISc CODE FILE), as the kernel runs it
    line = f.readline()
code = compile(line.rstrip(b"\\n").split(b" ", 1)[1].partition(b"c")[2], "<string>", "exec")
sys.argv = ["-c", exe]
prof = cProfile.Profile()
try:
    prof.runcall(exec, code, {"__name__": "__main__"})
except (Exit, SystemExit):
    pass
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
sys.stderr.write(out.getvalue())
"""


def env(command: str, cid: str, netns: str) -> dict:
    return {
        "PATH": RUNTIME_PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{netns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": CNI_PATH[0],
    }


CNI_PATH = [""]  # the reference plugins' folder (--reference-dir)


def timed(argv: list[str], environ: dict, stdin: bytes) -> tuple[float, float]:
    """(wall ms, cpu ms) of one exec."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=environ, input=stdin, capture_output=True, timeout=30)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"profile: {argv[-1]} {environ.get('CNI_COMMAND')} failed: {done.stdout[:300]!r}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", type=Path, help="a built nppnet (default: build one now)")
    parser.add_argument("--runs", type=int, default=30)
    add_place_arguments(parser)
    args = parser.parse_args()
    if args.node:
        return run_in_node(args, Path(__file__).name)
    if os.geteuid() != 0:
        raise SystemExit("profile: needs root")
    check_reference(args.reference_dir)
    CNI_PATH[0] = str(args.reference_dir)
    reference = args.reference_dir / "bridge"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/var/tmp"))  # a node's /tmp is noexec
    netns = f"{PREFIX}-ns"
    ours_conf = nppnet_conf("np2prof", "np2pN", "10.202.238.0/24", work / "data", work / "log")
    ref_conf = reference_conf("np2profr", "np2pR", "10.202.239.0/24", work / "ref")
    try:
        exe = args.plugin.resolve() if args.plugin else build_nppnet(work / "bin")
        print_place(exe, args.reference_dir)
        python, flags = open(exe).readline()[2:].rstrip("\n").split(" ", 1)
        interpreter = [python, "-IS"]  # the shebang's flags, without its program (-c CODE)
        program = flags.partition("c")[2]
        empty = work / "empty"
        empty.write_text(f"#!{' '.join(interpreter)}\n")
        empty.chmod(0o755)
        # the plugin leaves through os._exit: this is its real floor (no interpreter clean-up)
        bare = work / "bare"
        bare.write_text(f"#!{' '.join(interpreter)}\nimport posix\nposix._exit(0)\n")
        bare.chmod(0o755)
        subprocess.run(["ip", "netns", "add", netns], check=True)
        ours, ref = json.dumps(ours_conf).encode(), json.dumps(ref_conf).encode()
        cases = {
            "interpreter, empty script": ([str(empty)], "VERSION", b""),
            "interpreter, posix._exit": ([str(bare)], "VERSION", b""),
            "nppnet VERSION": ([str(exe)], "VERSION", ours),
            "nppnet ADD": ([str(exe)], "ADD", ours),
            "nppnet DEL": ([str(exe)], "DEL", ours),
            "reference VERSION": ([str(reference)], "VERSION", ref),
            "reference ADD": ([str(reference)], "ADD", ref),
            "reference DEL": ([str(reference)], "DEL", ref),
        }
        for argv, command, stdin in cases.values():  # warm: bridges, firewall rules, page cache
            timed(argv, env(command, "np2pwarm", netns), stdin)
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for label, (argv, command, stdin) in cases.items():
                samples[label].append(timed(argv, env(command, "np2pwarm", netns), stdin))
        print(f"1-2. {args.runs} interleaved runs: wall median / p95, CPU per call (mean)")
        for label, xs in samples.items():
            walls = sorted(w for w, _ in xs)
            cpu = statistics.mean(c for _, c in xs)
            print(
                f"  {label:28}{statistics.median(walls):7.2f} /{walls[int(len(walls) * 0.95) - 1]:6.2f} ms"
                f"   cpu {cpu:5.1f} ms"
            )

        print("\n3. -X importtime of one VERSION (cumulative us, biggest first)")
        out = subprocess.run(
            [*interpreter, "-X", "importtime", "-c", program, str(exe)],
            env=env("VERSION", "x", netns),
            input="",
            capture_output=True,
            text=True,
        )
        rows = []
        for line in out.stderr.splitlines()[1:]:
            parts = line.split("|")
            if len(parts) == 3:
                rows.append((int(parts[1]), parts[2].rstrip()))
        for cum, name in sorted(rows, reverse=True)[:12]:
            print(f"  {cum:7d}  {name}")

        print("\n4. cProfile of one ADD (top by own time)")
        drv = work / "profile_driver.py"
        drv.write_text(PROFILE_DRIVER)
        prof = subprocess.run(
            [*interpreter, str(drv), str(exe)],
            env=env("ADD", "np2pprof", netns),
            input=ours.decode(),
            capture_output=True,
            text=True,
        )
        print("\n".join("  " + ln for ln in prof.stderr.splitlines() if ln.strip())[:4000])
        subprocess.run([str(exe)], env=env("DEL", "np2pprof", netns), input=ours, capture_output=True)

        print("\n5. strace -c -w -f of one ADD (wall time in system calls)")
        if shutil.which("strace"):
            st = subprocess.run(
                ["strace", "-c", "-w", "-f", str(exe)],
                env=env("ADD", "np2pstrace", netns),
                input=ours.decode(),
                capture_output=True,
                text=True,
            )
            lines = st.stderr.splitlines()
            print("\n".join("  " + ln for ln in lines[:14] + lines[-1:]))
            subprocess.run([str(exe)], env=env("DEL", "np2pstrace", netns), input=ours, capture_output=True)
        else:
            print("  (strace not installed)")
        instructions(exe, bare, ours, netns)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        for bridge, subnet in (("np2pN", "10.202.238.0/24"), ("np2pR", "10.202.239.0/24")):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            drop_firewall_rules(subnet, bridge)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def instructions(exe: Path, bare: Path, conf: bytes, netns: str) -> None:
    """6. callgrind's count of user-space instructions of one call of each command: the same on
    a busy machine as on a quiet one, where wall times are not (kernel work is not counted)."""
    print("\n6. instructions of one call (callgrind, user space, millions)")
    if not shutil.which("valgrind"):
        print("  (valgrind not installed)")
        return

    def count(argv: list[str], command: str, stdin: bytes) -> tuple[float, bytes]:
        with tempfile.NamedTemporaryFile() as out:
            run = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *argv]
            done = subprocess.run(run, env=env(command, "np2pir", netns), input=stdin, capture_output=True)
        found = re.search(r"Collected : (\d+)", done.stderr.decode())
        return (int(found[1]) / 1e6 if found else float("nan")), done.stdout

    print(f"  {'interpreter, posix._exit':28}{count([str(bare)], 'VERSION', b'')[0]:8.2f}")
    added = b"{}"
    for command in ("VERSION", "ADD", "CHECK", "DEL"):
        stdin = conf
        if command == "CHECK":  # the ADD's result as prevResult
            stdin = json.dumps(dict(json.loads(conf), prevResult=json.loads(added))).encode()
        millions, out = count([str(exe)], command, stdin)
        added = out if command == "ADD" else added
        label = f"nppnet {command}"
        print(f"  {label:28}{millions:8.2f}")


if __name__ == "__main__":
    sys.exit(main())
