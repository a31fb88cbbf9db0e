"""The kube layer: the cluster's Kubernetes API through the official client (imported lazily).

The kubeconfig comes from `kind get kubeconfig --name NAME`, else from $KUBECONFIG (context kind-NAME
when it has one). Nodes (podCIDR, labels, Ready), node labels, and the pods `nppctl check` runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from nppctl.access.providers.base import natural_key
from nppctl.errors import NppctlError

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
NAMESPACE = "default"
REQUEST_TIMEOUT = 10
_clients: dict[str, tuple] = {}  # cluster -> (Configuration, CoreV1Api)


@dataclass
class KubeNode:
    name: str
    pod_cidr: str | None
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def control_plane(self) -> bool:
        return CONTROL_PLANE_LABEL in self.labels


def kubeconfig_dict(cluster: str) -> dict:
    """The kubeconfig for CLUSTER as a dict: kind's, else $KUBECONFIG's."""
    import shutil

    import yaml

    if shutil.which("kind"):
        from nppctl.access.providers.kind import KindProvider

        try:
            return yaml.safe_load(KindProvider().kubeconfig(cluster))
        except NppctlError:
            pass
    env = os.environ.get("KUBECONFIG", "")
    for raw in filter(None, env.split(os.pathsep)):
        path = Path(raw).expanduser()
        if _is_file(path):
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                raise NppctlError(
                    f"KUBECONFIG file {path} is unreadable ({type(err).__name__}): fix it or unset KUBECONFIG"
                ) from err
            if not isinstance(data, dict):
                raise NppctlError(f"KUBECONFIG file {path} is not a kubeconfig: fix it or unset KUBECONFIG")
            contexts = {c.get("name") for c in data.get("contexts") or []}
            if f"kind-{cluster}" in contexts:
                data["current-context"] = f"kind-{cluster}"
            return data
    if not shutil.which("kind"):
        from nppctl.access.providers.kind import INSTALL_HINT

        raise NppctlError(f"kind not found on PATH, so no kubeconfig for cluster {cluster!r} (KUBECONFIG "
                          f"names no file): {INSTALL_HINT}")
    raise NppctlError(
        f"no kubeconfig for cluster {cluster!r}: `kind get kubeconfig --name {cluster}` gave none "
        "and KUBECONFIG names no file; create the cluster with `nppctl up` or set KUBECONFIG"
    )


def _is_file(path: Path) -> bool:
    """A KUBECONFIG entry that is a file; one stat cannot read (name too long, a folder it may not
    search) is not, as kind v0.33 reads it (a skipped entry, not a traceback)."""
    try:
        return path.is_file()
    except OSError:
        return False


def configuration(cluster: str):
    """The client Configuration of CLUSTER (read once per process, with the shared client of core())."""
    if cluster not in _clients:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_kube_config_from_dict(kubeconfig_dict(cluster), client_configuration=configuration)
        except (config.ConfigException, TypeError, ValueError, KeyError, AttributeError) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            raise NppctlError(
                f"the kubeconfig of cluster {cluster!r} is unusable ({message}): recreate the cluster "
                f"(`nppctl down --name {cluster}`, `nppctl up --name {cluster}`) or fix KUBECONFIG"
            ) from err
        configuration.retries = 1
        _clients[cluster] = (configuration, client.CoreV1Api(client.ApiClient(configuration)))
    return _clients[cluster][0]


def core(cluster: str):
    """A CoreV1Api for CLUSTER (one client per cluster per process) for plain requests, never for
    streaming ones (pod_exec has its own)."""
    configuration(cluster)
    return _clients[cluster][1]


def call(cluster: str, what: str, fn, *args, tolerate: tuple[int, ...] = (), **kwargs):
    """Run one API call; connection trouble or an API error becomes one NppctlError line. An error whose
    HTTP status is in TOLERATE (404: gone already) returns None instead."""
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as err:
        if err.status in tolerate:
            return None
        raise NppctlError(
            f"Kubernetes API of cluster {cluster!r}: {what} failed: {err.status} {err.reason}"
        ) from None
    except Exception as err:  # urllib3 connection errors and the like
        raise NppctlError(
            f"Kubernetes API of cluster {cluster!r} does not answer ({what}: {type(err).__name__}); "
            f"is the cluster up? `nppctl up --name {cluster}`"
        ) from None


def answers(cluster: str) -> bool:
    """Whether the cluster's API answers at all (no kubeconfig counts as no)."""
    try:
        call(cluster, "list nodes", core(cluster).list_node, limit=1)
        return True
    except NppctlError:
        return False


