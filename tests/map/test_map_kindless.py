"""`nppctl map` on a kindless lab (issue 19): 2 workers, 4 `cni add` pods, read live from the nodes.

The tree and the JSON list exactly what `ip -j` shows in the nodes; the tree fits 80 columns without a
cut name; `--path` across nodes names every hop and marks the route deleted by hand; mismatches (a
stale veth, a route to a node that moved, a pod outside its node's subnet) are drawn; the SVG parses,
holds every node, bridge and pod, and renders in headless Chromium.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.map.conftest import PODS, pause_keeper
from tests.map.truth import (
    assert_fits_80_columns,
    assert_map_matches,
    node_truth,
    render_png,
    svg_groups,
)

ARTIFACTS = Path("/tmp/nppctl-map-artifacts")  # the SVG and PNG a run produced, kept for a look


def test_json_and_tree_list_exactly_what_ip_j_shows(kindless_lab):
    lab = kindless_lab
    netmap = lab.map(ok=True)
    assert netmap["source"] == "runtime-cache" and netmap["problems"] == []
    assert [n["short"] for n in netmap["nodes"]] == ["control-plane", "worker", "worker2"]
    tree = lab.nppctl("map", "--name", lab.name).stdout
    for short in ("control-plane", "worker", "worker2"):
        truth = node_truth(lab.node(short))
        assert_map_matches(netmap, lab.node(short), truth, netns_of=lambda p: p["name"])
        for pod in truth["pods"].values():
            assert pod["host_veth"] in tree and pod["address"] in tree
        for dst, via in truth["routes"]:
            assert f"{dst} via {via}" in tree if via else f"{dst} dev cni0" in tree
    by_name = {p["name"]: n["short"] for n in netmap["nodes"] for p in n["pods"]}
    assert by_name == PODS
    assert all(
        p["namespace"] == "default" and p["hairpin"] is True for n in netmap["nodes"] for p in n["pods"]
    )
    assert "✓ no mismatch found" in tree


def test_the_tree_reads_at_80_columns_with_no_cut_name(kindless_lab):
    lab = kindless_lab
    netmap = lab.map(ok=True)
    out = lab.nppctl("map", "--name", lab.name, columns=80).stdout
    names = [n["name"] for n in netmap["nodes"]] + ["09-nppnet.conflist", "NPPNET-FORWARD"]
    for node in netmap["nodes"]:
        names += [f"{p['namespace']}/{p['name']}" for p in node["pods"]] + [
            p["host_veth"] for p in node["pods"]
        ]
        names += [r["dst"] for r in node["routes"]] + [r["via"] for r in node["routes"] if r["via"]]
    assert_fits_80_columns(out, names)
    one = lab.nppctl("map", "--name", lab.name, "--node", "worker2", columns=80).stdout
    assert f"node {lab.node('worker2')} " in one and f"node {lab.node('worker')} " not in one


def test_path_across_nodes_names_every_hop_and_marks_a_deleted_route(kindless_lab):
    lab = kindless_lab
    netmap = lab.map(ok=True)
    nodes = {n["short"]: n for n in netmap["nodes"]}
    pods = {p["name"]: p for n in netmap["nodes"] for p in n["pods"]}
    ok = lab.map("--path", "p1", "p3", ok=True)
    assert ok["broken"] is None
    steps = [(h["step"], h["where"]) for h in ok["hops"]]
    assert steps == [
        ("pod", "default/p1"),
        ("pod route", "default/p1"),
        ("veth", "worker"),
        ("bridge", "worker"),
        ("route", "worker"),
        ("FORWARD", "worker"),
        ("kind network", "worker → worker2"),
        ("route", "worker2"),
        ("FORWARD", "worker2"),
        ("bridge", "worker2"),
        ("veth", "worker2"),
        ("pod", "default/p3"),
        ("reply route", "worker2"),
    ]
    text = " ".join(h["detail"] for h in ok["hops"])
    for part in (
        pods["p1"]["host_veth"],
        pods["p3"]["host_veth"],
        nodes["worker"]["address"],
        nodes["worker2"]["address"],
        f"{nodes['worker2']['subnet']} via {nodes['worker2']['address']}",
    ):
        assert part in text, (part, text)
    subnet = nodes["worker2"]["subnet"]
    pause_keeper(lab, "worker")
    try:
        lab.in_node("worker", "ip", "route", "del", subnet)
        broken = lab.map("--path", "p1", "p3", ok=False)
        hop = broken["hops"][broken["broken"]]
        assert (hop["step"], hop["where"]) == ("route", "worker"), hop
        assert f"no route to {subnet} (worker2's pods)" in hop["why"]
        assert [h["ok"] for h in broken["hops"]].count(False) == 1
        tree = lab.nppctl("map", "--name", lab.name, "--path", "p1", "p3", ok=False, columns=80)
        assert "✗ 5 route worker" in tree.stdout and "← first broken hop: no route to" in tree.stdout
        back = lab.map("--path", "p3", "p1", ok=False)  # the same route is p3's way back
        assert back["hops"][back["broken"]]["step"] == "reply route"
        assert f"route {subnet}: no route to {subnet}" in " ".join(lab.map(ok=False)["problems"])
        mapped = lab.nppctl("map", "--name", lab.name, ok=False, columns=80).stdout
        print(
            "\n$ nppctl map --name np9k   (COLUMNS=80; route to worker2's pods deleted on worker)\n" + mapped
        )
        print(f"$ nppctl map --name np9k --path p1 p3\n{tree.stdout}")
    finally:
        pause_keeper(lab, "worker", resume=True)
    deadline = time.monotonic() + 20
    while lab.map()["problems"] and time.monotonic() < deadline:
        time.sleep(1)
    assert lab.map(ok=True)["problems"] == []  # the keeper put it back


def test_mismatches_are_drawn_not_hidden(kindless_lab, tmp_path):
    lab = kindless_lab
    worker_subnet = next(n["subnet"] for n in lab.map()["nodes"] if n["short"] == "worker")
    # an address on the nodes' network that no node holds (the network's subnet varies by host)
    import ipaddress

    node_net = ipaddress.ip_interface(lab.in_node("worker2", "ip", "-4", "-o", "addr", "show", "eth0")
                                      .split()[3]).network
    stray = str(node_net.broadcast_address - 6)
    lab.nppctl("cni", "add", "--name", lab.name, "--node", "worker", "p5")
    pause_keeper(lab, "worker2")
    try:
        lab.in_node("worker", "ip", "link", "add", "np9stale", "type", "veth", "peer", "name", "np9peer")
        lab.in_node("worker", "ip", "link", "set", "np9stale", "master", "cni0", "up")
        lab.in_node("worker", "ip", "-n", "p5", "addr", "flush", "dev", "eth0")
        lab.in_node("worker", "ip", "-n", "p5", "addr", "add", "10.244.99.5/24", "dev", "eth0")
        lab.in_node("worker2", "ip", "route", "replace", worker_subnet, "via", stray)
        netmap = lab.map(ok=False)
        problems = "\n".join(netmap["problems"])
        assert "stale veth np9stale: on the bridge, its peer in no pod's namespace" in problems
        assert (
            f"pod default/p5: address 10.244.99.5/24 is outside the node's subnet {worker_subnet}" in problems
        )
        assert f"via {stray}, no node's address: {lab.node('worker')} is at" in problems
        tree = lab.nppctl("map", "--name", lab.name, ok=False, columns=80).stdout
        assert "✗ stale veth np9stale" in tree and "✗ pod default/p5 10.244.99.5/24" in tree
        assert "a node that moved" in tree
        svg = tmp_path / "mismatch.svg"
        lab.nppctl("map", "--name", lab.name, "--svg", str(svg), ok=False)
        groups = svg_groups(svg)
        assert "np9stale" in groups["stale"] and "default/p5" in groups["pod"]
        text = svg.read_text()
        assert stray in text and "#c62828" in text
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(svg, ARTIFACTS / "np9k-mismatches.svg")
        render_png(svg, ARTIFACTS / "np9k-mismatches.png", tmp_path / "chromium")
    finally:
        lab.in_node("worker", "ip", "link", "del", "np9stale", check=False)
        lab.nppctl("cni", "del", "--name", lab.name, "--node", "worker", "p5", ok=None)
        pause_keeper(lab, "worker2", resume=True)


def test_svg_is_valid_holds_everything_and_renders_in_chromium(kindless_lab, tmp_path):
    lab = kindless_lab
    ARTIFACTS.mkdir(exist_ok=True)
    svg = ARTIFACTS / "np9k-map.svg"
    out = lab.nppctl("map", "--name", lab.name, "--svg", str(svg))
    assert f"diagram written to {svg}" in out.stdout
    netmap = lab.map(ok=True)
    groups = svg_groups(svg)
    assert groups["node"] == {n["name"] for n in netmap["nodes"]}
    assert groups["bridge"] == {"cni0"}
    assert len([g for g in groups["bridge"]]) == 1
    assert groups["pod"] == {f"default/{p}" for p in PODS}
    text = svg.read_text()
    for node in netmap["nodes"]:
        for r in node["routes"]:
            assert r["dst"] in text
        for p in node["pods"]:
            assert p["host_veth"] in text and p["address"] in text
    width, height, spread = render_png(svg, ARTIFACTS / "np9k-map.png", tmp_path / "chromium")
    assert 800 <= width <= 4000 and 300 <= height <= 4000, (width, height)
    assert spread > 10  # not a blank page: text, boxes and colours were drawn
    size = (ARTIFACTS / "np9k-map.png").stat().st_size
    assert 20_000 < size < 5_000_000, size
    print(f"SVG written by the test: {svg} ({svg.stat().st_size} bytes), PNG {width}x{height} {size} bytes")
