"""The node layer: kind's node containers, found through the Docker SDK by kind's labels.

A kind node is a container labelled io.x-k8s.kind.cluster=<cluster> and
io.x-k8s.kind.role=control-plane|worker, named <cluster>-control-plane, <cluster>-worker,
<cluster>-worker2, ... on the Docker network "kind" (nppctl/access/providers/base.py holds the names).

Interface (used by install, status, logs, runtime and the kube layer):
  Node(name, role, cluster, address, container)
  docker_client() -> docker.DockerClient            engine reachable, else NppctlError
  list_nodes(cluster) -> list[Node]                 control planes first, then workers, natural order
  get_node(cluster, name) -> Node                   full container name or short ("worker2")
  node_exec(node, argv, *, stdin, env, check) -> (exit code, stdout + stderr)
  put_file(node, path, data, mode)                  one file through put_archive (no mounts)
Additions:
  node_run(node, argv, *, stdin, env) -> ExecResult(code, stdout, stderr)   the two streams apart
  put_files(node, {path: (data, mode)})             several files in one put_archive per folder
  for_each_node(nodes, fn) -> list                  fn(node) on every node in threads, in node order
  find_nodes(cluster, names | None) -> list[Node]   all nodes, or the named ones (full or short names)
  Node.short                                        "worker2" for kind-worker2
  list_nodes(cluster, stopped=True)                 stopped nodes too (Node.state "exited", no address)
  node_stream(node, argv) -> chunks                 a long-running command's output as it comes
  stop_node_work(nodes=None)                        kill what this process started in the nodes (Ctrl-C)
Every exec carries NPPCTL_RUN=<this process's tag> in its environment, so its whole process tree
(apt-get's children included) can be found and killed in the node: Docker does not end an exec
when its client goes away.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nppctl.access.providers.base import LABEL_CLUSTER, LABEL_ROLE, natural_key, network_name
from nppctl.errors import NppctlError, check_name

ROLE_ORDER = {"control-plane": 0, "worker": 1}
_client = None
RUN_TAG = f"{os.getpid()}-{secrets.token_hex(6)}"  # marks every process this nppctl run starts in a node
_running: dict[str, Node] = {}  # exec id -> node, for the execs still running
_running_lock = threading.Lock()
# Kills, in the node, every process whose environment holds NPPCTL_RUN=$1 (two passes: children
# forked while the first pass ran). Fixed text; the tag is an argument, never pasted in.
_KILL_TAGGED = (
    'for pass in 1 2; do for f in /proc/[0-9]*/environ; do '
    'if tr "\\0" "\\n" < "$f" 2>/dev/null | grep -qxF "NPPCTL_RUN=$1"; then '
    'p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; fi; done; done; exit 0'
)


@dataclass
class Node:
    name: str
    role: str  # "control-plane" | "worker"
    cluster: str
    address: str  # IPv4 on the Docker network "kind" ("" when the node is not running)
    container: Any  # docker.models.containers.Container
    state: str = "running"  # the container's state: running, exited, paused, restarting, created, ...

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def short(self) -> str:
        """The name without the cluster prefix: control-plane, worker, worker2, ..."""
        prefix = self.cluster + "-"
        return self.name[len(prefix) :] if self.name.startswith(prefix) else self.name


@dataclass
class ExecResult:
    code: int
    stdout: str
    stderr: str


def docker_client():
    """A Docker SDK client whose engine answers (cached for the process)."""
    global _client
    if _client is not None:
        return _client
    import docker

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:  # noqa: BLE001 - every failure means the same to the user
        raise NppctlError(
            f"Docker engine not reachable at {where}: start dockerd (e.g. `systemctl start docker`) "
            f"or set DOCKER_HOST ({type(err).__name__})"
        ) from err
    _client = client
    return client


def _node_order(node: Node) -> tuple:
    return (ROLE_ORDER.get(node.role, 9), natural_key(node.short))


def _address(container) -> str:
    nets = container.attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
    net = nets.get(network_name()) or {}
    return net.get("IPAddress") or ""


def list_nodes(cluster: str, *, stopped: bool = False) -> list[Node]:
    """The cluster's node containers: control plane first, then workers by name.

    A node that is not running is an error, unless STOPPED: then it is listed with its state."""
    check_name(cluster)
    client = docker_client()
    containers = client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster}"})
    if not containers:
        raise NppctlError(
            f"cluster '{cluster}' not found: no container labelled {LABEL_CLUSTER}={cluster} "
            f"(create it with `nppctl up --name {cluster}`, or pick another with --name)"
        )
    nodes = []
    for c in containers:
        role = c.labels.get(LABEL_ROLE, "")
        if role not in ROLE_ORDER:
            continue  # e.g. kind's external-load-balancer
        if c.status != "running":
            if not stopped:
                raise NppctlError(f"node {c.name} is {c.status}: start it with `docker start {c.name}`")
            nodes.append(Node(c.name, role, cluster, address="", container=c, state=c.status))
            continue
        address = _address(c)
        if not address:
            raise NppctlError(
                f"node {c.name} has no IPv4 address on the Docker network '{network_name()}': "
                f"recreate the cluster (`nppctl down --name {cluster}` then `nppctl up`)"
            )
        nodes.append(Node(name=c.name, role=role, cluster=cluster, address=address, container=c))
    return sorted(nodes, key=_node_order)


def not_running(node: Node) -> NppctlError:
    """The one-line error for a node that is stopped (or paused, restarting, ...)."""
    return NppctlError(f"node {node.name} is {node.state}: start it with `docker start {node.name}`")


def _pick(nodes: list[Node], cluster: str, name: str) -> Node:
    for node in nodes:
        if name in (node.name, node.short):
            return node
    names = ", ".join(n.name for n in nodes)
    raise NppctlError(f"node '{name}' not found in cluster '{cluster}': its nodes are {names}")


def get_node(cluster: str, name: str) -> Node:
    """One running node by its container name (kind-worker2) or its short name (worker2); another
    node being stopped does not matter."""
    node = _pick(list_nodes(cluster, stopped=True), cluster, name)
    if not node.running:
        raise not_running(node)
    return node


def find_nodes(cluster: str, names: list[str] | None, *, stopped: bool = False) -> list[Node]:
    """All nodes (names None) or the named ones, in node order; NppctlError for an unknown name."""
    nodes = list_nodes(cluster, stopped=stopped)
    if names is None:
        return nodes
    wanted = {_pick(nodes, cluster, n).name for n in names}
    return [n for n in nodes if n.name in wanted]


def for_each_node(nodes: list[Node], fn: Callable[[Node], Any], *, keep_errors: bool = False) -> list:
    """fn(node) for every node in parallel threads; results in node order.

    The first NppctlError raises (after the other nodes finish), or with KEEP_ERRORS takes that node's
    place in the results. Ctrl-C returns at once: the nodes' work is killed, no thread is waited for."""
    if len(nodes) <= 1 and not keep_errors:
        return [fn(n) for n in nodes]
    pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes))))
    wait = True
    try:
        futures = [pool.submit(fn, n) for n in nodes]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except NppctlError as err:
                if not keep_errors:
                    raise
                results.append(err)
        return results
    except BaseException as err:
        if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit
            wait = False
            stop_node_work()
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=True)