def nodes(cluster: str) -> list[KubeNode]:
    listed = call(cluster, "list nodes", core(cluster).list_node)
    out = []
    for item in listed.items:
        conditions = (item.status.conditions or []) if item.status else []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        out.append(
            KubeNode(
                item.metadata.name,
                item.spec.pod_cidr if item.spec else None,
                ready,
                dict(item.metadata.labels or {}),
            )
        )
    return out


def wait_registered(cluster: str, timeout: float, interval: float = 0.5) -> dict[str, str]:
    """Poll until every node container of CLUSTER is a Node in the API with a spec.podCIDR; returns
    node -> podCIDR. kind returns before its workers' kubelets have registered, and podCIDRs follow
    registration order, not names: nothing may read nodes or their subnets before this holds."""
    from nppctl.access.nodes import list_nodes

    expected = [n.name for n in list_nodes(cluster)]
    deadline = time.monotonic() + timeout
    while True:
        listed = {n.name: n for n in nodes(cluster)}
        missing = [name for name in expected if name not in listed]
        no_cidr = [name for name in expected if name in listed and not listed[name].pod_cidr]
        if not missing and not no_cidr:
            return {name: str(listed[name].pod_cidr) for name in expected}
        if time.monotonic() > deadline:
            why = []
            if missing:
                why.append(f"not registered: {', '.join(missing)}")
            if no_cidr:
                why.append(f"no spec.podCIDR yet: {', '.join(no_cidr)}")
            raise NppctlError(
                f"nodes of cluster {cluster!r} not all in the API after {timeout:.0f}s ({'; '.join(why)}); "
                "see `nppctl logs --kubelet` and `kubectl get nodes`"
            )
        time.sleep(interval)


def pod_cidrs(cluster: str, wait: float = 15) -> dict[str, str]:
    """spec.podCIDR of every node, once every node container has registered (at most WAIT seconds,
    else NppctlError), or {} when the API does not answer; install then splits --pod-cidr for all
    nodes, never mixing the two sources."""
    if not answers(cluster):
        return {}
    return wait_registered(cluster, wait)


def ready(cluster: str) -> dict[str, bool]:
    return {n.name: n.ready for n in nodes(cluster)}


def wait_ready(cluster: str, timeout: float, interval: float = 1.0) -> dict[str, bool]:
    """Poll until every node is Ready; past TIMEOUT seconds, say which are not."""
    deadline = time.monotonic() + timeout
    while True:
        state = ready(cluster)
        if state and all(state.values()):
            return state
        if time.monotonic() > deadline:
            waiting = ", ".join(n for n, ok in state.items() if not ok) or "no node registered"
            raise NppctlError(
                f"nodes not Ready after {timeout:.0f}s: {waiting}; see `nppctl logs --kubelet` "
                "and `nppctl status`"
            )
        time.sleep(interval)


def default_labels(workers: list[str]) -> dict[str, dict[str, str]]:
    """node=node1, node=node2, ... on the workers in name order (what the course's pods select on):
    node1 is <cluster>-worker whatever its podCIDR or when it registered."""
    return {name: {"node": f"node{i}"} for i, name in enumerate(sorted(workers, key=natural_key), start=1)}


def label_nodes(
    cluster: str, wanted: dict[str, dict[str, str]] | None = None, wait: float = 60
) -> dict[str, dict[str, str]]:
    """Set labels per node (None: the default_labels of the worker containers), patching only what
    differs (idempotent), once every node container is registered (at most WAIT seconds).
    Returns the labels asked for, per node."""
    from nppctl.access.nodes import list_nodes

    api = core(cluster)
    wait_registered(cluster, wait)
    if wanted is None:
        wanted = default_labels([n.name for n in list_nodes(cluster) if n.role == "worker"])
    current = {n.name: n.labels for n in nodes(cluster)}
    for node, labels in wanted.items():
        if node not in current:
            raise NppctlError(
                f"node {node!r} not found in cluster {cluster!r}: nodes are {', '.join(current)}"
            )
        change = {k: v for k, v in labels.items() if current[node].get(k) != v}
        if change:
            call(cluster, f"label node {node}", api.patch_node, node, {"metadata": {"labels": change}})
    return wanted


