"""Prove an installed plugin works before saying so: in every node, one throwaway pod through the node's
first config, as containerd would run it.

Per node (in parallel), nodeside/runtime.py plays the runtime on the network namespace
/var/run/netns/nppctl-proof: ADD (the result must give the pod an IPv4 address), an ICMP echo from the pod
to its own node's address (every pod reaches its node: kubelet's probes come from there), CHECK where the
config's cniVersion has it (0.4.0 and later, unless disableCheck), and DEL, always, so the namespace and
whatever the plugin made for it go; the node's neighbour entry for the pod's address goes too (the next
pod is likely to get that address with another MAC). A proof left by an interrupted run is deleted first.

The built-in skeleton sets up no network by design: it is not proved (`Proof.skipped` says so).

Interface: prove(cluster, nodes=None, *, skeleton=False) -> list[Proof] (node order)
Addition: failure_line(cluster, proofs) -> str | None (the one error line when a node failed)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nppctl.access import agent
from nppctl.access.nodes import Node, find_nodes, for_each_node, list_nodes, node_run
from nppctl.errors import NppctlError
from nppctl.nodeside.base import NETNS_DIR

POD = "nppctl-proof"  # the throwaway pod's netns name (a `cni add` pod name: agent.POD_NAME)


@dataclass
class Proof:
    node: str
    ok: bool
    address: str | None = None  # the pod's address ADD gave
    steps: list[str] = field(default_factory=list)  # what was done, in order ("ADD 10.244.1.3/24", ...)
    error: str | None = None  # the first step that failed, with the plugin's own message
    skipped: str | None = None  # why the node was not proved

    @property
    def detail(self) -> str:
        return self.skipped or self.error or ", ".join(self.steps)


def _cni(node: Node, command: str) -> dict:
    return agent.run_agent(node, "cni", {"command": command, "pod": POD, "ifname": "eth0"})


def _address(result: dict) -> str | None:
    for ip in result.get("ips") or []:
        if isinstance(ip, dict) and "." in str(ip.get("address", "")):
            return str(ip["address"])
    return None


def prove_node(node: Node) -> Proof:
    """ADD, ping the node, CHECK, DEL on the throwaway pod in NODE."""
    proof = Proof(node.name, ok=False)
    if node_run(node, ["test", "-e", f"{NETNS_DIR}/{POD}"]).code == 0:
        try:
            _cni(node, "DEL")  # an interrupted proof's pod
        except NppctlError:
            pass
    try:
        answer = _cni(node, "ADD")
    except NppctlError as err:
        proof.error = f"ADD failed: {_plugin_said(err, node)}"
        return proof
    try:
        proof.address = _address(answer.get("result") or {})
        if proof.address is None:
            proof.error = "ADD succeeded but its result gives the pod no IPv4 address (ips is empty)"
            return proof
        proof.steps.append(f"ADD {proof.address}")
        if node.address:
            reply = agent.ping(node, [node.address], pod=POD, timeout=2.0)[0]
            if not reply.get("ok"):
                proof.error = (f"the pod ({proof.address}) gets no echo reply from its node {node.address}: "
                               f"{reply.get('detail') or 'no reply'} (routes or cni0 in the node)")
                return proof
            proof.steps.append(f"pod→node {node.address} ping")
        try:
            checked = _cni(node, "CHECK").get("result") or {}
            proof.steps.append("CHECK skipped (disableCheck)" if checked.get("skipped") else "CHECK")
        except NppctlError as err:
            if "does not support the CHECK command" not in str(err):
                proof.error = f"CHECK failed: {_plugin_said(err, node)}"
                return proof
            proof.steps.append("no CHECK before cniVersion 0.4.0")
    finally:
        try:
            _cni(node, "DEL")
            if proof.address:
                proof.steps.append("DEL")
        except NppctlError as err:
            proof.error = proof.error or f"DEL failed: {_plugin_said(err, node)}"
        if proof.address:  # the node learnt the pod's MAC answering it: the next pod given this
            # address (most plugins hand it out again) would be unreachable until that entry expires
            node_run(node, ["ip", "neigh", "flush", "to", proof.address.split("/")[0]])
    proof.ok = proof.error is None
    return proof


def _plugin_said(err: NppctlError, node: Node) -> str:
    text = str(err)
    prefix = f"node {node.name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def prove(cluster: str, nodes: list[str] | None = None, *, skeleton: bool = False) -> list[Proof]:
    """Prove the installed plugin on NODES (None: every running node) of CLUSTER; SKELETON: it is the
    built-in skeleton (a student's own skeleton is proved: the proof says what containerd will say)."""
    targets = find_nodes(cluster, nodes) if nodes else [n for n in list_nodes(cluster) if n.running]
    if skeleton:
        why = "the skeleton only logs: it sets up no network, so pods stay ContainerCreating (by design)"
        return [Proof(n.name, ok=True, skipped=why) for n in targets]
    found = for_each_node(targets, prove_node, keep_errors=True)
    return [
        Proof(n.name, ok=False, error=str(p)) if isinstance(p, NppctlError) else p
        for n, p in zip(targets, found, strict=True)
    ]


def failure_line(cluster: str, proofs: list[Proof]) -> str | None:
    """One line naming every node whose proof failed, the plugin's message, and what to do."""
    failed = [p for p in proofs if not p.ok]
    if not failed:
        return None
    return (
        f"the plugin is installed but does not work on {len(failed)} of {len(proofs)} node(s): "
        + "; ".join(f"{p.node}: {p.error}" for p in failed)
        + f" — see every call with `nppctl calls --name {cluster}`, fix the plugin, then "
        f"`nppctl install --name {cluster} --all --plugin PATH`"
    )