def _api():
    return docker_client().api


def node_run(
    node: Node, argv: list[str], *, stdin: bytes | None = None, env: dict | None = None
) -> ExecResult:
    """Run argv in the node (no shell); stdout and stderr apart."""
    api = _api()
    exec_id = None
    try:
        exec_id = _exec_create(api, node, argv, stdin is not None, env)
        if stdin is None:
            out, err = api.exec_start(exec_id, demux=True)
        else:
            out, err = _exec_with_stdin(api, exec_id, stdin)
        code = _exit_code(api, exec_id)
    except Exception as error:  # docker.errors.APIError, NotFound
        _forget(exec_id)
        if isinstance(error, NppctlError):
            raise
        raise NppctlError(f"cannot run {argv[0]} in node {node.name}: {_api_message(error)}") from error
    # Ctrl-C (KeyboardInterrupt) skips this: the exec stays listed for stop_node_work to kill
    _forget(exec_id)
    out_s = (out or b"").decode(errors="replace")
    err_s = (err or b"").decode(errors="replace")
    # A missing executable: the engine reports it on stdout with 126/127.
    return ExecResult(code, out_s, err_s)


def _exec_create(api, node: Node, argv: list[str], stdin: bool, env: dict | None) -> str:
    """An exec in the node, tagged with this run's NPPCTL_RUN and remembered until it ends."""
    environment = {**(env or {}), "NPPCTL_RUN": RUN_TAG}
    exec_id = api.exec_create(node.container.id, list(argv), stdin=stdin, environment=environment)["Id"]
    with _running_lock:
        _running[exec_id] = node
    return exec_id


