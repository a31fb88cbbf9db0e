"""TCP from Python in a pod's namespace: the Service probe's server and clients (`nppctl check`).

serve    listen on spec["port"] in pod spec["pod"]'s namespace and answer every connection with one line,
         "<reply> <peer address>", until `stop` signals it or spec["lifetime"] seconds pass; the agent
         call itself is the server (no process outlives it), its answer lists the peers it saw
stop     end the server of that pod and port (SIGTERM to the pid it recorded)
connect  one TCP connection per target from the node or a pod: connect time and the line read back

The sockets are made inside the pod's namespace with icmp.socket_in (the thread switches back at once).
"""

import errno
import os
import select
import signal
import socket
import time

from .base import NETNS_DIR, AgentError
from .icmp import socket_in

RUN_DIR = "/run/nppctl"
MARKER = "tcp-serve"  # in the server's command line: `stop` kills nothing else
REFUSED_RETRY_S = 3.0  # a server still starting refuses: retry that long


def _netns(pod):
    if not pod:
        return None
    path = os.path.join(NETNS_DIR, pod)
    if not os.path.exists(path):
        raise AgentError(f"pod {pod} has no network namespace in this node: run `nppctl cni add` first")
    return path


def _pidfile(pod, port):
    return os.path.join(RUN_DIR, f"{MARKER}-{pod}-{int(port)}.pid")


def serve(spec):
    pod, port = spec["pod"], int(spec["port"])
    reply = spec.get("reply", "nppctl")
    lifetime = float(spec.get("lifetime", 120))
    stop({"pod": pod, "port": port})  # a previous run's server, if one was left
    sock = socket_in(_netns(pod), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as err:
        sock.close()
        raise AgentError(f"pod {pod} cannot listen on TCP port {port}: {err.strerror}") from None
    sock.listen(64)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    os.makedirs(RUN_DIR, exist_ok=True)
    pidfile = _pidfile(pod, port)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    peers = []
    deadline = time.monotonic() + lifetime
    try:
        while not stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                ready = select.select([sock], [], [], min(left, 0.5))[0]
            except InterruptedError:
                continue
            if not ready:
                continue
            conn, (peer, _) = sock.accept()
            peers.append(peer)
            with conn:
                conn.settimeout(2)
                try:
                    conn.sendall(f"{reply} {peer}\n".encode())
                except OSError:
                    pass
    finally:
        sock.close()
        if os.path.exists(pidfile):
            os.unlink(pidfile)
    return {"peers": peers, "stopped": bool(stopping)}


def stop(spec):
    """SIGTERM to the server of pod/port (only a process whose command line names tcp-serve)."""
    pidfile = _pidfile(spec["pod"], spec["port"])
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, ValueError):
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        return {"stopped": False}
    if MARKER.encode() not in cmdline:
        os.unlink(pidfile)  # the pid was reused by another process: leave that one alone
        return {"stopped": False}
    os.kill(pid, signal.SIGTERM)
    return {"stopped": True, "pid": pid}


def _connect_one(netns, address, port, timeout):
    started = time.monotonic()
    while True:
        sock = socket_in(netns, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            t0 = time.monotonic()
            sock.connect((address, port))
            ms = (time.monotonic() - t0) * 1000.0
            data = b""
            while len(data) < 512:
                chunk = sock.recv(512)
                if not chunk:
                    break
                data += chunk
            return ms, data.decode(errors="replace").strip(), ""
        except socket.timeout:
            return None, "", f"no answer from {address}:{port} in {timeout:g}s"
        except OSError as err:
            if err.errno == errno.ECONNREFUSED and time.monotonic() - started < REFUSED_RETRY_S:
                time.sleep(0.2)
                continue
            return None, "", f"{address}:{port}: {err.strerror or err}"
        finally:
            sock.close()


def connect(spec):
    """{"results": [{"address", "port", "ok", "ms", "reply", "detail"}]}: ok when the line read back starts
    with spec["expect"]."""
    netns = _netns(spec.get("pod"))
    timeout = float(spec.get("timeout", 2))
    expect = spec.get("expect", "")
    out = []
    for target in spec["targets"]:
        address, port = target["address"], int(target["port"])
        ms, reply, detail = _connect_one(netns, address, port, timeout)
        ok = ms is not None and reply.startswith(expect)
        if ms is not None and not ok:
            detail = f"{address}:{port} answered {reply[:80]!r}, not {expect!r}"
        out.append({"address": address, "port": port, "ok": ok, "ms": ms, "reply": reply, "detail": detail})
    return {"results": out}
