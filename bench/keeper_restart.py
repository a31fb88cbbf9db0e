#!/usr/bin/env python3
"""Time from `docker restart` of a worker to its new pod reaching a pod on another worker, with no
nppctl run in between (the keeper heals the node), and the keeper's CPU per round when all is right.

Three kind-shaped nodes, nppnet installed once. Each round: ADD a pod on worker2; restart worker
(`docker restart`, or with --moved: stop it, let another container on network kind take its address,
start it, so it comes back with another one); then, as kubelet would, ADD a pod on worker and ping
worker2's pod from it until the first reply; the reply back is checked too. Nodes are the docker
provider's (sleeper entrypoint starts the keeper), or with --systemd IMAGE containers running that
image's systemd as PID 1 as kind runs its nodes (the keeper is a systemd unit there).

Not a test: `python3 bench/keeper_restart.py [--rounds N] [--moved] [--image TAG | --systemd TAG]
[--cpu-seconds S]`. It makes cluster `npkeep` (and containers npkeep-filler*) and removes them at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nppctl.access import agent, runtime  # noqa: E402
from nppctl.access.nodes import get_node, node_exec  # noqa: E402
from nppctl.access.providers.base import KIND_NETWORK, LABEL_CLUSTER, LABEL_ROLE, ClusterSpec  # noqa: E402
from nppctl.access.providers.docker import SYSCTLS, DockerProvider, node_names  # noqa: E402
from nppctl.lab import install  # noqa: E402
from nppctl.nodeside.keeper import LOCK, PERIOD, PROGRAM  # noqa: E402

CLUSTER = "npkeep"
FILLER = f"{CLUSTER}-filler"


def systemd_nodes(client, image: str) -> None:
    """kind-shaped nodes running systemd as PID 1 (kind's stop signal, /run and /tmp tmpfs)."""
    DockerProvider(client).ensure_network()
    for name, role in node_names(CLUSTER, 2):
        client.containers.run(
            image, entrypoint=["/lib/systemd/systemd"], command=[], name=name, hostname=name,
            labels={LABEL_CLUSTER: CLUSTER, LABEL_ROLE: role}, stop_signal="SIGRTMIN+3",
            cap_add=["NET_ADMIN", "SYS_ADMIN", "NET_RAW"], sysctls=SYSCTLS, cgroupns="private",
            tmpfs={"/run": "", "/tmp": ""}, network=KIND_NETWORK, detach=True,
        )
    time.sleep(3)  # systemd up


def remove(client) -> None:
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={CLUSTER}"}):
        c.remove(force=True)
    for c in client.containers.list(all=True, filters={"name": FILLER}):
        c.remove(force=True)
    DockerProvider(client).remove_network_if_unused()


def ip_of(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def one_round(client, image: str, i: int, moved: bool) -> float:
    far = ip_of(runtime.cni_call(CLUSTER, "worker2", "far", "ADD"))
    worker = client.containers.get(f"{CLUSTER}-worker")
    old = get_node(CLUSTER, "worker").address
    t0 = time.monotonic()
    if moved:
        worker.stop(timeout=10)
        # kept to the end: each round's filler holds the address the worker had
        client.containers.run(image, entrypoint=["sleep", "infinity"], command=[], name=f"{FILLER}{i}",
                              network=KIND_NETWORK, detach=True)
        worker.start()
    else:
        worker.restart(timeout=10)
    pod, near = f"near{i}", None
    while near is None:
        try:
            near = ip_of(runtime.cni_call(CLUSTER, "worker", pod, "ADD"))
        except Exception:  # noqa: BLE001 - the node is still starting
            time.sleep(0.05)
    while not agent.ping(get_node(CLUSTER, "worker"), [far], pod=pod, timeout=0.5)[0]["ok"]:
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"round {i}: no reply in 120 s")
    took = time.monotonic() - t0
    back = agent.ping(get_node(CLUSTER, "worker2"), [near], pod="far", timeout=2)[0]
    new = get_node(CLUSTER, "worker").address
    if moved and new == old:
        raise SystemExit(f"round {i}: the worker came back with its old address {old}")
    print(f"round {i}: {took:.2f} s (address {old} -> {new}, reply back: {back['ok']})", flush=True)
    return took


def cpu(seconds: float) -> None:
    node = get_node(CLUSTER, "worker2")
    pid = node_exec(node, ["cat", LOCK])[1].strip()

    def ticks() -> list[int]:
        return [int(x) for x in node_exec(node, ["cat", f"/proc/{pid}/stat"])[1].split(")")[1].split()[11:15]]

    hz = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True).stdout)
    a = ticks()
    time.sleep(seconds)
    b = ticks()
    rounds = seconds / PERIOD
    own = (b[0] + b[1] - a[0] - a[1]) / hz * 1000
    kids = (b[2] + b[3] - a[2] - a[3]) / hz * 1000
    print(f"keeper CPU over {seconds:.0f} s (~{rounds:.0f} rounds): {own:.0f} ms itself, {kids:.0f} ms "
          f"in processes it ran = {(own + kids) / rounds:.2f} ms per round")
    # One quiet round's check (resolve peers, read /proc/net/route) timed in the node's python3,
    # with the installed program's modules and config.
    probe = (
        f"exec(open({PROGRAM!r}).read().replace('sys.exit(main.run(sys.argv))', ''))\n"
        "import time\nfrom nodeside import keeper\n"
        "k = keeper.Keeper(); k.spec = keeper.read_json(keeper.nodenet.KEEPER_CONF)\n"
        "c, w = time.process_time(), time.perf_counter()\n"
        "found = [k.drift() for _ in range(500)]\n"
        "print((time.process_time() - c) * 2, (time.perf_counter() - w) * 2, sum(map(len, found)))\n"
    )
    cpu_ms, wall_ms, drift = node_exec(node, ["/usr/bin/python3", "-c", probe])[1].split()
    print(f"a quiet round's check: {float(cpu_ms):.3f} ms CPU, {float(wall_ms):.3f} ms wall "
          f"(500 rounds, {drift} drifts found, no process spawned)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--moved", action="store_true")
    ap.add_argument("--image", default=None)
    ap.add_argument("--systemd", default=None, metavar="IMAGE",
                    help="nodes run this image's systemd as PID 1 (e.g. the bookworm node image)")
    ap.add_argument("--cpu-seconds", type=float, default=0)
    args = ap.parse_args()
    image = args.systemd or args.image or subprocess.run(
        ["bash", str(REPO / ".ci" / "build-node-image.sh"), "bookworm"], capture_output=True, text=True
    ).stdout.split()[-1]  # kind's bookworm userland: has python3
    client = docker.from_env()
    remove(client)
    try:
        if args.systemd:
            systemd_nodes(client, image)
        else:
            DockerProvider(client).create(ClusterSpec(name=CLUSTER, workers=2, image=image))
        install.install(CLUSTER)
        times = [one_round(client, image, i, args.moved) for i in range(args.rounds)]
        kind = "systemd" if args.systemd else "docker provider"
        print(f"{kind} nodes, {'moved address' if args.moved else 'docker restart'}: median "
              f"{statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} rounds")
        if args.cpu_seconds:
            cpu(args.cpu_seconds)
    finally:
        remove(client)


if __name__ == "__main__":
    main()
