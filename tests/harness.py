"""What the tests share to drive code in other processes: a CNI plugin executed as a container runtime
executes it (environment + stdin + exec; tests/plugin, tests/robustness and the build tests), Python
code in a fresh interpreter as the plugin runs (one interpreter per call), and a full small disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # a runtime's PATH (containerd's default)
CNI_PATH = "/usr/lib/cni"  # Debian's reference plugins (delegated IPAM, chains)


@dataclass
class Reply:
    """What one call of a plugin produced, exec to exit."""

    rc: int
    stdout: str
    stderr: str
    ms: float = 0.0

    @property
    def obj(self) -> dict:
        return json.loads(self.stdout)

    @property
    def address(self) -> str:
        """The first address of the result, as the result writes it (10.201.3.2/24)."""
        return self.obj["ips"][0]["address"]

    @property
    def ip(self) -> str:
        """The first address of the result without its prefix length."""
        return self.address.split("/")[0]

    def __str__(self) -> str:
        return f"rc={self.rc} stdout={self.stdout[:400]!r} stderr={self.stderr[-400:]!r}"


def runtime_env(command: str, **variables: str | None) -> dict[str, str]:
    """The environment a runtime gives a plugin: PATH, CNI_COMMAND, CNI_PATH, then VARIABLES (CNI_IFNAME=...,
    or PATH=... in place of the runtime's); a variable given as None is left out."""
    env: dict[str, str | None] = {"PATH": RUNTIME_PATH, "CNI_COMMAND": command, "CNI_PATH": CNI_PATH}
    env.update(variables)
    return {k: v for k, v in env.items() if v is not None}


def call_env(command: str, container_id: str = "", netns: str = "", ifname: str = "eth0", **extra) -> dict:
    """runtime_env with the attachment's CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME always set."""
    return runtime_env(command, CNI_CONTAINERID=container_id, CNI_NETNS=netns, CNI_IFNAME=ifname, **extra)


def stdin_of(conf: dict | str | bytes | None) -> bytes:
    """A config as the plugin reads it: a dict as JSON, text as UTF-8, bytes as they are, None as nothing."""
    if conf is None:
        return b""
    if isinstance(conf, bytes):
        return conf
    return (conf if isinstance(conf, str) else json.dumps(conf)).encode()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def run(argv: list, env: dict, stdin: bytes = b"", cwd: Path | None = None, timeout: float = 60) -> Reply:
    """ARGV (a plugin, or a command that runs one) with exactly ENV and STDIN, its streams apart."""
    started = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], input=stdin, env=env, cwd=cwd, capture_output=True,
                          timeout=timeout)
    ms = (time.perf_counter() - started) * 1000
    return Reply(done.returncode, _text(done.stdout), _text(done.stderr), ms)


def exec_plugin(exe: Path, command: str, conf: dict | str | bytes | None, **variables: str | None) -> Reply:
    """EXE run as a runtime runs it: runtime_env(COMMAND, **VARIABLES), CONF on stdin."""
    return run([exe], runtime_env(command, **variables), stdin_of(conf), timeout=30)


def spawn(exe: Path, env: dict, stdin: bytes) -> subprocess.Popen:
    """EXE started with ENV and STDIN (written and closed); collect() gathers the replies."""
    proc = subprocess.Popen([str(exe)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(stdin)
    proc.stdin.close()
    proc.stdin = None  # written and closed: communicate() must not touch it again
    return proc


def collect(procs: list[subprocess.Popen], started: float, timeout: float = 120) -> list[Reply]:
    """The replies of PROCS in order; ms counts from STARTED (time.perf_counter())."""
    replies = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        replies.append(Reply(p.returncode, _text(out), _text(err), (time.perf_counter() - started) * 1000))
    return replies


def remove_rules(bridge: str) -> None:
    """nppnet's iptables rules for BRIDGE, of every network on it (its chains stay: the session's end
    removes those it made, tests/conftest.py)."""
    from nppctl.plugin import firewall

    try:
        firewall.remove(bridge)
    except firewall.FirewallError:
        pass


# -- Python in a fresh interpreter, as the plugin runs; a full disk ----------------------------------


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with the repo importable (a separate process, as the plugin is)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def spawn_python(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def fill(mnt: Path) -> None:
    """Use up every block and inode of a small tmpfs (the full-disk tests; mount_point mounts one)."""
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