def _forget(exec_id: str | None) -> None:
    with _running_lock:
        _running.pop(exec_id, None)


def node_stream(node: Node, argv: list[str]):
    """Run argv in the node and yield its output (stdout and stderr) as it comes, until it ends.

    Closing the generator early leaves the command running in the node: stop_node_work([node]) ends it."""
    api = _api()
    exec_id = None
    try:
        exec_id = _exec_create(api, node, argv, False, None)
        yield from api.exec_start(exec_id, stream=True)
    except Exception as error:
        _forget(exec_id)
        raise NppctlError(f"cannot run {argv[0]} in node {node.name}: {_api_message(error)}") from error
    _forget(exec_id)


def stop_node_work(nodes: list[Node] | None = None, timeout: float = 5.0) -> None:
    """Kill every process this nppctl run started in NODES (None: the nodes with an exec still running).

    Best effort, each node in its own thread, at most TIMEOUT seconds in all: for Ctrl-C and ends."""
    if nodes is None:
        with _running_lock:
            nodes = list({n.container.id: n for n in _running.values()}.values())
    if not nodes or _client is None:
        return

    def kill(node: Node) -> None:
        try:
            api = _client.api
            killer = api.exec_create(node.container.id, ["sh", "-c", _KILL_TAGGED, "sh", RUN_TAG])["Id"]
            api.exec_start(killer)
        except Exception:  # noqa: BLE001 - a node that is gone has nothing left to kill
            pass

    threads = [threading.Thread(target=kill, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _exit_code(api, exec_id: str) -> int:
    """The exec's exit code; the engine may record it a moment after the output stream ends."""
    for _ in range(100):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return info["ExitCode"]
        time.sleep(0.01)
    return -1


def _exec_with_stdin(api, exec_id: str, data: bytes) -> tuple[bytes, bytes]:
    """exec_start on a hijacked socket: write stdin, half-close, read the multiplexed frames."""
    from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter

    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
        out, err = consume_socket_output(
            (demux_adaptor(*frame) for frame in frames_iter(sock, tty=False)), demux=True
        )
    finally:
        sock.close()
    return out or b"", err or b""


def _api_message(error: Exception) -> str:
    return str(getattr(error, "explanation", None) or error).strip().splitlines()[0]


def node_exec(
    node: Node,
    argv: list[str],
    *,
    stdin: bytes | None = None,
    env: dict | None = None,
    check: bool = True,
) -> tuple[int, str]:
    """Run argv in the node; (exit code, stdout followed by stderr). check: NppctlError on non-zero."""
    res = node_run(node, argv, stdin=stdin, env=env)
    text = res.stdout + res.stderr
    if check and res.code != 0:
        last = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        raise NppctlError(f"node {node.name}: `{' '.join(argv)}` failed (exit {res.code}): {last}")
    return res.code, text


def put_files(node: Node, files: dict[str, tuple[bytes, int]]) -> None:
    """Write files (absolute path -> (data, mode)) into the node; their folders must exist."""
    by_dir: dict[str, list[tuple[str, bytes, int]]] = {}
    for path, (data, mode) in files.items():
        folder, base = os.path.split(path)
        by_dir.setdefault(folder or "/", []).append((base, data, mode))
    for folder, entries in by_dir.items():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for base, data, mode in entries:
                info = tarfile.TarInfo(base)
                info.size = len(data)
                info.mode = mode
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
        try:
            ok = node.container.put_archive(folder, buf.getvalue())
        except Exception as error:
            raise NppctlError(
                f"cannot copy files into {node.name}:{folder}: {_api_message(error)}"
            ) from error
        if not ok:
            raise NppctlError(f"cannot copy files into {node.name}:{folder}")


def put_file(node: Node, path: str, data: bytes, mode: int = 0o644) -> None:
    """Write one file into the node with put_archive (no mounts needed); its folder must exist."""
    put_files(node, {path: (data, mode)})
