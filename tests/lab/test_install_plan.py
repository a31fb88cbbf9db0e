"""install's plan, decided from the nodes' probes alone (lab/installplan.py): no Docker, no node.

A probe is written here as the node agent answers it: each asked file's sha256 and mode (None when
missing), the node's eth0 MTU, its init, whether its keeper runs, and its record of the last install."""

from __future__ import annotations

import hashlib
import json

import pytest

from nppctl.access import agent
from nppctl.access.nodes import Node
from nppctl.access.recorder import REAL_DIR
from nppctl.errors import NppctlError
from nppctl.lab import userconf
from nppctl.lab.installplan import (
    KEEPER_PROGRAM,
    KEEPER_UNIT,
    KEEPER_UNIT_TEXT,
    KINDNET_PATH,
    InstallJob,
    PluginFiles,
    beside,
    plan_install,
)

POD_CIDR = "10.244.0.0/16"
CP, W1, W2 = "np27-control-plane", "np27-worker", "np27-worker2"
NODES = [Node(CP, "control-plane", "np27", "172.18.0.2", None),
         Node(W1, "worker", "np27", "172.18.0.3", None),
         Node(W2, "worker", "np27", "172.18.0.4", None)]
EVERYONE = [n.name for n in NODES]
EXE = b"#!/usr/bin/python3\nprint('nppnet')\n"
CONFLIST = "/etc/cni/net.d/09-nppnet.conflist"
PORTMAP = "/opt/cni/bin/portmap"


def job(**changed) -> InstallJob:
    asked = dict(cluster="np27", pf=PluginFiles("nppnet", True, lambda: EXE), uc=None, pod_cidr=POD_CIDR,
                 recording=False, chained={"portmap": PORTMAP})
    return InstallJob(**(asked | changed))


def entry(data: bytes, mode: int) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "mode": mode}


def probe(files: dict | None = None, *, init: str = "systemd", keeper: bool = False, state=None) -> dict:
    """A fresh node: nothing of ours, portmap there (as kind's node image has it)."""
    return {"files": {PORTMAP: entry(b"portmap", 0o755), **(files or {})}, "mtu": 1500, "init": init,
            "keeper": keeper, "state": state}


def fresh() -> dict:
    return {name: probe() for name in EVERYONE}


def test_a_fresh_node_gets_every_file_beside_its_place_and_a_setup_that_renames_them():
    plan = plan_install(job(), NODES, EVERYONE, fresh())
    assert plan.headline == "Installing nppnet on 3 node(s): files, routes (nppnet makes cni0), keeper"
    mine = plan.nodes[W1]
    assert (mine.subnet, mine.source, mine.error, mine.target) == ("10.244.1.0/24", "split", None, True)
    assert list(mine.write) == ["/opt/cni/bin/nppnet", CONFLIST, KEEPER_PROGRAM, KEEPER_UNIT]
    assert mine.write["/opt/cni/bin/nppnet"] == (EXE, 0o755)
    assert mine.write[KEEPER_PROGRAM] == (agent.script(), 0o755)
    assert mine.write[KEEPER_UNIT] == (KEEPER_UNIT_TEXT, 0o644)
    assert list(mine.put) == [beside(path) for path in mine.write]
    assert mine.setup["rename"] == [[beside(path), path] for path in mine.write]
    conflist = json.loads(mine.write[CONFLIST][0])
    assert conflist["plugins"][0]["type"] == "nppnet" and conflist["plugins"][1]["type"] == "portmap"
    assert mine.setup["routes"] == [{"dst": "10.244.0.0/24", "via": "172.18.0.2", "peer": CP},
                                    {"dst": "10.244.2.0/24", "via": "172.18.0.4", "peer": W2}]
    assert mine.setup["prune"] == {"within": POD_CIDR, "via": ["172.18.0.2", "172.18.0.3", "172.18.0.4"]}
    assert (mine.setup["make_bridge"], mine.setup["masquerade"]) == (False, False)  # nppnet makes them
    assert mine.setup["gateway_cidr"] == "10.244.1.1/24" and mine.setup["version_of"] == "/opt/cni/bin/nppnet"
    assert mine.setup["remove"] == ["/etc/cni/net.d/09-nppnet-skel.conflist", f"{REAL_DIR}/nppnet"]
    assert mine.setup["state"]["bridge_by"] == "plugin" and mine.setup["state"]["recorded"] is False
    assert mine.keeper == "start" and mine.warnings == [] and mine.notes == []


def test_a_node_already_installed_is_left_as_it_is():
    first = plan_install(job(), NODES, EVERYONE, fresh())
    probes = {}
    for name, mine in first.nodes.items():
        files = {path: entry(data, mode) for path, (data, mode) in mine.write.items()}
        probes[name] = probe(files, keeper=True, state=mine.setup["state"])
    again = plan_install(job(), NODES, EVERYONE, probes)
    assert all(mine.write == {} and mine.keeper is None for mine in again.nodes.values())
    assert [mine.subnet for mine in again.nodes.values()] == ["10.244.0.0/24", "10.244.1.0/24",
                                                              "10.244.2.0/24"]


def test_the_keeper_is_restarted_for_a_new_unit_and_exec_started_without_systemd():
    probes = fresh() | {W1: probe(keeper=True), W2: probe(init="other")}
    plan = plan_install(job(), NODES, EVERYONE, probes)
    assert plan.nodes[W1].keeper == "restart"
    assert plan.nodes[W2].keeper == "exec" and KEEPER_UNIT not in plan.nodes[W2].write


