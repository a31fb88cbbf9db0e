"""The diagram's layout at the size the issue asks for (8 nodes of 30 pods each): no two boxes overlap,
every pod box lies inside its node's box, and every name is written whole. The layout is a pure function
of the map, so this one is built in the test; the lab tests render maps read from real nodes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from nppctl.netmap.svg import CW, render

NS = "{http://www.w3.org/2000/svg}"


def big_map(nodes: int = 8, pods: int = 30) -> dict:
    out = []
    for n in range(nodes):
        name = f"np9layout-worker{n + 1}"
        subnet = f"10.244.{n}.0/24"
        out.append(
            {
                "name": name,
                "short": f"worker{n + 1}",
                "role": "worker",
                "state": "running",
                "address": f"172.18.0.{n + 2}",
                "mtu": 1500,
                "problems": [],
                "conflists": [
                    {
                        "file": "09-nppnet.conflist",
                        "types": ["nppnet", "portmap"],
                        "subnet": subnet,
                        "in_effect": True,
                        "why": "",
                    }
                ],
                "bridge": {
                    "name": "cni0",
                    "exists": True,
                    "up": True,
                    "addresses": [f"10.244.{n}.1/24"],
                    "problems": [],
                    "subnet": subnet,
                    "gateway": f"10.244.{n}.1",
                },
                "pods": [
                    {
                        "name": f"a-rather-long-pod-name-{n}-{i}",
                        "namespace": "kube-system",
                        "address": f"10.244.{n}.{i + 2}/24",
                        "ifname": "eth0",
                        "host_veth": f"veth{n:03d}{i:08d}",
                        "hairpin": True,
                        "problems": [],
                    }
                    for i in range(pods)
                ],
                "stale_veths": [],
                "routes": [
                    {
                        "dst": f"10.244.{m}.0/24",
                        "via": f"172.18.0.{m + 2}",
                        "dev": "eth0",
                        "to": f"np9layout-worker{m + 1}",
                        "problems": [],
                    }
                    for m in range(nodes)
                    if m != n
                ],
                "firewall": {"forward_policy": "ACCEPT", "rules": ["x"] * 3, "masquerade": ["y"]},
            }
        )
    return {"cluster": "np9layout", "source": "runtime-cache", "nodes": out, "problems": []}


def _boxes(svg: str) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """(class, node, (x0, y0, x1, y1)) of every node and pod box, in the document's coordinates."""
    found = []
    for group in ET.fromstring(svg).iter(f"{NS}g"):
        if group.attrib.get("class") != "node":
            continue
        dx, dy = map(float, re.match(r"translate\(([\d.]+),([\d.]+)\)", group.attrib["transform"]).groups())
        for rect in group.iter(f"{NS}rect"):
            if rect.attrib["class"] in ("nodebox", "podbox"):
                x, y = float(rect.attrib["x"]) + dx, float(rect.attrib["y"]) + dy
                w, h = float(rect.attrib["width"]), float(rect.attrib["height"])
                found.append((rect.attrib["class"], group.attrib["data-name"], (x, y, x + w, y + h)))
    return found


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_eight_nodes_of_thirty_pods_lay_out_without_overlaps():
    netmap = big_map()
    svg = render(netmap)
    boxes = _boxes(svg)
    nodes = [b for b in boxes if b[0] == "nodebox"]
    pods = [b for b in boxes if b[0] == "podbox"]
    assert len(nodes) == 8 and len(pods) == 240
    for i, a in enumerate(nodes):
        assert not any(_overlap(a[2], b[2]) for b in nodes[i + 1 :]), a
    frame = {name: box for _, name, box in nodes}
    for i, (_, node, box) in enumerate(pods):
        outer = frame[node]
        assert outer[0] < box[0] and box[2] < outer[2] and outer[1] < box[1] and box[3] < outer[3], (
            node,
            box,
        )
        assert not any(_overlap(box, other[2]) for other in pods[i + 1 :]), (node, box)
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{NS}text")]
    for node in netmap["nodes"]:
        for pod in node["pods"]:
            assert (
                f"{pod['namespace']}/{pod['name']}" in texts and f"eth0 ↔ {pod['host_veth']} hairpin" in texts
            )
    pod_w = float(
        next(r.attrib["width"] for r in root.iter(f"{NS}rect") if r.attrib.get("class") == "podbox")
    )
    longest = max(len(t) for t in texts if "/a-rather-long-pod-name-" in t)
    assert longest * CW + 6 < pod_w  # the longest pod name fits its box at the font's character width
    assert float(root.attrib["width"]) < 8000 and float(root.attrib["height"]) < 8000
