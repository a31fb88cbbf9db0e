"""One-line errors for missing clusters and bad input; shell completion."""

from __future__ import annotations


def test_check_and_label_of_a_missing_cluster_say_what_to_do(cli_docker):
    check = cli_docker.run("check", "--name", "np4none", ok=False)
    assert (
        check.stderr.strip()
        == "error: cluster 'np4none' not found: create it with `nppctl up --name np4none`"
    )
    down = cli_docker.run("down", "--name", "np4none", "--purge")
    assert "no cluster 'np4none' found" in down.stdout and "nothing recorded" in down.stdout
    bad = cli_docker.run("label", "--name", "np4none", "--set", "justone", ok=False)
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_unknown_provider_is_one_line(cli):
    done = cli.run("up", "--name", "np4none", "--provider", "podman", ok=False)
    assert "unknown provider 'podman': use one of kind, docker" in done.stderr
    assert list(cli.cwd.iterdir()) == []


def test_shell_completion_script(cli):
    done = cli.run("--show-completion", "bash")
    assert "complete" in done.stdout and "nppctl" in done.stdout
