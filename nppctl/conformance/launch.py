"""Where a conformance card runs: a throwaway sandbox on this machine, or inside a lab node.

run_card(plugin, ...) resolves PLUGIN (nppnet, skel or an executable's path) and the config, ships
the card's engine (bundle.py: card.py and the modules it imports) to a python3 where the "node" is,
and returns the card it prints (a dict, see card.py). The sandbox: `unshare --mount --net --pid
--uts --ipc --cgroup --fork --mount-proc`, in which sandbox.py makes the host's mounts read-only and
mounts fresh tmpfs where plugins write (sandbox.SANDBOX_DIRS), so the plugin's files, netns, links
and iptables rules never reach the host and go with the namespaces.
In a node: the node's /usr/bin/python3 runs it through `docker exec`, pods are netns of that node,
removed at the end.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nppctl.errors import NppctlError

HERE = Path(__file__).resolve().parent
REFERENCE_DIRS = ("/opt/cni/bin", "/usr/lib/cni")  # reference plugins for chained configs
NODE_CNI_BIN = "/opt/cni/bin"
NODE_SCRATCH = "/var/lib/nppctl/conformance"
TEST_SUBNET = "10.244.99.0/24"  # nppnet/skel's own conflist in the sandbox
NODE_SUBNET = "198.18.99.0/24"  # the card's own network in a node (RFC 2544's test range: no node's pods)
BUILT = {"nppnet": "nppnet", "skel": "nppnet-skel"}
PARALLEL_MAX = 200


def parse_bridge(value: str | None) -> dict | None:
    """NAME=GATEWAY/PREFIX -> {"name", "address"}."""
    if not value:
        return None
    from nppctl.plugin.names import valid_ifname

    name, _, address = value.partition("=")
    try:
        iface = ipaddress.ip_interface(address)
        if "/" not in address or iface.network.prefixlen == iface.max_prefixlen:
            raise ValueError
    except ValueError:
        raise NppctlError(
            f"--bridge {value!r}: give NAME=GATEWAY/PREFIX, e.g. --bridge cni0=10.244.1.1/24"
        ) from None
    if not valid_ifname(name):
        raise NppctlError(f"--bridge {value!r}: {name!r} is not a valid interface name (1-15 characters)")
    return {"name": name, "address": str(iface)}


def read_conf(path: Path) -> dict:
    """A .conf or .conflist file as JSON, checked for what the card needs."""
    try:
        conf = json.loads(Path(path).read_text())
    except OSError as err:
        raise NppctlError(f"cannot read --conf {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise NppctlError(f"--conf {path} is not valid JSON ({err}): fix the file") from None
    if not isinstance(conf, dict):
        raise NppctlError(f"--conf {path} is not a JSON object: give a .conf or .conflist")
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    if not isinstance(plugins, list) or not plugins or not all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins
    ):
        raise NppctlError(f"--conf {path}: every plugin needs a \"type\" (a conflist needs \"plugins\")")
    if not isinstance(conf.get("cniVersion"), str) or not isinstance(conf.get("name"), str):
        raise NppctlError(f"--conf {path}: \"cniVersion\" and \"name\" are required")
    return conf


def _engine() -> bytes:
    """The card's engine (card.py and the modules it imports) as one script for `python3 -`."""
    from nppctl.conformance.bundle import script

    return script()


def _icmp_source() -> str:
    return (HERE.parent / "nodeside" / "icmp.py").read_text()


def _spec(plugin: str, plugin_dir: str, conf: dict | None, bridge, parallel: int, timeout: float) -> dict:
    if conf is not None and plugin not in [p.get("type") for p in conf.get("plugins", [conf])]:
        raise NppctlError(
            f"the config runs no plugin of type {plugin!r}: pass a --conf whose plugins include it"
        )
    if not 1 <= parallel <= PARALLEL_MAX:
        raise NppctlError(f"--parallel {parallel}: use 1 to {PARALLEL_MAX}")
    if timeout <= 0:
        raise NppctlError(f"--timeout {timeout}: give a positive number of seconds")
    return {
        "plugin": plugin,
        "plugin_dir": plugin_dir,
        "conf": conf,
        "bridge": bridge,
        "parallel": parallel,
        "timeout": timeout,
        "icmp": _icmp_source(),
        "prefix": "nppt",
    }


def _answer(stdout: str, stderr: str, where: str) -> dict:
    lines = stdout.strip().splitlines()
    try:
        card = json.loads(lines[-1]) if lines else None
    except ValueError:
        card = None
    if not isinstance(card, dict):
        detail = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1]
        raise NppctlError(f"the card's engine failed {where}: {detail}")
    if "error" in card:
        raise NppctlError(f"the card could not run {where}: {card['error']}")
    return card


def run_card(
    plugin: str,
    *,
    conf: Path | None = None,
    bridge: str | None = None,
    parallel: int = 16,
    timeout: float = 10.0,
    node: str | None = None,
    cluster: str = "kind",
) -> dict:
    """The card of PLUGIN (nppnet, skel, or an executable's path): a dict as card.py prints it."""
    bridge_spec = parse_bridge(bridge)
    conf_obj = read_conf(conf) if conf is not None else None
    if node:
        card = _in_node(plugin, conf_obj, bridge_spec, parallel, timeout, cluster, node)
    else:
        card = _in_sandbox(plugin, conf_obj, bridge_spec, parallel, timeout)
    return card


