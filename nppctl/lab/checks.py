"""`nppctl check`: a connectivity matrix over the lab's pods and nodes, and a Service probe.

Pods: on a kind cluster, a busybox pod per node (pod-configs/nppctl-check-pod.yaml.j2, pinned by
hostname); on a kindless lab (docker provider), `cni add` namespaces. The first worker (or the control
plane when there is none) gets a second pod, so pod-to-pod on one node is tested too. Every ICMP probe is
one echo request: pod->pod (same node, across nodes), pod->node, node->pod, pod->outside (the Docker
network "kind"'s gateway). Pods ping with busybox's ping (kind) or through the node agent from their
namespace (kindless); nodes always through the node agent (kind's node image has no ping).

The Service probe (nppctl/lab/services.py): a ClusterIP over the first worker's pod, one TCP fetch from every
pod: same node, across nodes, and from the server pod itself (hairpin). Pods, Service and rules are
removed afterwards, also on failure and Ctrl-C; on kind, check then waits until the API has none of them
left (label nppctl/role=check), else names what is left and the kubectl command that removes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from nppctl.errors import Interrupted, NppctlError

POD_PREFIX = "npp-check-"
PING_WAIT_S = 2
RTT = re.compile(r"time[=<]\s*([\d.]+)\s*ms")
CHECK_LABEL = "nppctl/role=check"  # the check's pods and Service (pod-configs/nppctl-check-*.yaml.j2)
CLEANUP_WAIT_S = 60  # for the API to show the check's pods and Service gone
SERVICE_SETTLE_S = 15  # kube-proxy programs a new Service's rules in seconds: kind clients retry so long
SERVICE_CATEGORIES = ("service same node", "service across nodes", "service hairpin")
CATEGORIES = ("node running", "pod-pod same node", "pod-pod across nodes", "pod-node", "node-pod",
              "pod-outside", *SERVICE_CATEGORIES)

Pinger = Callable[[list[str]], list[dict]]  # addresses -> [{"address", "ok", "rtt_ms", "detail"}]
Fetcher = Callable[[str, int], dict]  # (address, port) -> {"ok", "ms", "reply", "detail"}


@dataclass
class Endpoint:
    name: str
    kind: str  # "pod" | "node" | "outside"
    node: str  # the node it lives on ("" for outside)
    address: str
    ping: Pinger | None = None
    fetch: Fetcher | None = None


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


@dataclass
class Report:
    probes: list[Probe]
    service: dict | None = None  # services.Service as a dict
    notes: list[str] = field(default_factory=list)
    left: str = ""  # one line: what check could not remove, and how to remove it ("" when nothing)


def busybox_pinger(run: Callable[[list[str]], tuple[int, str]], name: str) -> Pinger:
    """A Pinger running busybox's `ping -c 1` once per address through RUN (e.g. kube exec)."""

    def one(address: str) -> dict:
        try:
            rc, out = run(["ping", "-c", "1", "-W", str(PING_WAIT_S), address])
        except NppctlError as err:
            return {"address": address, "ok": False, "rtt_ms": None, "detail": str(err)}
        match = RTT.search(out)
        rtt = float(match.group(1)) if match and rc == 0 else None
        reply = {"address": address, "ok": rc == 0, "rtt_ms": rtt, "detail": ""}
        if rc != 0:
            lines = [ln for ln in out.strip().splitlines() if ln.strip()]
            reply["detail"] = lines[-1] if lines else f"ping exited {rc}"
            if rc in (126, 127) or "executable file not found" in out:
                reply["detail"] = f"no ping in {name}'s image (use busybox)"
        return reply

    return lambda addresses: [one(a) for a in addresses]


