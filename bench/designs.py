#!/usr/bin/env python3
"""Issue 18's two designs, measured before choosing one: what each would give, interleaved
against today's nppnet and the Go reference (bridge + host-local).

- `agent`: the resident-agent pattern at its best. A prototype server (this file, `--serve`)
  loads the built nppnet's own modules once (its program run in-process, as nppctl/build/record.py
  does) and answers each request in a thread with protocol.run; the client is the smallest
  python3 -I -S script that can hand a call over (`_socket` and `posix` only: CNI_* variables
  and stdin out, exit status and stdout back). No build id, no timeout, no fallback: a real
  client only adds to this, so these figures are the floor of that design.
- `shfront`: a /bin/sh front line that answers VERSION itself (printf, no python; also no call
  log line, which the plugin writes today) and execs nppnet for every other command: its
  VERSION, and what the extra exec costs every ADD, DEL and CHECK.

Same rounds and bursts as plugin_latency.py (whose code this reuses): per round ADD, CHECK, DEL,
VERSION of each of the four, order flipped every round; then bursts of N parallel ADDs and DELs
(nppnet, agent, reference). Needs root. `python3 bench/designs.py [--rounds N] [--plugin PATH]
[--bursts 16,64] [--burst-repeats 3]`; `--node NODE --name CLUSTER` runs it inside a lab node.
Nothing here ships: the prototype and both fronts live in a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_latency as pl  # noqa: E402 - the bench folder itself, put on the path above

CLIENT = """#!/usr/bin/python3 -IS
import _socket, posix
s = _socket.socket(1, 1)
s.connect({sock!r})
env = b"".join(k + b"=" + v + b"\\0" for k, v in posix.environ.items() if k[:4] == b"CNI_")
data = b""
chunk = posix.read(0, 65536)
while chunk:
    data += chunk
    chunk = posix.read(0, 65536)
s.sendall(env + b"\\0" + data)
s.shutdown(1)
reply = b""
chunk = s.recv(65536)
while chunk:
    reply += chunk
    chunk = s.recv(65536)
posix.write(1, reply[1:])
posix._exit(reply[0])
"""

SHFRONT = """#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then
  printf '%s' '{{"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}'
  exit 0
fi
exec {exe}
"""


class _Exit(BaseException):
    pass


def _raise_exit(code):
    raise _Exit(code)


def load_plugin(exe: str) -> tuple:
    """Run exe's program in this process as its shebang would (a VERSION, output dropped), so
    its loader puts the plugin's modules in sys.modules; (protocol, COMMANDS)."""
    import posix

    real_exit = posix._exit
    posix._exit = _raise_exit
    with open(exe, "rb") as f:
        line = f.readline()
    program = compile(line.rstrip(b"\n").split(b" ", 1)[1].partition(b"c")[2], "<string>", "exec")
    argv, stdout, stdin = sys.argv, sys.stdout, sys.stdin
    sys.argv, sys.stdout, sys.stdin = ["-c", exe], io.StringIO(), io.TextIOWrapper(io.BytesIO(b""))
    posix.environ[b"CNI_COMMAND"] = b"VERSION"  # what the plugin reads (os.environ is a copy)
    try:
        exec(program, {"__name__": "__main__"})
    except _Exit:
        pass
    finally:
        sys.argv, sys.stdout, sys.stdin = argv, stdout, stdin
        posix._exit = real_exit
    from nppctl.plugin import protocol
    from nppctl.plugin.nppnet import COMMANDS

    return protocol, COMMANDS