def _check_file(plugin: str, path: Path) -> None:
    """A plugin given by path: an executable #! script or binary (nppctl.build.plugincheck). Not run
    here: the card asks VERSION inside its sandbox or node (a plugin may write anywhere when run)."""
    from nppctl.build.plugincheck import check_plugin_file

    if not path.is_file() or not os.access(path, os.X_OK):
        raise NppctlError(f"plugin {plugin!r}: not nppnet or skel, nor an executable file")
    check_plugin_file(path, "plugin")


def _in_sandbox(plugin, conf, bridge, parallel, timeout) -> dict:
    if os.geteuid() != 0:
        raise NppctlError("the sandbox needs root (network and mount namespaces): run it with sudo")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise NppctlError("the sandbox needs util-linux's unshare and iproute2's ip: install them")
    work = None
    try:
        if plugin in BUILT:
            from nppctl.build import artifacts

            work = tempfile.mkdtemp(prefix="nppctl-conformance-")
            artifacts.build_plugins(Path(work))
            ptype, plugin_dir = BUILT[plugin], work
            if conf is None:
                conf = json.loads(artifacts.render_conflist(TEST_SUBNET, plugin=ptype))
        else:
            path = Path(plugin).resolve()
            _check_file(plugin, path)
            if conf is None:
                raise NppctlError(f"plugin {plugin}: pass --conf FILE (the network config to test it with)")
            ptype, plugin_dir = path.name, str(path.parent)
        cni_path = [plugin_dir] + [d for d in REFERENCE_DIRS if os.path.isdir(d) and d != plugin_dir]
        spec = _spec(ptype, plugin_dir, conf, bridge, parallel, timeout)
        spec.update(cni_path=cni_path, sandbox=True)
        # UTS, IPC, cgroup: a plugin's `hostname x`, semaphores and cgroup view stay in the sandbox
        argv = ["unshare", "--mount", "--net", "--pid", "--uts", "--ipc", "--cgroup", "--fork",
                "--mount-proc", "--kill-child",
                sys.executable, "-", json.dumps(spec)]
        done = subprocess.run(argv, input=_engine(), capture_output=True)
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    card = _answer(done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"),
                   "in the sandbox")
    card["where"] = "sandbox"
    return card


def _sweep_node(target, own: dict) -> None:
    """After a Ctrl-C: the card's work in the node killed, then its pods, bridge, rules and scratch removed
    (sandbox.sweep), the Ctrl-C held meanwhile; best effort (the next card in the node sweeps too)."""
    from nppctl.access.nodes import node_run, stop_node_work
    from nppctl.access.throwaway import sigint_held
    from nppctl.build.artifacts import PYTHON

    spec = {"sweep": {"subnet": own["subnet"], "scratch_root": own["scratch_root"]}}
    with sigint_held():
        try:
            stop_node_work([target])
            node_run(target, [PYTHON, "-", json.dumps(spec)], stdin=_engine())
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def _in_node(plugin, conf, bridge, parallel, timeout, cluster, node_name) -> dict:
    from nppctl.access.nodes import get_node, node_exec, node_run, put_file
    from nppctl.build.artifacts import PYTHON

    target = get_node(cluster, node_name)
    scratch = f"{NODE_SCRATCH}/{os.getpid()}"
    node_exec(target, ["mkdir", "-p", scratch])
    if plugin in BUILT:
        ptype, plugin_dir = BUILT[plugin], NODE_CNI_BIN
    else:
        path = Path(plugin).resolve()
        _check_file(plugin, path)
        put_file(target, f"{scratch}/{path.name}", path.read_bytes(), 0o755)
        ptype, plugin_dir = path.name, scratch
    # a network, bridge, store and subnet of the card's own: the node's real pods are never touched
    own = {"name": f"nppctl-card-{os.getpid()}", "bridge": f"npptbr{os.getpid() % 100000}",
           "data_dir": f"{scratch}/data", "subnet": NODE_SUBNET, "scratch_root": NODE_SCRATCH}
    if bridge:
        net = ipaddress.ip_network(NODE_SUBNET)
        bridge = {"name": own["bridge"], "address": f"{net.network_address + 1}/{net.prefixlen}"}
    try:
        spec = _spec(ptype, plugin_dir, conf, bridge, parallel, timeout)
        spec.update(cni_path=[plugin_dir] + ([NODE_CNI_BIN] if plugin_dir != NODE_CNI_BIN else []),
                    isolate=own)
        res = node_run(target, [PYTHON, "-", json.dumps(spec)], stdin=_engine())
    except KeyboardInterrupt:  # the card's work in the node is killed: what it made goes now
        _sweep_node(target, own)
        raise
    finally:
        if scratch:
            node_exec(target, ["rm", "-rf", scratch], check=False)
            node_exec(target, ["rmdir", NODE_SCRATCH], check=False)  # when no other card uses it
    if res.code in (126, 127) and "python3" in (res.stdout + res.stderr):
        raise NppctlError(
            f"node {target.name} has no python3 at {PYTHON}, which the card runs on: rerun "
            f"`nppctl install --name {cluster} ... --ensure-python` to install it"
        )
    card = _answer(res.stdout, res.stderr, f"in node {target.name}")
    card["where"] = f"node {target.name}"
    return card
