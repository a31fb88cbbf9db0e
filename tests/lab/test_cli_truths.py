"""The CLI's small truths (issue 16): --debug before or after the command, exit 130 when Ctrl-C ends
`logs -f`, progress while `check` runs, `label` without kind says kind is missing, and the pull error
of a node image names the local node images usable as --image.

Real CLI as a subprocess, real Docker engine; the lab is a docker-provider cluster made by `nppctl up`
(no kind needed). Every cluster here is named np16c*; a finalizer removes it whatever the tests did.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ended_by_sigint, sigint_default

CLUSTER = "np16cl"


def nppctl(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "nppctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def path_without_kind() -> str:
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "kind").exists())


def remove(docker_client, name: str, cwd: Path) -> None:
    nppctl("down", "--purge", "--name", name, cwd=cwd)
    for c in docker_client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"}):
        c.remove(force=True, v=True)


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory, docker_client, node_image) -> Path:
    """A docker-provider lab (control plane + 1 worker, nppnet installed) named CLUSTER; its folder."""
    cwd = tmp_path_factory.mktemp("np16c")
    remove(docker_client, CLUSTER, cwd)  # leftovers of an interrupted run
    request.addfinalizer(lambda: remove(docker_client, CLUSTER, cwd))
    done = nppctl("up", "--provider", "docker", "--workers", "1", "--no-mounts", "--name", CLUSTER,
                  "--image", node_image, cwd=cwd, timeout=600)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return cwd


@pytest.mark.parametrize("argv", [["up", "--debug", "--name", "BAD_NAME"],
                                  ["--debug", "up", "--name", "BAD_NAME"],
                                  ["up", "--name", "BAD_NAME", "--debug"]])
def test_debug_before_or_after_the_command_shows_the_traceback(tmp_path, argv):
    done = nppctl(*argv, cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback (most recent call last)" in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cluster name 'BAD_NAME' is not valid")
    assert list(tmp_path.iterdir()) == []


def test_debug_as_an_options_value_is_that_value(tmp_path):
    done = nppctl("up", "--workers", "--debug", cwd=tmp_path)  # click reads "--debug" as the number
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Invalid value for '--workers'" in done.stderr and "Traceback" not in done.stderr  # not "requires"
    assert list(tmp_path.iterdir()) == []


def test_take_debug_leaves_what_follows_double_dash_and_option_values():
    from nppctl.cli.app import take_debug

    argv = ["cni", "exec", "--node", "worker", "p1", "--", "ip", "--debug"]
    assert take_debug(argv) == (argv, False)
    assert take_debug(["logs", "-n", "--debug", "--debug", "-f"]) == (["logs", "-n", "--debug", "-f"], True)
    assert take_debug(["up", "--workers", "2", "--debug"]) == (["up", "--workers", "2"], True)


def test_label_without_kind_says_kind_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run([sys.executable, "-m", "nppctl", "label", "--name", "np16cnokind"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=dict(env, PATH=path_without_kind()))
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: kind not found on PATH"), done.stderr
    assert "install kind" in lines[0] and "--provider docker" in lines[0]


def test_pull_error_names_the_local_node_images(docker_client, node_image, python_node_image):
    from nppctl.access.nodeimage import base_image
    from nppctl.errors import NppctlError

    said: list[str] = []
    ref = "kindest/node:v0.0.0-np16c-absent"  # no such tag anywhere, and this machine pulls nothing
    with pytest.raises(NppctlError) as caught:
        base_image(ref, docker_client, said.append)
    text = str(caught.value)
    assert said == [f"pulling {ref}"]
    assert text.startswith(f"node image {ref} is not on this machine and could not be pulled"), text
    listed = text.split("pass --image with a local node image: ", 1)[1].split(", ")
    assert node_image in listed and python_node_image in listed, text
    assert not any("busybox" in t or "nginx" in t for t in listed), text  # not node images


def test_logs_follow_ends_with_130_on_sigint_and_leaves_no_tail(lab, docker_client):
    added = nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "np16cp1", cwd=lab)
    assert added.returncode == 0, added.stderr  # a line in the plugin log for -f to show
    proc = subprocess.Popen([sys.executable, "-m", "nppctl", "logs", "-f", "--name", CLUSTER], cwd=lab,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200", NO_COLOR="1"), preexec_fn=sigint_default)
    try:
        first = proc.stdout.readline()  # following now
        assert first, proc.stderr.read() if proc.poll() is not None else "no line"
        time.sleep(0.5)
    except BaseException:
        proc.kill()
        raise
    ended_by_sigint(proc)
    for node in (f"{CLUSTER}-control-plane", f"{CLUSTER}-worker"):
        left = docker_client.containers.get(node).exec_run(["pgrep", "-a", "tail"]).output.decode()
        assert "nppnet.log" not in left, (node, left)


def test_check_shows_its_steps_on_a_terminal_and_json_stays_clean(lab):
    argv = [sys.executable, "-m", "nppctl", "check", "--name", CLUSTER]
    typescript = lab / "check.typescript"
    done = subprocess.run(["script", "-qec", shlex.join(argv), str(typescript)], capture_output=True,
                          cwd=lab, timeout=300, env=dict(os.environ, COLUMNS="200"))
    assert done.returncode == 0, (done.stdout, done.stderr)
    seen = typescript.read_bytes().decode(errors="replace")
    for step in ("checking connectivity: starting a check pod on each of 2 node(s)",
                 "checking connectivity: pinging every pair",
                 "checking connectivity: fetching through the Service"):
        assert step in seen, seen[-2000:]
    piped = nppctl("check", "--name", CLUSTER, "--json", cwd=lab, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["cluster"] == CLUSTER and piped.stderr == ""