def test_nodes_not_installed_now_get_routes_only_and_failed_or_skipped_nodes_nothing():
    probes = fresh() | {W1: NppctlError("node np27-worker is exited: start it"), W2: None}
    plan = plan_install(job(), NODES, [CP, W1], probes)
    assert plan.headline.startswith("Installing nppnet on 2 node(s)")
    assert plan.nodes[W1].error == "node np27-worker is exited: start it" and plan.nodes[W1].write == {}
    assert W2 not in plan.nodes  # skipped: stopped, or no agent there
    routes_only = plan_install(job(), NODES, [W1], fresh()).nodes[CP]
    assert routes_only.target is False and routes_only.write == {}
    assert set(routes_only.setup) == {"routes", "prune"}


def test_a_recorded_subnet_stays_with_a_node_not_installed_now():
    probes = fresh() | {CP: probe(state={"subnet": "10.244.7.0/24"})}
    plan = plan_install(job(), NODES, [W1], probes)
    assert (plan.nodes[CP].subnet, plan.nodes[CP].source) == ("10.244.7.0/24", "installed")
    assert {"dst": "10.244.7.0/24", "via": "172.18.0.2", "peer": CP} in plan.nodes[W1].setup["routes"]


def test_active_kindnet_refuses_unless_kept_on_purpose():
    probes = fresh() | {W1: probe({KINDNET_PATH: entry(b"kindnet", 0o644)})}
    with pytest.raises(NppctlError, match=f"kindnet .* is active on {W1}.*--keep-kindnet"):
        plan_install(job(), NODES, EVERYONE, probes)
    plan = plan_install(job(keep_kindnet=True), NODES, EVERYONE, probes)
    assert "kept on purpose with --keep-kindnet" in plan.kindnet_warning
    skeleton = PluginFiles("nppnet-skel", True, lambda: EXE)
    assert plan_install(job(pf=skeleton, chained={}), NODES, EVERYONE, probes).kindnet_warning is None


def test_a_chained_plugin_comes_from_the_host_or_is_warned_about():
    probes = fresh() | {W1: probe() | {"files": {}}}
    plan = plan_install(job(), NODES, EVERYONE, probes, {"portmap": b"host portmap"})
    assert plan.nodes[W1].write[PORTMAP] == (b"host portmap", 0o755)
    assert PORTMAP not in plan.nodes[CP].write
    bare = plan_install(job(), NODES, EVERYONE, probes).nodes[W1]
    assert PORTMAP not in bare.write
    assert bare.warnings == ["the conflist chains portmap, missing in the node and on this host: ADD fails"]
    assert job().lacking(probes, EVERYONE) == ["portmap"] and job().lacking(fresh(), EVERYONE) == []


def test_a_recorded_conflist_is_removed_only_when_it_is_a_file_name():
    probes = fresh() | {W1: probe(state={"conflist": "10-old.conflist"}),
                        W2: probe(state={"conflist": "../../etc/passwd"})}
    plan = plan_install(job(), NODES, EVERYONE, probes)
    assert "/etc/cni/net.d/10-old.conflist" in plan.nodes[W1].setup["remove"]
    assert not any("passwd" in path for path in plan.nodes[W2].setup["remove"])
    assert plan.nodes[W2].warnings == [
        "ignored the conflist name '../../etc/passwd' in the node's record (not a file name)"]


def test_a_users_plugin_behind_the_recorder_with_its_own_conf(tmp_path):
    conf = tmp_path / "mine.conflist.j2"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "mine", "plugins": [
        {"type": "mine", "subnet": "{{ subnet }}", "bridge": "{{ bridge }}"}]}))
    uc = userconf.load(conf, rivals=("10-kindnet.conflist",))
    mine_pf = PluginFiles("mine", False, lambda: b"\x7fELF mine")
    plan = plan_install(job(pf=mine_pf, uc=uc, recording=True, chained={}), NODES, EVERYONE, fresh())
    assert plan.headline == ("Installing mine with your mine.conflist on 3 node(s): files, cni0, routes, "
                             "masquerade, keeper")
    node = plan.nodes[W2]
    conf_path = "/etc/cni/net.d/mine.conflist"
    assert list(node.write)[:3] == [f"{REAL_DIR}/mine", "/opt/cni/bin/mine", conf_path]
    assert json.loads(node.write[conf_path][0])["plugins"][0]["subnet"] == "10.244.2.0/24"
    assert (node.setup["make_bridge"], node.setup["masquerade"]) == (True, True)
    assert node.setup["version_of"] == f"{REAL_DIR}/mine"
    assert CONFLIST in node.setup["remove"] and f"{REAL_DIR}/mine" not in node.setup["remove"]
    assert node.setup["state"] | {"plugin_sha256": None} == {
        "plugin": "mine", "builtin": False, "plugin_sha256": None, "conflist": "mine.conflist",
        "conf_source": "mine.conflist.j2", "subnet": "10.244.2.0/24", "bridge_by": "node", "recorded": True}


def test_overlapping_subnets_refuse_before_any_node_is_planned():
    with pytest.raises(NppctlError, match="--subnet names one node's subnet"):
        plan_install(job(subnet="10.244.9.0/24"), NODES, EVERYONE, fresh())
    with pytest.raises(NppctlError, match="pod subnets overlap"):
        plan_install(job(subnet="10.244.0.0/24"), NODES, [W1], fresh())
