"""Fixtures of the call-recorder tests: a container of the test node image (no privileges: the recorder
needs none) holding test plugins twice, plain at /direct/TYPE and recorded at /opt/cni/bin/TYPE (the
files nppctl.access.recorder gives install), and a way to call either as a runtime does.

Containers are named np24b-*; each is removed at the end of its module whatever the tests did.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nppctl.access.recorder import recorder_dirs, recorder_files

PLUGINS = Path(__file__).resolve().parent / "plugins"


@dataclass
class Outcome:
    stdout: bytes
    stderr: bytes
    exit: int


def put(container, path: str, data: bytes, mode: int = 0o644) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(os.path.dirname(path), buf.getvalue())


def sh(container, script: str, *args: str) -> tuple[int, bytes]:
    code, out = container.exec_run(["bash", "-c", script, "bash", *args])
    return code, out


def get(container, path: str) -> bytes:
    code, out = container.exec_run(["cat", path], stderr=False)
    assert code == 0, (path, out)
    return out


@dataclass
class Box:
    container: object
    mode: str = ""  # readonly_box: which folders are read-only

    def call(self, plugin: str, stdin: bytes = b"", env: dict | None = None) -> Outcome:
        """PLUGIN (a path) called as a runtime calls it: env -i with ENV only, STDIN, streams apart."""
        work = "/work"
        sh(self.container, f"mkdir -p {work}")
        put(self.container, f"{work}/in", stdin)
        variables = [f"{k}={v}" for k, v in (env or {}).items()]
        code, out = self.container.exec_run(
            ["bash", "-c", f'W={work}; /usr/bin/env -i "$@" <"$W/in" >"$W/out" 2>"$W/err"; echo $? >"$W/rc"',
             "bash", *variables, plugin])
        assert code == 0, out
        return Outcome(get(self.container, f"{work}/out"), get(self.container, f"{work}/err"),
                       int(get(self.container, f"{work}/rc")))

    def records(self) -> list[str]:
        from nppctl.nodeside.calls import CALLS_DIR

        code, out = sh(self.container, f"cd {CALLS_DIR} 2>/dev/null && ls -1 | grep '\\.call$'")
        return out.decode().split() if code == 0 else []

    def record(self, name: str) -> bytes:
        from nppctl.nodeside.calls import CALLS_DIR

        return get(self.container, f"{CALLS_DIR}/{name}")

    def clear(self) -> None:
        from nppctl.nodeside.calls import CALLS_DIR

        sh(self.container, f"rm -rf {CALLS_DIR}")


def install(container, ptype: str, executable: bytes) -> None:
    """TYPE plain at /direct/TYPE and recorded at /opt/cni/bin/TYPE."""
    sh(container, "mkdir -p /direct " + " ".join(recorder_dirs()))
    put(container, f"/direct/{ptype}", executable, 0o755)
    for path, (data, mode) in recorder_files(ptype, executable).items():
        put(container, path, data, mode)


def start_box(docker_client, image: str, name: str, **options):
    try:
        docker_client.containers.get(name).remove(force=True)
    except Exception:  # noqa: BLE001 - none left from an earlier run
        pass
    container = docker_client.containers.run(image, ["sleep", "infinity"], entrypoint=[], name=name,
                                             detach=True, **options)
    bash = container.exec_run(["cat", "/bin/bash"], stderr=False).output
    install(container, "echo", (PLUGINS / "echo").read_bytes())
    install(container, "shplug", bash)  # a binary plugin: bash reading its program from stdin
    install(container, "badnet", (PLUGINS / "badnet").read_bytes())
    return container


@pytest.fixture(scope="module")
def box(request, docker_client, node_image):
    container = start_box(docker_client, node_image, f"np24b-box-{os.getpid()}")
    request.addfinalizer(lambda: container.remove(force=True))
    return Box(container)


@pytest.fixture(scope="module", params=["records", "records+scratch"])
def readonly_box(request, docker_client, node_image):
    """The record folder read-only (a tmpfs mounted ro): no record can be written; with "+scratch"
    /dev/shm too, so the recorder cannot even keep the streams (it execs the plugin directly)."""
    from nppctl.nodeside.calls import CALLS_DIR

    tmpfs = {CALLS_DIR: "ro", **({"/dev/shm": "ro"} if "scratch" in request.param else {})}
    container = start_box(docker_client, node_image, f"np24b-robox-{os.getpid()}", tmpfs=tmpfs)
    request.addfinalizer(lambda: container.remove(force=True))
    return Box(container, request.param)
