"""What the lab tests do to node containers so they match kind's node image, and what they look for after
`nppctl check`: kindest/node (kind v0.32) has no `ping`; check leaves no pod, rule or server behind."""

from __future__ import annotations

from nppctl.lab.checks import POD_PREFIX


def nodes(docker, name: str) -> list:
    return docker.containers.list(filters={"label": f"io.x-k8s.kind.cluster={name}"})


def drop_ping(docker, name: str) -> None:
    """Remove `ping` from every node of cluster NAME (the test image has iputils-ping; kind's has none)."""
    for node in nodes(docker, name):
        node.exec_run(["rm", "-f", "/usr/bin/ping", "/bin/ping", "/usr/sbin/ping"])
        assert node.exec_run(["sh", "-c", "command -v ping"]).exit_code != 0, node.name


def leftovers(docker, name: str) -> dict[str, list[str]]:
    """Per node, what `nppctl check` must not leave: NPPCTL-* nat rules/chains, its pods' namespaces
    (npp-check-*), the agent's TCP servers."""
    found = {}
    for node in nodes(docker, name):
        rules = node.exec_run(["iptables", "-t", "nat", "-S"]).output.decode()
        netns = node.exec_run(["ip", "netns", "list"]).output.decode()
        procs = node.exec_run(["ps", "-eo", "args"]).output.decode()
        left = [ln for ln in rules.splitlines() if "NPPCTL-" in ln]
        left += [f"netns {ln.split()[0]}" for ln in netns.splitlines() if ln.startswith(POD_PREFIX)]
        left += [ln for ln in procs.splitlines() if "tcp-serve" in ln]
        if left:
            found[node.name] = left
    return found


def pause_keeper(node, resume: bool = False) -> None:
    """Stop (or continue) nppctl's keeper in NODE (a container), which would restore a route a test
    deletes by hand within seconds."""
    pid = node.exec_run(["cat", "/run/nppctl-keeper.lock"]).output.decode().strip()
    assert pid.isdigit(), pid
    assert node.exec_run(["kill", "-CONT" if resume else "-STOP", pid]).exit_code == 0
