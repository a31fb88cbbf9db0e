"""The map and a path as rich trees that read at 80 columns: one line per thing, wrapped between words
(a name is never cut), mismatches in red with ✗ and the reason.

Interface: map_tree(netmap) -> rich.tree.Tree, path_tree(trace) -> rich.tree.Tree
"""

from __future__ import annotations

from rich.text import Text
from rich.tree import Tree

from nppctl.netmap.firewall import rule_text

OK, BAD = ("✓", "green"), ("✗", "bold red")


def _line(*parts: tuple[str, str] | str) -> Text:
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(*part)
        else:
            text.append(part)
    return text


def _problems(branch: Tree, problems: list[str]) -> None:
    for p in problems:
        branch.add(_line(BAD, " ", (p, "red")))


def _conflists(branch: Tree, node: dict) -> None:
    if not node["conflists"]:
        branch.add(_line(BAD, (f" no config in {node.get('conf_dir', '/etc/cni/net.d')}", "red")))
    for c in node["conflists"]:
        what = " ".join(x for x in (",".join(c.get("types", [])), c.get("subnet")) if x)
        if c["in_effect"]:
            branch.add(
                _line(
                    ("conflist ", "bold"),
                    (c["file"], "cyan"),
                    f" {what}",
                    ("  in effect (lowest file name)", "dim"),
                )
            )
        else:
            branch.add(
                _line(
                    ("conflist ", "dim"),
                    (c["file"], "cyan"),
                    f" {what}  ",
                    ("not used: " + c["why"], "yellow"),
                )
            )


def _pod(branch: Tree, pod: dict) -> None:
    mark = BAD if pod["problems"] else OK
    sub = branch.add(
        _line(mark, " pod ", (f"{pod['namespace']}/{pod['name']}", "bold"), f" {pod['address']}")
    )
    sub.add(
        _line(
            f"{pod['ifname']} (pod) ↔ ",
            (pod["host_veth"] or "?", "cyan"),
            " (host)",
            "  hairpin" if pod.get("hairpin") else "",
            f"  MTU {pod['mtu']}",
        )
    )
    _problems(sub, pod["problems"])


def _bridge(branch: Tree, node: dict) -> None:
    b = node["bridge"]
    if b is None:
        return
    if not b["exists"]:
        note = (
            "not made yet: nppnet makes it at the first pod's ADD"
            if "nppnet" in (node.get("plugin") or "")
            else "missing"
        )
        bb = branch.add(_line(("bridge ", "bold"), (b["name"], "cyan"), f" {note}"))
    else:
        state = ("up", "green") if b["up"] else ("down", "bold red")
        bb = branch.add(
            _line(
                ("bridge ", "bold"),
                (b["name"], "cyan"),
                " ",
                state,
                f" {', '.join(b['addresses']) or 'no address'}",
                (f"  gateway {b['gateway']} of {b['subnet']}", "dim"),
            )
        )
    _problems(bb, b["problems"])
    for pod in node["pods"]:
        _pod(bb, pod)
    for s in node["stale_veths"]:
        bb.add(_line(BAD, " stale veth ", (s["host_veth"] or "?", "cyan"), (f" {s['why']}", "red")))


def _routes(branch: Tree, node: dict) -> None:
    if not node["routes"]:
        return
    rb = branch.add(_line(("routes", "bold"), (" to pod subnets", "dim")))
    for r in node["routes"]:
        mark = BAD if r["problems"] else OK
        how = f" via {r['via']}" if r["via"] else (f" dev {r['dev']}" if r["dev"] else "")
        to = "this node" if r["to"] == "local" else r["to"]
        sub = rb.add(_line(mark, f" {r['dst']}{how}", (f" → {to}" if to else "", "dim")))
        _problems(sub, r["problems"])


def _firewall(branch: Tree, node: dict) -> None:
    fw = node.get("firewall")
    if not fw:
        return
    if not fw["readable"]:
        branch.add(_line(BAD, (" iptables unreadable in the node", "red")))
        return
    jump = "NPPNET-FORWARD jumped from FORWARD" if fw["forward_jump"] else "no jump to NPPNET-FORWARD"
    fb = branch.add(_line(("firewall ", "bold"), f"FORWARD policy {fw['forward_policy']}, {jump}"))
    for rule in fw["rules"]:
        fb.add(_line((rule.split()[1] + ": ", "dim"), rule_text(rule)))
    for rule in fw["masquerade"]:
        fb.add(_line(("masquerade: ", "dim"), rule_text(rule)))


def map_tree(netmap: dict) -> Tree:
    names = (
        "pods named by the Kubernetes API"
        if netmap["source"] == "kubernetes"
        else "pods named by the runtime cache"
    )
    root = Tree(
        _line(
            ("cluster ", "bold"),
            (netmap["cluster"], "bold cyan"),
            f": {len(netmap['nodes'])} node(s), {names}",
        )
    )
    for node in netmap["nodes"]:
        mtu = f"  MTU {node['mtu']}" if node.get("mtu") else ""
        nb = root.add(
            _line(
                ("node ", "bold"),
                (node["name"], "bold cyan"),
                f" {node['role']}",
                f"  {node['address'] or node['state']}{mtu}",
            )
        )
        _problems(nb, node["problems"])
        if node["bridge"] is None:
            continue
        _conflists(nb, node)
        _bridge(nb, node)
        _routes(nb, node)
        _firewall(nb, node)
    if netmap["problems"]:
        root.add(_line(BAD, (f" {len(netmap['problems'])} mismatch(es): see the ✗ lines", "bold red")))
    else:
        root.add(_line(OK, (" no mismatch found", "green")))
    return root


def path_tree(trace: dict) -> Tree:
    root = Tree(
        _line(
            ("path ", "bold"),
            (trace["from"], "bold cyan"),
            " → ",
            (trace["to"], "bold cyan"),
            f": {len(trace['hops'])} hops",
        )
    )
    for i, hop in enumerate(trace["hops"]):
        mark = OK if hop["ok"] else BAD
        style = "dim" if trace["broken"] is not None and i > trace["broken"] else ""
        hb = root.add(
            _line(mark, f" {i + 1} ", (hop["step"], "bold"), f" {hop['where']}: ", (hop["detail"], style))
        )
        if not hop["ok"]:
            first = " first broken hop: " if i == trace["broken"] else " also broken: "
            hb.add(_line(("←" + first, "bold red"), (hop["why"], "red")))
    if trace["broken"] is None:
        root.add(_line(OK, (" every hop checks out", "green")))
    return root