def ping_all(probes: list[tuple[Endpoint, Endpoint, str]]) -> list[Probe]:
    """Each source pings all its destinations in one go (one agent call, or execs in a row); sources in
    parallel. Probes in PROBES' order."""
    by_source: dict[int, list[int]] = {}
    for i, (src, _, _) in enumerate(probes):
        by_source.setdefault(id(src), []).append(i)
    out: list[Probe | None] = [None] * len(probes)

    def run_source(indexes: list[int]) -> None:
        src = probes[indexes[0]][0]
        try:
            replies = src.ping([probes[i][1].address for i in indexes])
        except NppctlError as err:
            replies = [{"ok": False, "rtt_ms": None, "detail": str(err)} for _ in indexes]
        for i, reply in zip(indexes, replies, strict=True):
            _, dst, category = probes[i]
            out[i] = Probe(src.name, dst.name, dst.address, category, bool(reply["ok"]), reply.get("rtt_ms"),
                           reply.get("detail", ""))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run_source, by_source.values()))
    return out  # type: ignore[return-value]


def service_plan(pods: list[Endpoint], server: Endpoint) -> list[tuple[Endpoint, str]]:
    """(client, category) for the Service probe: every pod, the server itself as the hairpin case."""
    plan_ = []
    for pod in pods:
        if pod is server:
            plan_.append((pod, "service hairpin"))
        else:
            plan_.append((pod, "service same node" if pod.node == server.node else "service across nodes"))
    return plan_


HAIRPIN_HINT = ("a pod reaching itself through a Service needs hairpin mode on its bridge port (the plugin's "
                "hairpinMode) and the bridge's traffic seen by iptables (br_netfilter)")


def fetch_all(pods: list[Endpoint], server: Endpoint, service) -> list[Probe]:
    dst, address = f"service/{service.name}", f"{service.cluster_ip}:{service.port}"

    def one(item: tuple[Endpoint, str]) -> Probe:
        src, category = item
        try:
            got = src.fetch(service.cluster_ip, service.port)
        except NppctlError as err:
            got = {"ok": False, "ms": None, "detail": str(err)}
        detail = got.get("detail", "") if not got["ok"] else got.get("reply", "")
        if not got["ok"] and category == "service hairpin":
            detail = f"{detail} ({HAIRPIN_HINT})"
        return Probe(src.name, dst, address, category, bool(got["ok"]), got.get("ms"), detail)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, service_plan(pods, server)))


def run_matrix(pods: list[Endpoint], nodes: list[Endpoint], outside: Endpoint | None) -> list[Probe]:
    return ping_all(plan(pods, nodes, outside))


def kind_gateway() -> str | None:
    """The IPv4 gateway of the Docker network "kind": an address outside the cluster."""
    from nppctl.access.nodes import docker_client
    from nppctl.access.providers.base import network_name

    try:
        net = docker_client().networks.get(network_name())
    except Exception:  # noqa: BLE001 - no network: no outside probe
        return None
    for cfg in net.attrs.get("IPAM", {}).get("Config") or []:
        gateway = cfg.get("Gateway", "")
        if "." in gateway:
            return gateway
    return None


def pod_names(node_list) -> list[tuple[str, object]]:
    """[(pod name, node)]: one pod per node, and a second one on the first worker (or the only node), last.
    The first worker's first pod is the Service's server (the second one its same-node client)."""
    pods = [(f"{POD_PREFIX}{n.short}", n) for n in node_list]
    workers = [n for n in node_list if n.role == "worker"] or node_list
    pods.append((f"{POD_PREFIX}{workers[0].short}-b", workers[0]))
    return pods


def server_of(pods: list[Endpoint]) -> Endpoint:
    """The Service's server: the pod whose node holds the second pod (the last one), not that second pod."""
    second = pods[-1]
    return next(p for p in pods if p.name == second.name.removesuffix("-b"))


def node_endpoints(node_list) -> list[Endpoint]:
    from nppctl.access import agent

    return [
        Endpoint(n.name, "node", n.name, n.address,
                 ping=lambda addresses, n=n: agent.ping(n, addresses, timeout=PING_WAIT_S))
        for n in node_list
    ]


# ---------------------------------------------------------------- the two kinds of pods


