#!/usr/bin/env python3
"""Time `nppctl install --all` on 3 nodes against the course's way of doing the same, in one run.

The course's nppnet-install.sh does it node by node with one docker CLI call per step: copy the
conflist and the executable in (`docker cp`), then `docker exec` ip link add cni0 / set up / addr add,
and one `ip route add` per other node. Here that sequence runs against the same three kind-shaped
nodes (docker provider, the node image .ci/build-node-image.sh builds), alternating with nppctl's
install, the nodes reset to bare between runs. Not a test: `python3 bench/install_vs_course.py
[--rounds N] [--image TAG]`. It creates cluster `npbench` and deletes it at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nppctl.access.nodes import list_nodes, node_exec
from nppctl.access.providers.base import ClusterSpec
from nppctl.access.providers.docker import DockerProvider
from nppctl.build import artifacts

REPO = Path(__file__).resolve().parent.parent
CLUSTER = "npbench"
SUBNETS = ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
RESET = (
    "rm -rf /etc/cni/net.d/* /opt/cni/bin/* /var/lib/nppctl; mkdir -p /etc/cni/net.d /opt/cni/bin; "
    "ip link del cni0 2>/dev/null; "
    + "".join(f"ip route del {s} 2>/dev/null; " for s in SUBNETS)
    + "iptables -t nat -F POSTROUTING; true"
)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return took


def course_install(nodes, exe: Path, confdir: Path) -> float:
    """The course's sequence: per node 2 docker cp + 3 docker exec + 1 docker exec per route."""
    start = time.perf_counter()
    for i, node in enumerate(nodes):
        gateway = SUBNETS[i].replace(".0/24", ".1/24")
        steps = [
            ["docker", "cp", str(confdir / f"{node.name}.conflist")]
            + [f"{node.name}:/etc/cni/net.d/09-nppnet.conflist"],
            ["docker", "cp", str(exe), f"{node.name}:/opt/cni/bin/nppnet"],
            ["docker", "exec", node.name, "ip", "link", "add", "cni0", "type", "bridge"],
            ["docker", "exec", node.name, "ip", "link", "set", "cni0", "up"],
            ["docker", "exec", node.name, "ip", "addr", "add", gateway, "dev", "cni0"],
        ]
        for j, other in enumerate(nodes):
            if j != i:
                route = ["ip", "route", "add", SUBNETS[j], "via", other.address]
                steps.append(["docker", "exec", node.name, *route])
        for argv in steps:
            timed(argv)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=None, help="node image (default: build/find it with .ci)")
    args = parser.parse_args()
    image = args.image or subprocess.run(
        ["bash", str(REPO / ".ci" / "build-node-image.sh")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    provider = DockerProvider()
    provider.delete(CLUSTER)
    provider.create(ClusterSpec(name=CLUSTER, workers=2, image=image))
    nodes = list_nodes(CLUSTER)
    work = Path(tempfile.mkdtemp(prefix="npbench-"))
    exe = next(p for p in artifacts.build_plugins(work) if p.name == "nppnet")
    for node, subnet in zip(nodes, SUBNETS, strict=True):
        conf = artifacts.render_conflist(subnet, cluster_cidr="10.244.0.0/16")
        (work / f"{node.name}.conflist").write_text(conf)
    nppctl = [sys.executable, "-m", "nppctl", "install", "--name", CLUSTER, "--all"]
    labels = ("nppctl install --all", "nppctl install --all, again", "course")
    times: dict[str, list[float]] = {k: [] for k in labels}

    def reset() -> None:
        for node in nodes:
            node_exec(node, ["sh", "-c", RESET], check=False)

    try:
        for _ in range(args.rounds):
            reset()
            times["course"].append(course_install(nodes, exe, work))
            reset()
            times["nppctl install --all"].append(timed(nppctl))
            times["nppctl install --all, again"].append(timed(nppctl))
    finally:
        provider.delete(CLUSTER)
        subprocess.run(["rm", "-rf", str(work)])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"3 nodes, {args.rounds} rounds (alternating), median wall time:")
    for key, value in med.items():
        print(f"  {key:30s} {value:6.2f} s   ratio to course {value / med['course']:.2f}x")


if __name__ == "__main__":
    main()
