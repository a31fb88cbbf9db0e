"""`nppctl check`: a connectivity matrix over the lab's pods and nodes.

Pods: on a kind cluster, a busybox pod per node (pod-configs/nppctl-check-pod.yaml.j2, pinned by
hostname); on a kindless lab (docker provider), `cni add` namespaces. The first worker (or the control
plane when there is none) gets a second pod, so pod-to-pod on one node is tested too. Every probe is one
ping: pod->pod (same node, across nodes), pod->node, node->pod, pod->outside (the Docker network
"kind"'s gateway). The pods are removed afterwards, also on failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from nppctl.errors import NppctlError

POD_PREFIX = "npp-check-"
PING_WAIT_S = 2
RTT = re.compile(r"time[=<]\s*([\d.]+)\s*ms")
CATEGORIES = ("pod-pod same node", "pod-pod across nodes", "pod-node", "node-pod", "pod-outside")

Runner = Callable[[list[str]], tuple[int, str]]


@dataclass
class Endpoint:
    name: str
    kind: str  # "pod" | "node" | "outside"
    node: str  # the node it lives on ("" for outside)
    address: str
    run: Runner | None = None


@dataclass
class Probe:
    src: str
    dst: str
    address: str
    category: str
    ok: bool = False
    rtt_ms: float | None = None
    detail: str = ""


def plan(
    pods: list[Endpoint], nodes: list[Endpoint], outside: Endpoint | None
) -> list[tuple[Endpoint, Endpoint, str]]:
    """Every probe the matrix holds, as (source, destination, category)."""
    probes = []
    for src in pods:
        for dst in pods:
            if src is not dst:
                same = "pod-pod same node" if src.node == dst.node else "pod-pod across nodes"
                probes.append((src, dst, same))
        probes += [(src, node, "pod-node") for node in nodes]
        if outside is not None:
            probes.append((src, outside, "pod-outside"))
    probes += [(node, pod, "node-pod") for node in nodes for pod in pods]
    return probes


def ping(src: Endpoint, dst: Endpoint, category: str) -> Probe:
    probe = Probe(src.name, dst.name, dst.address, category)
    try:
        rc, out = src.run(["ping", "-c", "1", "-W", str(PING_WAIT_S), dst.address])
    except NppctlError as err:
        probe.detail = str(err)
        return probe
    match = RTT.search(out)
    probe.ok = rc == 0
    probe.rtt_ms = float(match.group(1)) if match and probe.ok else None
    if not probe.ok:
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        probe.detail = lines[-1] if lines else f"ping exited {rc}"
        if rc in (126, 127) or "executable file not found" in out:
            probe.detail = f"no ping in {src.name} (install iputils-ping there)"
    return probe


def run_matrix(pods: list[Endpoint], nodes: list[Endpoint], outside: Endpoint | None) -> list[Probe]:
    probes = plan(pods, nodes, outside)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda p: ping(*p), probes))


def kind_gateway() -> str | None:
    """The IPv4 gateway of the Docker network "kind": an address outside the cluster."""
    from nppctl.nodes import docker_client
    from nppctl.providers.base import KIND_NETWORK

    try:
        net = docker_client().networks.get(KIND_NETWORK)
    except Exception:  # noqa: BLE001 - no network: no outside probe
        return None
    for cfg in net.attrs.get("IPAM", {}).get("Config") or []:
        gateway = cfg.get("Gateway", "")
        if "." in gateway:
            return gateway
    return None


def pod_names(node_list) -> list[tuple[str, object]]:
    """[(pod name, node)]: one pod per node, and a second one on the first worker (or the only node)."""
    pods = [(f"{POD_PREFIX}{n.short}", n) for n in node_list]
    workers = [n for n in node_list if n.role == "worker"] or node_list
    pods.append((f"{POD_PREFIX}{workers[0].short}-b", workers[0]))
    return pods


def node_endpoints(node_list) -> list[Endpoint]:
    from nppctl.nodes import node_exec

    return [
        Endpoint(n.name, "node", n.name, n.address, lambda argv, n=n: node_exec(n, argv, check=False))
        for n in node_list
    ]


# ---------------------------------------------------------------- the two kinds of pods


def _cni_pods(cluster: str, node_list, made: list) -> list[Endpoint]:
    from nppctl.runtime import cni_call, cni_exec

    def add(item):
        pod, node = item
        made.append((pod, node))
        result = cni_call(cluster, node.name, pod, "ADD")
        ips = result.get("ips") or []
        if not ips:
            raise NppctlError(f"cni add {pod} on {node.name} gave no IP: {result}")
        address = ips[0]["address"].split("/")[0]
        return Endpoint(pod, "pod", node.name, address, lambda argv: cni_exec(cluster, node.name, pod, argv))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(add, pod_names(node_list)))


def _cni_cleanup(cluster: str, made: list) -> None:
    from nppctl.runtime import cni_call

    for pod, node in made:
        try:
            cni_call(cluster, node.name, pod, "DEL")
        except NppctlError:
            pass


def _kube_pods(cluster: str, node_list, made: list, image: str, timeout: float) -> list[Endpoint]:
    import yaml
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from nppctl import kube
    from nppctl.resources import resource_dir

    env = Environment(loader=FileSystemLoader(resource_dir("pod-configs")), undefined=StrictUndefined)
    template = env.get_template("nppctl-check-pod.yaml.j2")
    wanted = pod_names(node_list)
    for pod, _node in wanted:  # a previous run's pods, if it was interrupted
        kube.delete_pod(cluster, pod, wait=60)
    for pod, node in wanted:
        made.append((pod, node))
        kube.create_pod(cluster, yaml.safe_load(template.render(name=pod, node=node.name, image=image)))
    ips = kube.wait_running(cluster, [pod for pod, _ in wanted], timeout)
    return [
        Endpoint(pod, "pod", node.name, ips[pod], lambda argv, pod=pod: kube.pod_exec(cluster, pod, argv))
        for pod, node in wanted
    ]


def _kube_cleanup(cluster: str, made: list) -> None:
    from nppctl import kube

    for pod, _ in made:
        try:
            kube.delete_pod(cluster, pod)
        except NppctlError:
            pass


def check(cluster: str, *, kubernetes: bool, image: str = "busybox", timeout: float = 120) -> list[Probe]:
    """Start the pods, run the matrix, remove the pods. kubernetes=False: `cni add` namespaces as pods."""
    from nppctl.nodes import list_nodes

    node_list = list_nodes(cluster)
    if not node_list:
        raise NppctlError(f"cluster {cluster!r} not found: create it with `nppctl up --name {cluster}`")
    made: list = []
    gateway = kind_gateway()
    outside = Endpoint("outside", "outside", "", gateway) if gateway else None
    try:
        if kubernetes:
            pods = _kube_pods(cluster, node_list, made, image, timeout)
        else:
            pods = _cni_pods(cluster, node_list, made)
        return run_matrix(pods, node_endpoints(node_list), outside)
    finally:
        (_kube_cleanup if kubernetes else _cni_cleanup)(cluster, made)


def as_json(probes: list[Probe]) -> list[dict]:
    return [asdict(p) for p in probes]


def render(probes: list[Probe]):
    """A rich table: sources as rows, destinations as columns, ✓ with RTT or ✗ per cell."""
    from rich.table import Table

    sources = list(dict.fromkeys(p.src for p in probes))
    pods = [s for s in sources if s.startswith(POD_PREFIX)]
    dests = pods + [d for d in dict.fromkeys(p.dst for p in probes) if d not in pods]
    cells = {(p.src, p.dst): p for p in probes}
    table = Table(title="connectivity (ping, RTT in ms)", show_lines=False)
    table.add_column("from \\ to", style="bold")
    for dst in dests:
        table.add_column(_label(dst), justify="center")
    for src in sources:
        row = [_label(src)]
        for dst in dests:
            p = cells.get((src, dst))
            if p is None:
                row.append("[dim]·[/]")
            elif p.ok:
                row.append(f"[green]✓[/] {p.rtt_ms:.2f}" if p.rtt_ms is not None else "[green]✓[/]")
            else:
                row.append("[red]✗[/]")
        table.add_row(*row)
    return table


def _label(name: str) -> str:
    return "pod " + name.removeprefix(POD_PREFIX) if name.startswith(POD_PREFIX) else name


def summary(probes: list[Probe]) -> list[str]:
    """One line per category: passed/total, and each failure with its reason."""
    lines = []
    for category in CATEGORIES:
        group = [p for p in probes if p.category == category]
        if group:
            passed = sum(p.ok for p in group)
            mark = "[green]✓[/]" if passed == len(group) else "[red]✗[/]"
            lines.append(f"{mark} {category}: {passed}/{len(group)}")
    for p in probes:
        if not p.ok:
            lines.append(f"  [red]✗[/] {p.src} -> {p.dst} ({p.address}): {p.detail}")
    return lines