def _cni_pods(cluster: str, node_list, made: list) -> list[Endpoint]:
    from nppctl.access import agent
    from nppctl.access.runtime import cni_call
    from nppctl.lab import services

    def add(item):
        pod, node = item
        made.append((pod, node))
        result = cni_call(cluster, node.name, pod, "ADD")
        ips = result.get("ips") or []
        if not ips:
            raise NppctlError(f"cni add {pod} on {node.name} gave no IP: {result}")
        address = ips[0]["address"].split("/")[0]
        return Endpoint(
            pod, "pod", node.name, address,
            ping=lambda addresses: agent.ping(node, addresses, pod=pod, timeout=PING_WAIT_S),
            fetch=lambda ip, port: agent.tcp_connect(node, [(ip, port)], pod=pod, expect=services.REPLY,
                                                     timeout=PING_WAIT_S)[0],
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(add, pod_names(node_list)))


def _cni_cleanup(cluster: str, made: list) -> None:
    from nppctl.access.runtime import cni_call

    for pod, node in made:
        try:
            cni_call(cluster, node.name, pod, "DEL")
        except NppctlError:
            pass


def wget_fetcher(run: Callable[[list[str]], tuple[int, str]], settle: float = SERVICE_SETTLE_S) -> Fetcher:
    """A Fetcher running busybox wget through RUN, retried for SETTLE seconds (kube-proxy's sync)."""
    import time

    from nppctl.lab import services

    def fetch(ip: str, port: int) -> dict:
        deadline = time.monotonic() + settle
        while True:
            try:
                rc, out = run(["wget", "-q", "-T", str(PING_WAIT_S), "-O", "-", f"http://{ip}:{port}/"])
            except NppctlError as err:
                rc, out = 1, str(err)
            text = out.strip()
            if rc == 0 and text.startswith(services.REPLY):  # no time: it would be the API's exec round trip
                return {"ok": True, "ms": None, "reply": text, "detail": ""}
            if time.monotonic() > deadline:
                lines = text.splitlines()
                return {"ok": False, "ms": None, "reply": "",
                        "detail": (lines[-1] if lines else f"wget exited {rc}") + f" (tried for {settle:g}s)"}
            time.sleep(1)

    return fetch


def _kube_pods(cluster: str, node_list, made: list, image: str, timeout: float) -> list[Endpoint]:
    from nppctl.access import kube

    wanted = pod_names(node_list)
    server = wanted[-1][0].removesuffix("-b")
    for pod, _node in wanted:  # a previous run's pods, if it was interrupted
        kube.delete_pod(cluster, pod, wait=60)
    for pod, node in wanted:
        made.append((pod, node))
        kube.create_pod(cluster, pod_manifest(pod, node.name, image, server=pod == server))
    ips = kube.wait_running(cluster, [pod for pod, _ in wanted], timeout)

    def endpoint(pod: str, node) -> Endpoint:
        run = lambda argv: kube.pod_exec(cluster, pod, argv)  # noqa: E731
        return Endpoint(pod, "pod", node.name, ips[pod], ping=busybox_pinger(run, pod),
                        fetch=wget_fetcher(run))

    return [endpoint(pod, node) for pod, node in wanted]


def pod_manifest(pod: str, node: str, image: str, *, server: bool) -> dict:
    from nppctl.lab import services

    return services.manifest("nppctl-check-pod.yaml.j2", name=pod, node=node, image=image, server=server,
                             service=services.NAME, port=services.TARGET_PORT)


def _kube_cleanup(cluster: str, made: list, wait: float = CLEANUP_WAIT_S) -> str:
    """Delete the check's Service and pods (also a previous run's, by label), then wait until the API
    lists none of them (at most WAIT seconds). "" when all are gone, else one line: what is left, why,
    and the kubectl command that removes it."""
    from nppctl.access import kube
    from nppctl.lab import services

    errors: list[str] = []
    try:
        services.delete_kube_service(cluster)
    except NppctlError as err:
        errors.append(str(err))
    pods = [pod for pod, _ in made]
    try:
        pods += [n.removeprefix("pod/") for n in kube.labelled(cluster, CHECK_LABEL)
                 if n.startswith("pod/") and n.removeprefix("pod/") not in pods]
    except NppctlError as err:
        errors.append(str(err))
    for pod in pods:
        try:
            kube.delete_pod(cluster, pod)
        except NppctlError as err:
            errors.append(str(err))
    context = f"kind-{cluster}"
    try:
        left = kube.wait_gone(cluster, CHECK_LABEL, wait)
    except NppctlError as err:
        return (f"could not verify that check's pods and Service are gone from cluster {cluster!r} ({err}): "
                f"see `kubectl --context {context} get pods,services -l {CHECK_LABEL}`")
    if not left:
        return ""
    why = f" ({errors[0]})" if errors else ""
    return (f"check left {', '.join(left)} in cluster {cluster!r}{why}: remove with "
            f"`kubectl --context {context} delete {' '.join(left)}`")