def serve(exe: str, sock_path: str) -> None:
    """The prototype agent: one thread per connection, protocol.run on the request."""
    import socket

    protocol, commands = load_plugin(exe)

    def handle(conn: socket.socket) -> None:
        with conn:
            request = b""
            while chunk := conn.recv(65536):
                request += chunk
            head, _, stdin = request.partition(b"\0\0") if request[:1] != b"\0" else (b"", b"", request[1:])
            environ = dict(item.decode().split("=", 1) for item in head.split(b"\0") if item)
            out = io.StringIO()
            status = protocol.run(commands, environ, io.BytesIO(stdin), out)
            conn.sendall(bytes([status]) + out.getvalue().encode())

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    os.chmod(sock_path, 0o600)
    server.listen(256)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def start_agent(exe: Path, work: Path) -> tuple[subprocess.Popen, Path]:
    sock = work / "agent.sock"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", __file__, "--serve", str(exe), str(sock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit("bench: the prototype agent did not start")
    client = work / "bin-agent" / "nppnet"
    client.parent.mkdir()
    client.write_text(CLIENT.format(sock=str(sock)))
    client.chmod(0o755)
    return proc, client


def variants(nppnet: Path, work: Path, reference_dir: Path, client: Path) -> tuple[pl.Plugin, ...]:
    ours, reference = pl.make_plugins(nppnet, work, reference_dir)
    front = work / "bin-sh" / "nppnet"
    front.parent.mkdir()
    front.write_text(SHFRONT.format(exe=nppnet))
    front.chmod(0o755)

    def like_ours(label: str, exe: Path, n: int) -> pl.Plugin:
        name, bridge, subnet = f"np2bench-{label[0]}", f"np2b{label[0].upper()}", f"10.202.24{n}.0/24"
        data = work / f"{label}-data"
        conf = pl.nppnet_conf(name, bridge, subnet, data, work / f"{label}.log")
        return dataclasses.replace(
            ours, label=label, exe=exe, conf=conf, bridge=bridge, subnet=subnet, data_dir=data, adds=[],
            dels=[], checks=[], versions=[],
        )  # fmt: skip

    return ours, like_ours("agent", client, 3), like_ours("shfront", front, 4), reference


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved latency rounds (default 30)")
    parser.add_argument("--plugin", type=Path, help="a built nppnet (default: build one now)")
    parser.add_argument("--bursts", default="16,64", help="burst sizes, comma separated (default 16,64)")
    parser.add_argument("--burst-repeats", type=int, default=3, help="bursts per size and plugin (default 3)")
    pl.add_place_arguments(parser)
    args = parser.parse_args()
    if args.node:
        return pl.run_in_node(args, Path(__file__).name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, bridges)")
    pl.check_reference(args.reference_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{pl.PREFIX}-"))
    plugins: tuple[pl.Plugin, ...] = ()
    agent = None
    try:
        nppnet = args.plugin.resolve() if args.plugin else pl.build_nppnet(work / "bin")
        agent, client = start_agent(nppnet, work)
        plugins = variants(nppnet, work, args.reference_dir, client)
        pl.print_place(nppnet, args.reference_dir)
        pl.latency_rounds(plugins, args.rounds)  # type: ignore[arg-type] - any number of plugins
        reference = plugins[-1]
        for p in plugins[:-1]:
            print(f"\n== {p.label}")
            pl.report_latency(p, reference)
        for n in (int(x) for x in args.bursts.split(",") if x.strip()):
            bursting = (plugins[0], plugins[1], reference)
            runs: dict[str, list[dict]] = {p.label: [] for p in bursting}
            for k in range(args.burst_repeats):
                for p in bursting if k % 2 == 0 else bursting[::-1]:
                    runs[p.label].append(pl.burst(p, n))
            for p in bursting[:-1]:
                ours, theirs = pl.combine(runs[p.label]), pl.combine(runs[reference.label])
                pl.report_burst(n, args.burst_repeats, ours, theirs, p.label)
    except subprocess.TimeoutExpired as err:
        raise SystemExit(f"bench: a plugin call hung for over {err.timeout:g}s ({err.cmd})") from None
    finally:
        if agent is not None:
            agent.kill()
            agent.wait()
        time.sleep(0.1)
        pl.cleanup(plugins, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
