"""What `ip -j` in a node shows, read with `docker exec` (the tests' own reading, not nppctl's), and the
checks that `nppctl map` lists exactly that; the SVG checks and the Chromium render."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

from rich.cells import cell_len

from tests.conftest import require

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def ip_j(node: str, *args: str):
    out = subprocess.run(
        ["docker", "exec", node, "ip", "-j", *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out) if out.strip() else []


def node_truth(node: str, bridge: str = "cni0") -> dict:
    """Per node: bridge addresses, host veths on the bridge, pod addresses by netns with their host veth,
    and the routes (dst, gateway) within 10.244.0.0/16."""
    links = ip_j(node, "link", "show")
    veths = {x["ifname"]: x for x in links if x.get("master") == bridge}
    pods = {}
    for ns in ip_j(node, "netns", "list"):
        for link in ip_j(node, "-n", ns["name"], "addr", "show"):
            if link.get("link_netnsid") != 0:
                continue
            host = next(v for v in veths.values() if v["ifindex"] == link["link_index"])
            addrs = [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == "inet"]
            pods[ns["name"]] = {"address": addrs[0], "host_veth": host["ifname"], "mac": link["address"]}
    bridge_addrs = [
        f"{a['local']}/{a['prefixlen']}"
        for x in ip_j(node, "-4", "addr", "show")
        if x["ifname"] == bridge
        for a in x["addr_info"]
    ]
    routes = {
        (r["dst"], r.get("gateway"))
        for r in ip_j(node, "-4", "route", "show")
        if r["dst"].startswith("10.244.")
    }
    return {"veths": set(veths), "pods": pods, "bridge": bridge_addrs, "routes": routes}


def assert_map_matches(netmap: dict, node: str, truth: dict, netns_of) -> None:
    """The map's entry for NODE lists exactly TRUTH: every pod (by netns_of(pod)), veth, address, route."""
    entry = next(n for n in netmap["nodes"] if n["name"] == node)
    seen = {
        netns_of(p): {"address": p["address"], "host_veth": p["host_veth"], "mac": p["mac"]}
        for p in entry["pods"]
    }
    assert seen == truth["pods"], (node, seen, truth["pods"])
    listed = {p["host_veth"] for p in entry["pods"]} | {s["host_veth"] for s in entry["stale_veths"]}
    assert listed == truth["veths"], (node, listed, truth["veths"])
    if truth["bridge"]:
        assert entry["bridge"]["addresses"] == truth["bridge"]
    assert {(r["dst"], r["via"]) for r in entry["routes"] if r["dev"]} == truth["routes"], entry["routes"]


def assert_fits_80_columns(output: str, names: list[str]) -> None:
    lines = output.splitlines()
    wide = [ln for ln in lines if cell_len(ln) > 80]
    assert not wide, wide
    for name in names:  # each whole on one line: never cut, never folded across two
        assert any(name in ln for ln in lines), (name, output)


def svg_groups(path: Path) -> dict[str, set[str]]:
    """class -> data-name of every element group of the SVG (parsed: a broken document raises)."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    found: dict[str, set[str]] = {}
    for el in root.iter():
        if "data-name" in el.attrib:
            found.setdefault(el.attrib.get("class", ""), set()).add(el.attrib["data-name"])
    return found


def _png_size_and_spread(png: Path) -> tuple[int, int, int]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"IDAT":
            idat += data[i + 8 : i + 8 + length]
        i += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def render_png(svg: Path, png: Path, profile: Path) -> tuple[int, int, int]:
    """The SVG rendered by Debian's headless Chromium: (width, height, distinct byte values of its pixels)."""
    browser = shutil.which("chromium")
    require(
        browser is not None and os.geteuid() == 0, "Debian's chromium (apt-get install chromium), as root"
    )
    root = ET.parse(svg).getroot()
    size = f"{int(float(root.attrib['width']))},{int(float(root.attrib['height']))}"
    done = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size}",
            svg.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    return _png_size_and_spread(png)
