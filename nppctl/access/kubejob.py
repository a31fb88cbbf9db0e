"""A pod that runs to its end in a namespace of its own, through the Kubernetes API: what `nppctl
conformance` uses to run Kubernetes' e2e suite in the cluster, as hydrophone does.

Interface (every failure one NppctlError line; the client is nppctl.access.kube's):
  server_version(cluster) -> "v1.37.0"
  create(cluster, objects)           Namespace, ServiceAccount, ClusterRoleBinding, Pod dicts, in order
  delete(cluster, namespace, bindings, selector, wait) -> [what is left]
  container_state(cluster, ns, pod, container) -> ContainerState (waiting reason, running, exit code)
  follow_log(cluster, ns, pod, container) -> lines, until the container ends (reconnects on a cut)
  read_file(cluster, ns, pod, container, path) -> text (exec cat, as kubectl cp reads)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from nppctl.access import kube
from nppctl.errors import NppctlError


@dataclass
class ContainerState:
    phase: str = "Pending"  # the pod's
    waiting: str | None = None  # reason, e.g. ContainerCreating, ImagePullBackOff
    message: str = ""  # the waiting or terminated message
    running: bool = False
    exit_code: int | None = None  # set once terminated
    image: str = ""


def server_version(cluster: str) -> str:
    from kubernetes import client

    api = client.VersionApi(client.ApiClient(kube.configuration(cluster)))
    return kube.call(cluster, "get version", api.get_code).git_version


def _rbac(cluster: str):
    from kubernetes import client

    return client.RbacAuthorizationV1Api(client.ApiClient(kube.configuration(cluster)))


def create(cluster: str, objects: list[dict]) -> None:
    """Create OBJECTS (Namespace, ServiceAccount, ClusterRoleBinding, Pod) in the order given."""
    core = kube.core(cluster)
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        ns = obj["metadata"].get("namespace")
        calls = {
            "Namespace": (core.create_namespace,),
            "ServiceAccount": (core.create_namespaced_service_account, ns),
            "ClusterRoleBinding": (_rbac(cluster).create_cluster_role_binding,),
            "Pod": (core.create_namespaced_pod, ns),
        }
        fn, *args = calls[kind]
        kube.call(cluster, f"create {kind.lower()} {name}", fn, *args, obj)


def _gone(cluster: str, namespace: str, bindings: list[str], selector: str | None) -> list[str]:
    """What still exists of NAMESPACE, BINDINGS and the namespaces of SELECTOR, as kubectl names them."""
    core, rbac = kube.core(cluster), _rbac(cluster)
    left = []
    if kube.call(cluster, f"read namespace {namespace}", core.read_namespace, namespace,
                 tolerate=(404,)) is not None:
        left.append(f"namespace/{namespace}")
    for name in bindings:
        if kube.call(cluster, f"read clusterrolebinding {name}", rbac.read_cluster_role_binding, name,
                     tolerate=(404,)) is not None:
            left.append(f"clusterrolebinding/{name}")
    return left + [f"namespace/{n}" for n in _labelled_namespaces(cluster, selector)]


def _labelled_namespaces(cluster: str, selector: str | None) -> list[str]:
    if not selector:
        return []
    listed = kube.call(cluster, f"list namespaces {selector}", kube.core(cluster).list_namespace,
                       label_selector=selector)
    return [n.metadata.name for n in listed.items]


def delete(cluster: str, namespace: str, bindings: list[str], selector: str | None = None,
           wait: float = 0) -> list[str]:
    """Delete NAMESPACE (its pods and service account with it), the cluster role BINDINGS and the
    namespaces labelled SELECTOR; gone already is fine. With WAIT, poll until they are gone; returns
    what is left (kubectl names)."""
    core, rbac = kube.core(cluster), _rbac(cluster)
    for name in [namespace, *_labelled_namespaces(cluster, selector)]:
        # 409: being deleted already
        kube.call(cluster, f"delete namespace {name}", core.delete_namespace, name, tolerate=(404, 409))
    for name in bindings:
        kube.call(cluster, f"delete clusterrolebinding {name}", rbac.delete_cluster_role_binding, name,
                  tolerate=(404,))
    deadline = time.monotonic() + wait
    while True:
        left = _gone(cluster, namespace, bindings, selector)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(1)


def container_state(cluster: str, namespace: str, pod: str, container: str) -> ContainerState:
    obj = kube.call(cluster, f"read pod {namespace}/{pod}", kube.core(cluster).read_namespaced_pod, pod,
                    namespace)
    state = ContainerState(phase=obj.status.phase or "Pending")
    for status in obj.status.container_statuses or []:
        if status.name != container:
            continue
        state.image = status.image or ""
        now = status.state
        if now.waiting:
            state.waiting, state.message = now.waiting.reason, now.waiting.message or ""
        elif now.running:
            state.running = True
        elif now.terminated:
            state.exit_code = now.terminated.exit_code
            state.message = now.terminated.message or now.terminated.reason or ""
    return state


def _stamp(text: str) -> str:
    """A log line's RFC 3339 time as a string that sorts by time (the fraction padded to 9 digits)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return f"{head}.{frac:0<9}"


def follow_log(cluster: str, namespace: str, pod: str, container: str) -> Iterator[str]:
    """CONTAINER's log lines as they come, until it ends. On an ApiClient of its own (a stream that may
    last an hour); a cut stream is resumed from the last line's second (lines carry timestamps: after a
    cut, those not later than the last line given are dropped)."""
    from kubernetes import client

    api = client.CoreV1Api(client.ApiClient(kube.configuration(cluster)))
    last = ""
    while True:
        seen = last
        since = {"since_time": last[:19] + "Z"} if last else {}
        try:
            resp = api.read_namespaced_pod_log(pod, namespace, container=container, follow=True,
                                               timestamps=True, _preload_content=False, **since)
            pending = b""
            for chunk in resp.stream(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    stamp, _, text = raw.decode(errors="replace").partition(" ")
                    if seen and _stamp(stamp) <= seen:
                        continue  # given before the cut
                    last = _stamp(stamp)
                    yield text
        except Exception:  # a cut connection: resumed below while the container runs
            pass
        state = container_state(cluster, namespace, pod, container)
        if state.exit_code is not None or state.phase in ("Succeeded", "Failed"):
            return
        time.sleep(1)


def read_file(cluster: str, namespace: str, pod: str, container: str, path: str, timeout: float = 120) -> str:
    """The text of PATH in CONTAINER (`cat`, through exec); NppctlError when it cannot be read."""
    code, out = kube.pod_exec(cluster, pod, ["cat", path], timeout=timeout, namespace=namespace,
                              container=container)
    if code != 0:
        raise NppctlError(f"could not read {path} in pod {namespace}/{pod}: {' '.join(out.split())[:200]}")
    return out