def create_pod(cluster: str, manifest: dict) -> None:
    call(
        cluster,
        f"create pod {manifest['metadata']['name']}",
        core(cluster).create_namespaced_pod,
        NAMESPACE,
        manifest,
    )


def delete_pod(cluster: str, pod: str, wait: float = 0) -> None:
    """Delete POD (gone already is fine); with WAIT, poll until it is gone so its name can be reused."""
    api = core(cluster)
    deadline = time.monotonic() + wait
    if call(cluster, f"delete pod {pod}", api.delete_namespaced_pod, pod, NAMESPACE, grace_period_seconds=0,
            tolerate=(404,)) is None:
        return
    while time.monotonic() < deadline:
        if call(cluster, f"read pod {pod}", api.read_namespaced_pod, pod, NAMESPACE, tolerate=(404,)) is None:
            return
        time.sleep(0.5)


def wait_running(cluster: str, pods: list[str], timeout: float) -> dict[str, str]:
    """Poll until every pod is Running with an IP; returns pod -> podIP."""
    api = core(cluster)
    deadline = time.monotonic() + timeout
    while True:
        ips, waiting = {}, []
        for pod in pods:
            obj = call(cluster, f"read pod {pod}", api.read_namespaced_pod, pod, NAMESPACE)
            if obj.status.phase == "Running" and obj.status.pod_ip:
                ips[pod] = obj.status.pod_ip
            else:
                waiting.append(f"{pod} {obj.status.phase}")
        if not waiting:
            return ips
        if time.monotonic() > deadline:
            raise NppctlError(
                f"pods not Running after {timeout:.0f}s: {', '.join(waiting)}; "
                "see `kubectl describe pod` and `nppctl logs`"
            )
        time.sleep(1)


