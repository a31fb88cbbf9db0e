"""One-line errors for missing clusters and bad input; shell completion."""

from __future__ import annotations


def test_check_and_label_of_a_missing_cluster_say_what_to_do(lab):
    check = lab.run("check", "--name", "np4none", ok=False)
    assert (
        check.stderr.strip()
        == "error: cluster 'np4none' not found: create it with `nppctl up --name np4none`"
    )
    down = lab.run("down", "--name", "np4none", "--purge")
    assert "no cluster 'np4none' found" in down.stdout and "nothing recorded" in down.stdout
    bad = lab.run("label", "--name", "np4none", "--set", "justone", ok=False)
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_unknown_provider_is_one_line(lab):
    done = lab.run("up", "--name", "np4none", "--provider", "podman", ok=False)
    assert "unknown provider 'podman': use one of kind, docker" in done.stderr
    assert list(lab.cwd.iterdir()) == []


def test_shell_completion_script(lab):
    done = lab.run("--show-completion", "bash")
    assert "complete" in done.stdout and "nppctl" in done.stdout
