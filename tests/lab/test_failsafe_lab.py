"""nppctl fails safe on the host side: checks before it writes, undoes or names what a failure left,
plain one-line errors, a half-made cluster detected, and a purge that deletes only what nppctl made.

Real Docker engine and the stand-in kind; every cluster here is named np6*.
"""

from __future__ import annotations

import json
import os

import pytest


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_line_error(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_up_without_kind_writes_nothing(cli):
    cli.env["PATH"] = os.pathsep.join(
        p for p in cli.env["PATH"].split(os.pathsep) if not os.path.exists(os.path.join(p, "kind"))
    )
    done = cli.run("up", "--name", "np6a", ok=False)
    assert "kind not found on PATH" in one_line_error(done)
    assert files_under(cli.cwd) == []


@pytest.mark.parametrize("provider", ["kind", "docker"])
def test_up_without_docker_writes_nothing(cli, provider):
    cli.env["DOCKER_HOST"] = f"unix://{cli.cwd.parent}/np6-nothing-listens.sock"
    done = cli.run("up", "--name", "np6d", "--provider", provider, ok=False)
    assert "Docker engine not reachable" in one_line_error(done)
    assert files_under(cli.cwd) == []


@pytest.mark.parametrize("name", ["bad name", "Np6", "np6_x", "..", "np6/../../x"])
def test_a_name_kind_refuses_is_refused_everywhere_before_any_write(cli, name):
    for args in (
        ["up", "--name", name, "--provider", "docker", "--image", cli.image],
        ["down", "--purge", "--name", name],
        ["status", "--name", name],
        ["install", "--name", name, "--all"],
        ["logs", "--name", name],
        ["label", "--name", name],
        ["check", "--name", name],
    ):
        done = cli.run(*args, ok=False)
        assert "is not valid: kind accepts lower-case letters, digits" in one_line_error(done), args
    assert files_under(cli.cwd) == []


def test_dockers_bracketed_message_reaches_the_user_intact_and_the_run_removes_its_files(lab):
    # kind's rule allows a leading '.', Docker's container names do not: Docker refuses the node
    lab.clusters.append(".np6b")
    done = lab.run("up", "--name", ".np6b", "--provider", "docker", "--image", lab.image, ok=False)
    line = one_line_error(done)
    assert "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in line, line
    assert "nothing left behind" in line
    assert files_under(lab.cwd) == []


def test_a_cluster_half_made_by_kind_is_detected_and_down_purge_is_the_way_out(lab, kind_world):
    lab.clusters.append("np6h")
    assert lab.kind_create("np6h").returncode == 0
    # as when `kind create` is interrupted before kubeadm init is done: nodes, no admin.conf, so
    # `kind get kubeconfig` has nothing to give
    lab.docker.containers.get("np6h-control-plane").exec_run(["rm", "-f", "/etc/kubernetes/admin.conf"])
    done = lab.run("up", "--name", "np6h", "--image", lab.kind_image, ok=False)
    line = one_line_error(done)
    assert "exists but is half made (kind gives no kubeconfig for it)" in line, line
    assert "nppctl down --purge --name np6h" in line and "exists, kept" not in done.stdout
    lab.run("down", "--purge", "--name", "np6h")
    assert lab.containers("np6h") == [] and files_under(lab.cwd) == []


def test_a_stopped_node_makes_up_say_half_made(lab, kind_world):
    lab.clusters.append("np6t")
    assert lab.kind_create("np6t").returncode == 0
    lab.docker.containers.get("np6t-control-plane").stop(timeout=0)
    done = lab.run("up", "--name", "np6t", "--workers", "0", "--image", lab.kind_image, ok=False)
    line = one_line_error(done)
    assert "half made (np6t-control-plane is exited)" in line, line


def plant_state(lab, name: str, created: list[str]) -> None:
    folder = lab.cwd / ".nppctl" / name
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"name": name, "provider": "docker", "created": created}))


@pytest.mark.parametrize("entry", ["/etc/passwd", "../x", "OUTSIDE", "NOTES", "LINK", "/"])
def test_down_purge_refuses_a_state_file_naming_what_nppctl_did_not_make(cli, entry):
    outside = cli.cwd.parent / "np6-outside"
    outside.mkdir()
    notes = cli.cwd / "notes.txt"
    notes.write_text("mine")
    link = cli.cwd / "link"
    link.symlink_to(outside)
    (cli.cwd.parent / "x").mkdir()
    entry = {"OUTSIDE": str(outside), "NOTES": str(notes), "LINK": str(link)}.get(entry, entry)
    own = cli.cwd / ".nppctl"
    plant_state(cli, "np6p", [str(own), entry, str(own / "np6p" / "state.json")])
    before = files_under(cli.cwd.parent)
    passwd = open("/etc/passwd", "rb").read()
    done = cli.run("down", "--purge", "--name", "np6p", ok=False)
    line = one_line_error(done)
    assert "refusing to purge" in line and repr(entry) in line and "nothing was deleted" in line, line
    assert files_under(cli.cwd.parent) == before
    assert open("/etc/passwd", "rb").read() == passwd


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"name": "other", "provider": "docker", "created": []}',
             '{"name": "np6c", "provider": "docker", "created": "/etc"}']
)
def test_a_corrupt_state_file_is_one_line_naming_it(cli, text):
    folder = cli.cwd / ".nppctl" / "np6c"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(text)
    for args in (["down", "--purge", "--name", "np6c"], ["up", "--name", "np6c", "--provider", "docker"]):
        line = one_line_error(cli.run(*args, ok=False))
        assert str(folder / "state.json") in line and ("corrupt" in line or "unreadable" in line), line
    assert (folder / "state.json").read_text() == text


@pytest.mark.parametrize(
    "kubeconfig, says",
    [("{{{ not yaml", "is unreadable"), ("apiVersion: v1\nkind: Config\ncontexts: []\n", "is unusable")],
)
def test_a_bad_kubeconfig_is_one_line_with_a_remedy(cli_docker, kubeconfig, says):
    path = cli_docker.cwd / "kubeconfig"
    path.write_text(kubeconfig)
    cli_docker.env["KUBECONFIG"] = str(path)
    line = one_line_error(cli_docker.run("label", "--name", "np6k", ok=False))
    assert says in line and "unexpected error" not in line, line
    assert "--debug" not in line or "traceback" in line.lower()
    debug = cli_docker.run("--debug", "label", "--name", "np6k", ok=False)
    assert "Traceback" in debug.stderr


def test_down_purge_removes_a_state_folder_up_made_under_nppctl_state_dir(lab):
    """$NPPCTL_STATE_DIR outside the lab folder: the folder `up` made for it is nppctl's to remove."""
    state = lab.cwd.parent / "np6-state"
    lab.env["NPPCTL_STATE_DIR"] = str(state)
    lab.clusters.append("np6e")
    lab.run("up", "--provider", "docker", "--workers", "0", "--no-mounts", "--name", "np6e",
            "--image", lab.image)
    assert (state / "np6e" / "state.json").is_file()
    lab.run("down", "--name", "np6e", "--purge")
    assert not state.exists() and lab.containers("np6e") == []