def pod_exec(cluster: str, pod: str, argv: list[str], timeout: float = 30, *, namespace: str = NAMESPACE,
             container: str | None = None) -> tuple[int, str]:
    """Run ARGV in POD's CONTAINER (default: its first; the kubectl exec path); returns (exit code,
    stdout+stderr).

    On an ApiClient of its own, closed after: kubernetes.stream.stream() swaps its client's request
    path for a websocket one while it runs, and two calls in parallel on one client leave the swap in
    place (the second restores the first's), so every later request of that client would go out as a
    websocket handshake ("Handshake status 200 OK") - the check's deletes did."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    api_client = client.ApiClient(configuration(cluster))
    try:
        resp = stream(
            client.CoreV1Api(api_client).connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=argv,
            **({"container": container} if container else {}),
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        try:
            resp.run_forever(timeout=timeout)
            out = resp.read_stdout() + resp.read_stderr()
            rc = resp.returncode
        finally:
            resp.close()
    except ApiException as err:
        raise NppctlError(
            f"Kubernetes API of cluster {cluster!r}: exec in pod {pod} failed: {err.status} "
            f"{' '.join(str(err.reason).split())}"
        ) from None
    except NppctlError:
        raise
    except Exception as err:  # websocket and connection errors
        raise NppctlError(
            f"Kubernetes API of cluster {cluster!r}: exec in pod {pod} failed ({type(err).__name__}); "
            f"is the cluster up? `nppctl status --name {cluster}`"
        ) from None
    finally:
        api_client.close()
    return (rc if rc is not None else 1), out


def create_service(cluster: str, manifest: dict) -> str:
    """Create the Service in MANIFEST; its ClusterIP (the API server assigns it)."""
    made = call(
        cluster,
        f"create service {manifest['metadata']['name']}",
        core(cluster).create_namespaced_service,
        NAMESPACE,
        manifest,
    )
    if not (made.spec and made.spec.cluster_ip):
        raise NppctlError(f"service {manifest['metadata']['name']} got no ClusterIP from the API server")
    return made.spec.cluster_ip


def delete_service(cluster: str, name: str) -> None:
    """Delete Service NAME (gone already is fine)."""
    try:
        call(cluster, f"delete service {name}", core(cluster).delete_namespaced_service, name, NAMESPACE)
    except NppctlError as err:
        if ": 404 " not in str(err):
            raise


def labelled(cluster: str, selector: str) -> list[str]:
    """The pods and Services of NAMESPACE carrying SELECTOR's labels, as kubectl names them:
    pod/NAME, service/NAME (pods being deleted included: they are still there)."""
    api = core(cluster)
    pods = call(cluster, f"list pods {selector}", api.list_namespaced_pod, NAMESPACE,
                 label_selector=selector)
    svcs = call(cluster, f"list services {selector}", api.list_namespaced_service, NAMESPACE,
                 label_selector=selector)
    return [f"pod/{p.metadata.name}" for p in pods.items] + [f"service/{s.metadata.name}" for s in svcs.items]


def wait_gone(cluster: str, selector: str, timeout: float, interval: float = 0.5) -> list[str]:
    """Poll until no pod or Service of SELECTOR is left in NAMESPACE (at most TIMEOUT seconds); what is
    still there then (labelled()'s names), [] when nothing."""
    deadline = time.monotonic() + timeout
    while True:
        left = labelled(cluster, selector)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(interval)


def list_pods(cluster: str) -> list[dict]:
    """Every pod of every namespace that has its own network (not hostNetwork): name, namespace, node
    (spec.nodeName) and ip (status.podIP, None before it has one)."""
    listed = call(cluster, "list pods", core(cluster).list_pod_for_all_namespaces)
    out = []
    for item in listed.items:
        if item.spec is None or item.spec.host_network:
            continue
        out.append({"name": item.metadata.name, "namespace": item.metadata.namespace,
                    "node": item.spec.node_name, "ip": item.status.pod_ip if item.status else None})
    return out


def sandbox_failures(cluster: str) -> list[dict]:
    """Pods still waiting for their sandbox (Pending, no container started) whose latest event is kubelet's
    FailedCreatePodSandBox: namespace, name, node, message (the runtime's, quoting the CNI plugin's error),
    count and when it was last seen (ISO text), oldest pod first."""
    api = core(cluster)
    events = call(cluster, "list events", api.list_event_for_all_namespaces,
                   field_selector="reason=FailedCreatePodSandBox")
    latest: dict[tuple[str, str], object] = {}
    for ev in events.items:
        obj = ev.involved_object
        if obj is None or obj.kind != "Pod":
            continue
        key = (obj.namespace, obj.name)
        if key not in latest or _when(latest[key]) <= _when(ev):
            latest[key] = ev
    out = []
    for (namespace, name), ev in latest.items():
        try:
            pod = call(cluster, f"read pod {name}", api.read_namespaced_pod, name, namespace)
        except NppctlError:
            continue  # gone since
        started = any(s.state and s.state.running for s in (pod.status.container_statuses or []))
        if pod.status.phase != "Pending" or started:
            continue
        when = _when(ev)
        out.append({"namespace": namespace, "name": name, "node": pod.spec.node_name,
                    "message": ev.message or "", "count": ev.count or 1,
                    "last_seen": when.isoformat() if when.year > 1 else None})
    return sorted(out, key=lambda p: p["last_seen"] or "")


def _when(event):
    """An event's last time (events.k8s.io's eventTime where the core fields are empty)."""
    import datetime

    when = event.last_timestamp or event.event_time or event.first_timestamp
    return when or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def image_pull_failures(cluster: str, namespace: str, selector: str) -> list[str]:
    """The pods of SELECTOR in NAMESPACE whose containers cannot get their image: "POD REASON (IMAGE)"."""
    listed = call(cluster, f"list pods {selector}", core(cluster).list_namespaced_pod, namespace,
                   label_selector=selector)
    out = []
    for pod in listed.items:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
                out.append(f"{pod.metadata.name} {waiting.reason} ({status.image})")
    return out