def check(
    cluster: str, *, kubernetes: bool, image: str = "busybox", timeout: float = 120,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Start the pods and the Service, run the matrix and the Service probe, remove them all.
    kubernetes=False: `cni add` namespaces as pods, a Service as kube-proxy-shaped rules.
    ON_STEP gets a short line as each stage starts (the CLI's spinner text)."""
    from nppctl.access.nodes import list_nodes

    step = on_step or (lambda _msg: None)

    every = list_nodes(cluster, stopped=True)
    node_list = [n for n in every if n.running]
    down = [  # a row that says so; the running nodes are checked
        Probe(n.name, n.name, "", "node running", detail=f"{n.state}: start it with `docker start {n.name}`")
        for n in every if not n.running
    ]
    if not node_list:
        raise NppctlError(f"no node of cluster {cluster!r} is running: start them with `docker start`")
    made: list = []
    kindless: list = []  # the kindless Service, once made (stopped by cleanup)
    gateway = kind_gateway()
    outside = Endpoint("outside", "outside", "", gateway) if gateway else None

    def cleanup() -> str:
        step("removing the check pods and the Service")
        try:
            for service in kindless:
                service.stop()
        finally:
            if not kubernetes:
                _cni_cleanup(cluster, made)
        return _kube_cleanup(cluster, made) if kubernetes and made else ""

    try:
        report = _probe_all(cluster, node_list, made, kindless, outside, kubernetes=kubernetes, image=image,
                            timeout=timeout, step=step)
        report.probes = down + report.probes
    except BaseException as err:
        left = cleanup()
        if left and isinstance(err, KeyboardInterrupt):
            raise Interrupted(f"interrupted; {left}") from err
        if left and isinstance(err, NppctlError):
            raise type(err)(f"{err}; {left}") from err
        raise
    report.left = cleanup()
    return report


def _probe_all(
    cluster: str, node_list: list, made: list, kindless: list, outside: Endpoint | None, *,
    kubernetes: bool, image: str, timeout: float, step: Callable[[str], None],
) -> Report:
    """check's work between start and clean-up: a pod on each node (MADE lists them), a Service in
    front of one (KINDLESS gets the kindless one before it starts), the matrix, the Service probe."""
    from nppctl.lab import services

    step(f"starting a check pod on each of {len(node_list)} node(s)")
    if kubernetes:
        pods = _kube_pods(cluster, node_list, made, image, timeout)
    else:
        pods = _cni_pods(cluster, node_list, made)
    server = server_of(pods)
    step(f"starting a Service in front of {server.name}")
    if kubernetes:
        service = services.kube_service(cluster, server.name, server.address)
    else:
        server_node = next(n for n in node_list if n.name == server.node)
        kindless.append(services.KindlessService(node_list, server.name, server_node, server.address))
        service = kindless[0].start()
    step(f"pinging every pair ({len(pods)} pod(s), {len(node_list)} node(s))")
    probes = run_matrix(pods, node_endpoints(node_list), outside)
    step(f"fetching through the Service {service.name}")
    probes += fetch_all(pods, server, service)
    notes = [f"Service {service.name} ({service.cluster_ip}:{service.port} -> {server.name} "
             f"{server.address}:{service.target_port}): {service.how}"]
    if kindless and kindless[0].server_error():
        notes.append(f"the Service's server in {server.name} failed: {kindless[0].server_error()}")
    return Report(probes, service.to_dict(), notes)


def as_json(probes: list[Probe]) -> list[dict]:
    return [asdict(p) for p in probes]


def label(name: str) -> str:
    """An endpoint as the check's table names it: pod <node's short name>, svc <name>, a node, outside."""
    if name.startswith("service/"):
        return "svc " + name.removeprefix("service/")
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
