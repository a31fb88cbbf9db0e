"""The README's kind walkthrough, every line as written, on real kind (the world's kind and kubectl first on
PATH): `nppctl` and `kubectl` lines alike, `nppctl check` included. Two additions, both said in the
README: `--name np5w` and, on `up`, the world's node image (`--image`: kind's default names a digest only
a pull gives) and `--registry-mirror` (the nodes pull busybox and nginx through the world's registry)."""

from __future__ import annotations

import re
import shlex

from nppctl.resources import resource_dir

CLUSTER = "np5w"
README = resource_dir("templates").parent / "README.md"


def steps() -> list[tuple[str, str]]:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough:kind -->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README has no walkthrough:kind block"
    lines = []
    for raw in match.group(1).splitlines():
        command, _, comment = raw.partition("  #")
        command = command.strip()
        if command and not command.startswith("#"):
            lines.append((command, comment.strip()))
    return lines


def test_the_readme_kind_walkthrough_runs_as_written(kind_lab):
    lab = kind_lab
    lines = steps()
    assert lines[0][0].startswith("nppctl up ") and lines[-1][0] == "nppctl down --purge"
    configs, pods = resource_dir("cluster-configs"), resource_dir("pod-configs")
    for command, _ in lines:
        argv = shlex.split(command)
        argv = [str(configs / a.split("/", 1)[1]) if a.startswith("cluster-configs/") else a for a in argv]
        argv = [str(pods / a.split("/", 1)[1]) if a.startswith("pod-configs/") else a for a in argv]
        if argv[0] == "nppctl":
            words = argv[1:]
            at = next((i for i, a in enumerate(words) if a.startswith("-")), len(words))
            words = words[:at] + ["--name", CLUSTER] + words[at:]
            if words[0] == "up":
                words += ["--image", lab.world["NODE_IMAGE"], "--registry-mirror", lab.world["REGISTRY"]]
            done = lab.nppctl(*words)
            if words[0] == "up":
                lab.attach_registry()
        else:
            assert argv[0] == "kubectl", command
            if "$(" in command:  # the one line that reads a pod's address first
                target = lab.json("get", "pod", "forexec3")["status"]["podIP"]
                argv = ["kubectl", "exec", "forexec1", "--", "ping", "-c", "2", target]
            if argv[1:3] == ["describe", "pod"]:
                _wait_for_event(lab, argv[3], "FailedCreatePodSandBox")
            if argv[1] == "exec" or argv[1:3] == ["get", "pods"]:
                for pod in ("forexec1", "forexec3"):
                    lab.wait(f"{pod} running", lambda p=pod: lab.running(p), timeout=240)
            done = lab.kubectl(*argv[1:], timeout=240)
        _expect(lab, command, done.stdout)


def _wait_for_event(lab, pod: str, reason: str) -> None:
    def seen():
        events = lab.json("get", "events", "--field-selector", f"involvedObject.name={pod}")["items"]
        return [e for e in events if e["reason"] == reason]

    lab.wait(f"{reason} on {pod}", seen, timeout=120)


def _expect(lab, command: str, out: str) -> None:
    """What each line's comment promises, checked against what it printed."""
    if command.startswith("kubectl describe pod"):
        assert "FailedCreatePodSandBox" in out and 'plugin type="nppnet-skel"' in out, out
        assert "nppnet-skel is a skeleton plugin" in out, out
    elif command == "nppctl logs --node worker":
        assert 'outcome="error 100: nppnet-skel is a skeleton plugin' in out, out
    elif command.startswith("kubectl get pods -o wide"):
        rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
        assert rows["forexec1"][6] == f"{CLUSTER}-worker" and rows["forexec3"][6] == f"{CLUSTER}-worker2", out
    elif command.startswith("kubectl exec forexec1"):
        assert "2 packets received" in out, out
    elif command == "nppctl check":
        assert "✗" not in out and "service hairpin: 1/1" in out, out
    elif command == "nppctl logs":
        assert " ADD " in out and " DEL " in out, out
    elif command == "nppctl down --purge":
        assert not lab.docker.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={CLUSTER}"})
        assert list(lab.cwd.iterdir()) == []
