"""The map as an SVG diagram, written by hand (no network, no browser, no library).

Nodes are boxes, four to a row; in each, its conflist, the bridge as a bar, the pods under it in two
columns (each a box with its address and veth pair, a line up to the bridge: the veth link), stale veths
as dashed red boxes, the routes to the other nodes' pod subnets and the firewall in lines of text, and
eth0 at the bottom, joined to the Docker network's bus that runs under each row (and down the left
side between rows). Sizes come from the longest text in a monospace font (7.2 px a character at 12 px),
so nothing overflows a box and no two boxes overlap, for up to 8 nodes of 30 pods and more.
Mismatches are red: the pod, route, veth or node they concern, with the reason written out.

Every element group carries class and data-* attributes (node, bridge, pod, veth, route, stale) that a
reader, or a test, can find them by.

Interface: render(netmap) -> str (the SVG document), write_svg(netmap, path)
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

CW, LH = 7.2, 16  # character width and line height (px) at FONT_SIZE
FONT_SIZE = 12
PAD, GAP, BUS_GAP = 12, 40, 70
POD_H, POD_GAP = 58, 12
PER_ROW = 4
MIN_W, MAX_CHARS = 380, 64
FONTS = "DejaVu Sans Mono, Menlo, Consolas, monospace"
RED, GREEN, GREY, INK = "#c62828", "#2e7d32", "#757575", "#212121"


def _t(x, y, text, *, size=FONT_SIZE, fill=INK, weight="normal", anchor="start", cls=None):
    attrs = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" font-weight="{weight}" '
        f'text-anchor="{anchor}"{attrs}>{escape(str(text))}</text>'
    )


def _rect(x, y, w, h, *, fill="#ffffff", stroke=INK, dash=False, rx=6, cls="box", width=1.2):
    dashed = ' stroke-dasharray="5 3"' if dash else ""
    return (
        f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dashed}/>'
    )


def _wrap(text: str, chars: int) -> list[str]:
    return textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False) or [""]


def _pod_lines(pod: dict) -> list[str]:
    name = f"{pod['namespace']}/{pod['name']}" if pod.get("name") else "stale veth"
    hair = " hairpin" if pod.get("hairpin") else ""
    return [
        name,
        pod.get("address") or "no address",
        f"{pod.get('ifname') or '?'} ↔ {pod['host_veth']}{hair}",
    ]


def _node_text(node: dict) -> dict:
    """The lines of a node box, by section (each a list of (text, colour, weight))."""
    head = [
        (node["name"], INK, "bold"),
        (
            f"{node['role']} · {node['address'] or node['state']}"
            + (f" · MTU {node['mtu']}" if node.get("mtu") else ""),
            GREY,
            "normal",
        ),
    ]
    confs = []
    for c in node.get("conflists", []):
        what = f"{c['file']} ({','.join(c.get('types', []))}" + (
            f", {c['subnet']})" if c.get("subnet") else ")"
        )
        confs.append(
            (
                ("▶ " if c["in_effect"] else "  ") + what,
                INK if c["in_effect"] else GREY,
                "bold" if c["in_effect"] else "normal",
            )
        )
        if not c["in_effect"]:
            confs.append(("    not used: " + c["why"], GREY, "normal"))
    routes = [("routes:", INK, "bold")] if node.get("routes") else []
    for r in node.get("routes", []):
        how = f" via {r['via']}" if r["via"] else (f" dev {r['dev']}" if r["dev"] else "")
        to = "this node" if r["to"] == "local" else (r["to"] or "?")
        routes.append((f"→ {r['dst']}{how} ({to})", RED if r["problems"] else GREEN, "normal"))
        routes += [("    ✗ " + p, RED, "normal") for p in r["problems"]]
    fw = node.get("firewall")
    if fw:
        masq = "masquerade ✓" if fw["masquerade"] else "no masquerade"
        routes.append(
            (
                f"firewall: FORWARD {fw['forward_policy']} · {len(fw['rules'])} nppnet rule(s) · {masq}",
                INK,
                "normal",
            )
        )
    problems = [("✗ " + p, RED, "normal") for p in node["problems"]]
    return {"head": head, "confs": confs, "tail": routes, "problems": problems}


def _layout_node(node: dict, width: float) -> tuple[list[str], float]:
    """The SVG elements of one node box at (0, 0) and its height."""
    chars = int((width - 2 * PAD) / CW)
    text = _node_text(node)
    out, y = [], PAD + LH
    bad = bool(node["problems"])

    def lines(items, size=FONT_SIZE):
        nonlocal y
        for line, fill, weight in items:
            for part in _wrap(line, chars):
                out.append(_t(PAD, y, part, size=size, fill=fill, weight=weight))
                y += LH

    lines(text["head"][:1], size=14)
    lines(text["head"][1:])
    lines(text["confs"])
    lines(text["problems"])
    bridge = node.get("bridge")
    if bridge is not None:
        y += 4
        ok = bridge["exists"] and bridge.get("up") and not bridge["problems"]
        label = (
            (
                f"bridge {bridge['name']} "
                + ("up " if bridge.get("up") else "DOWN ")
                + (", ".join(bridge.get("addresses", [])) or "no address")
            )
            if bridge["exists"]
            else f"bridge {bridge['name']}: not made yet"
        )
        bar_y = y
        out.append(
            f'<g class="bridge" data-name={quoteattr(bridge["name"])} data-node={quoteattr(node["name"])}>'
        )
        out.append(
            _rect(
                PAD,
                bar_y,
                width - 2 * PAD,
                26,
                fill="#e3f2fd" if ok or not bridge["exists"] else "#ffebee",
                stroke=RED if bridge["problems"] else "#1565c0",
                rx=4,
                cls="bar",
            )
        )
        out.append(_t(PAD + 8, bar_y + 17, label, weight="bold"))
        out.append("</g>")
        y = bar_y + 26 + 14
        attached = [("pod", p) for p in node["pods"]] + [("stale", s) for s in node["stale_veths"]]
        col_w = (width - 3 * PAD) / 2
        for i, (kind, pod) in enumerate(attached):
            col, row = i % 2, i // 2
            px, py = PAD + col * (col_w + PAD), y + row * (POD_H + POD_GAP)
            bad_pod = kind == "stale" or bool(pod.get("problems"))
            stroke = RED if bad_pod else "#2e7d32"
            name = f"{pod['namespace']}/{pod['name']}" if kind == "pod" else (pod["host_veth"] or "?")
            out.append(
                f'<g class="{kind}" data-name={quoteattr(name)} data-node={quoteattr(node["name"])} '
                f"data-veth={quoteattr(pod['host_veth'] or '')}>"
            )
            spine_x, mid = px - PAD / 2, py + POD_H / 2  # the veth: from the column's spine to the pod
            out.append(
                f'<line class="veth" x1="{spine_x:.1f}" y1="{mid:.1f}" x2="{px:.1f}" y2="{mid:.1f}" '
                f'stroke="{stroke}" stroke-width="2"/>'
            )
            out.append(
                _rect(
                    px,
                    py,
                    col_w,
                    POD_H,
                    fill="#fff8f8" if bad_pod else "#f1f8e9",
                    stroke=stroke,
                    dash=kind == "stale",
                    cls="podbox",
                )
            )
            lines_ = (
                _pod_lines(pod)
                if kind == "pod"
                else [
                    f"stale veth {pod['host_veth']}",
                    pod.get("address") or "no pod behind it",
                    f"netns {pod.get('netns') or 'none'}",
                ]
            )
            for j, line in enumerate(lines_):
                out.append(
                    _t(
                        px + 6,
                        py + 16 + j * LH,
                        line,
                        size=FONT_SIZE - (0 if j == 0 else 1),
                        weight="bold" if j == 0 else "normal",
                        fill=RED if bad_pod and j == 0 else INK,
                    )
                )
            out.append("</g>")
        for col in range(min(2, len(attached))):  # each column's spine hangs from the bridge bar
            last = (len(attached) - 1 - col) // 2
            spine_x = PAD / 2 + col * (col_w + PAD)
            end = y + last * (POD_H + POD_GAP) + POD_H / 2
            out.append(
                f'<line class="spine" x1="{spine_x:.1f}" y1="{bar_y + 26:.1f}" x2="{spine_x:.1f}" '
                f'y2="{end:.1f}" stroke="#1565c0" stroke-width="2"/>'
            )
        rows = (len(attached) + 1) // 2
        y += rows * (POD_H + POD_GAP) + 4
        problems = [
            (f"✗ {pod['namespace']}/{pod['name']}: {p}", RED, "normal")
            for pod in node["pods"]
            for p in pod["problems"]
        ]
        problems += [
            (f"✗ stale veth {s['host_veth']}: {s['why']}", RED, "normal") for s in node["stale_veths"]
        ]
        lines(problems)
    lines(text["tail"])
    y += 8
    out.append(f'<g class="eth0" data-node={quoteattr(node["name"])}>')
    out.append(_rect(width / 2 - 80, y, 160, 24, fill="#fafafa", stroke=GREY, rx=4, cls="port"))
    out.append(_t(width / 2, y + 16, f"eth0 {node['address'] or '-'}", anchor="middle"))
    out.append("</g>")
    height = y + 24 + PAD
    box = _rect(0, 0, width, height, fill="#ffffff", stroke=RED if bad else INK, width=1.6, cls="nodebox")
    return [box, *out], height


def _width(netmap: dict) -> float:
    longest = 0
    for node in netmap["nodes"]:
        for section in _node_text(node).values():
            longest = max([longest, *(min(len(t), MAX_CHARS) for t, _, _ in section)])  # longer ones wrap
        for pod in node["pods"]:
            longest = max([longest, *(2 * len(x) + 4 for x in _pod_lines(pod))])
        for stale in node["stale_veths"]:
            longest = max(
                longest, 2 * len(f"stale veth {stale['host_veth']}  netns {stale.get('netns')}") + 4
            )
    return max(MIN_W, longest * CW + 2 * PAD)


def render(netmap: dict) -> str:
    width = _width(netmap)
    nodes = netmap["nodes"]
    laid = [_layout_node(n, width) for n in nodes]
    margin, title_h = 30, 50
    rows = [laid[i : i + PER_ROW] for i in range(0, len(laid), PER_ROW)] or [[]]
    cols = min(PER_ROW, max(1, len(laid)))
    total_w = 2 * margin + cols * width + (cols - 1) * GAP
    body, y = [], title_h
    bus_x = margin / 2
    for r, row in enumerate(rows):
        row_h = max((h for _, h in row), default=0)
        bus_y = y + row_h + BUS_GAP / 2
        for c, (elements, h) in enumerate(row):
            node = nodes[r * PER_ROW + c]
            x = margin + c * (width + GAP)
            body.append(
                f'<g class="node" data-name={quoteattr(node["name"])} transform="translate({x:.1f},{y:.1f})">'
            )
            body.extend(elements)
            body.append("</g>")
            body.append(
                f'<line class="link" x1="{x + width / 2:.1f}" y1="{y + h:.1f}" x2="{x + width / 2:.1f}" '
                f'y2="{bus_y:.1f}" stroke="{GREY}" stroke-width="2"/>'
            )
        if row:
            last_x = margin + (len(row) - 1) * (width + GAP) + width / 2
            body.append(
                f'<line class="bus" x1="{bus_x:.1f}" y1="{bus_y:.1f}" x2="{last_x:.1f}" y2="{bus_y:.1f}" '
                f'stroke="#6a1b9a" stroke-width="4"/>'
            )
            body.append(
                _t(margin, bus_y + 18, "Docker network kind (the nodes' eth0)", fill="#6a1b9a", size=11)
            )
        y += row_h + BUS_GAP
    if len(rows) > 1:
        first, last = title_h + max(h for _, h in rows[0]) + BUS_GAP / 2, y - BUS_GAP / 2
        body.append(
            f'<line class="bus" x1="{bus_x:.1f}" y1="{first:.1f}" x2="{bus_x:.1f}" y2="{last:.1f}" '
            f'stroke="#6a1b9a" stroke-width="4"/>'
        )
    n_problems = len(netmap["problems"])
    summary = f"{n_problems} mismatch(es), drawn in red" if n_problems else "no mismatch found"
    title = [
        _t(margin, 28, f"nppctl map: cluster {netmap['cluster']}", size=18, weight="bold"),
        _t(
            margin,
            44,
            f"{len(nodes)} node(s), pods named by the "
            + ("Kubernetes API" if netmap["source"] == "kubernetes" else "runtime cache")
            + f" · {summary}",
            fill=RED if n_problems else GREY,
            size=12,
        ),
    ]
    height = y + 10
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {total_w:.0f} {height:.0f}" font-family="{FONTS}">'
    )
    return (
        "\n".join(
            [
                head,
                f'<rect width="{total_w:.0f}" height="{height:.0f}" fill="#fcfcfc"/>',
                *title,
                *body,
                "</svg>",
            ]
        )
        + "\n"
    )


def write_svg(netmap: dict, path: Path) -> None:
    from nppctl.errors import NppctlError

    try:
        Path(path).write_text(render(netmap), encoding="utf-8")
    except OSError as err:
        raise NppctlError(
            f"cannot write the diagram to {path}: {err.strerror or err}; pick another --svg file"
        ) from None
