"""A student's own plugin with its own config on a real 3-node lab (docker provider): `up --plugin PATH
--conf 09-<type>.conf`, the course's plain .conf filled per node, status saying whose plugin it is,
a second install changing nothing, a Jinja2 conflist, and nppnet back (the user's conf removed).

Tests run in file order on one module-scoped lab (np24a), made by `nppctl up --provider docker`.
"""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from nppctl.access.nodes import get_node, node_exec
from tests.nodes.np3 import nppctl

CLUSTER = "np24a"
PLUGIN = "np24course"
NODES = [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"]
COURSE_CONF = {"cniVersion": "0.3.1", "name": "nppnet", "type": PLUGIN, "subnet_network": "10.244",
               "subnet_node": "1"}
# The course's style (bash + jq): the address is <subnet_network>.<subnet_node>.<counter> on cni0,
# which the install made; a 0.3.1 result; DEL does nothing.
PLUGIN_TEXT = r"""#!/bin/bash
set -u
conf=$(cat)
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"0.3.1","supportedVersions":["0.3.0","0.3.1"]}'; exit 0 ;;
DEL|CHECK) exit 0 ;;
ADD) ;;
*) echo '{"cniVersion":"0.3.1","code":4,"msg":"unknown command"}'; exit 1 ;;
esac
net=$(jq -r .subnet_network <<<"$conf"); node=$(jq -r .subnet_node <<<"$conf")
count=/var/lib/np24course.count; n=$(( $(cat "$count" 2>/dev/null || echo 1) + 1 )); echo "$n" >"$count"
ns=$(basename "$CNI_NETNS"); host="veth${CNI_CONTAINERID:0:8}"
ip link add "$host" type veth peer name "$CNI_IFNAME" netns "$ns"
ip link set "$host" master cni0 up
ip -n "$ns" addr add "$net.$node.$n/24" dev "$CNI_IFNAME"
ip -n "$ns" link set "$CNI_IFNAME" up
ip -n "$ns" route add default via "$net.$node.1"
printf '{"cniVersion":"0.3.1","ips":[{"version":"4","address":"%s/24","gateway":"%s"}]}\n' \
  "$net.$node.$n" "$net.$node.1"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("np24a")
    plugin = folder / PLUGIN
    plugin.write_text(PLUGIN_TEXT)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    conf = folder / f"09-{PLUGIN}.conf"
    conf.write_text(json.dumps(COURSE_CONF, indent=2) + "\n")
    return {"plugin": plugin, "conf": conf, "folder": folder,
            "sha256": hashlib.sha256(PLUGIN_TEXT.encode()).hexdigest()}


@pytest.fixture(scope="module")
def lab(request, docker_client, python_node_image, files, tmp_path_factory) -> str:
    state = str(tmp_path_factory.mktemp("np24a-state"))

    def down():
        nppctl("down", "--name", CLUSTER, "--purge", NPPCTL_STATE_DIR=state)

    down()  # an interrupted run's leftovers
    request.addfinalizer(down)
    done = nppctl("up", "--provider", "docker", "--workers", "2", "--no-mounts", "--no-ensure-python",
                  "--name", CLUSTER, "--image", python_node_image, "--plugin", str(files["plugin"]),
                  "--conf", str(files["conf"]), timeout=600, NPPCTL_STATE_DIR=state)
    assert done.returncode == 0, done.stdout + done.stderr
    request.module.UP_OUTPUT = done.stdout
    return CLUSTER


def test_up_refuses_a_broken_conf_before_making_anything(docker_client, files, tmp_path):
    typo = files["folder"] / f"09-{PLUGIN}.conf.j2"
    typo.write_text(json.dumps(dict(COURSE_CONF, subnet_node="{{ subnet_nod }}")))
    name = "np24ax"
    done = nppctl("up", "--provider", "docker", "--workers", "1", "--no-mounts", "--name", name, "--plugin",
                  str(files["plugin"]), "--conf", str(typo), NPPCTL_STATE_DIR=str(tmp_path / "state"))
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "'subnet_nod' is undefined" in line and f"node {name}-control-plane" in line, line
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def in_node(node: str, *argv: str) -> str:
    code, out = node_exec(get_node(CLUSTER, node), list(argv))
    assert code == 0, (argv, out)
    return out


def install_with(files: dict, conf) -> object:
    """`nppctl install --all` of the test's plugin with --conf CONF."""
    return nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(files["plugin"]),
                  "--conf", str(conf))


def status_json() -> list[dict]:
    done = nppctl("status", "--name", CLUSTER, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_up_installs_the_course_conf_filled_per_node(lab, files):
    assert "filled per node" in UP_OUTPUT, UP_OUTPUT  # noqa: F821 - set by the lab fixture
    for node, index in (("worker", "1"), ("worker2", "2")):
        assert in_node(node, "ls", "/etc/cni/net.d").split() == [f"09-{PLUGIN}.conf"]
        conf = json.loads(in_node(node, "cat", f"/etc/cni/net.d/09-{PLUGIN}.conf"))
        assert conf == dict(COURSE_CONF, subnet_node=index), conf
        cni0 = in_node(node, "ip", "-4", "-o", "addr", "show", "dev", "cni0")
        assert f"10.244.{index}.1/24" in cni0, cni0  # made by the node, as the course's install script does


def test_status_says_it_is_your_file_with_its_digest(lab, files):
    rows = status_json()
    assert [r["node"] for r in rows] == NODES
    for at, r in enumerate(rows):
        assert r["plugin"] == PLUGIN and r["plugin_origin"] == "user", r
        assert r["plugin_sha256"] == files["sha256"] and r["conf_source"] == f"09-{PLUGIN}.conf", r
        assert r["conflist"] == f"09-{PLUGIN}.conf" and r["bridge_by"] == "node", r
        assert r["subnet"] == f"10.244.{at}.0/24", r  # the course's conf has none: the install's record
        assert r["ok"], r
    table = nppctl("status", "--name", CLUSTER)
    assert table.returncode == 0, table.stderr
    said = " ".join(table.stdout.split())
    assert (f"plugin {PLUGIN}: your file {PLUGIN} (sha256 {files['sha256'][:12]}) with your conf "
            f"09-{PLUGIN}.conf; cni0 made by nppctl; its calls recorded (nppctl calls), on every "
            "node") in said, table.stdout


def test_status_digests_the_real_plugin_behind_the_recorder(lab, files):
    """A user's plugin is recorded by default: /opt/cni/bin/<type> is nppctl's recorder, the plugin itself
    is .nppctl-real/<type>, and status digests (and asks VERSION of) the plugin, not the recorder."""
    real = f"/opt/cni/bin/.nppctl-real/{PLUGIN}"
    assert in_node("worker2", "sha256sum", real).split()[0] == files["sha256"]
    front = in_node("worker2", "sha256sum", f"/opt/cni/bin/{PLUGIN}").split()[0]
    assert front != files["sha256"] and "nppctl's CNI call recorder" in in_node(
        "worker2", "head", "-n", "2", f"/opt/cni/bin/{PLUGIN}")
    rows = status_json()
    assert {r["plugin_sha256"] for r in rows} == {files["sha256"]}
    assert all(r["recorded"] for r in rows), rows


def test_the_proof_of_up_is_on_record_and_no_record_takes_the_recorder_away(lab, files):
    done = nppctl("calls", "--name", CLUSTER, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    proof = [c for c in json.loads(done.stdout) if c["containerid"] == "nppctl-proof"]
    for node in (f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"):
        mine = [c["command"] for c in proof if c["node"] == node]
        assert mine[:2] == ["ADD", "DEL"], (node, mine)  # 0.3.1: no CHECK; the proof's ADD then DEL
    add = next(c for c in proof if c["command"] == "ADD" and c["node"] == f"{CLUSTER}-worker2")
    assert json.loads(add["stdin"])["subnet_node"] == "2" and add["exit"] == 0, add
    assert json.loads(add["stdout"])["ips"][0]["address"].startswith("10.244.2."), add
    off = nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(files["plugin"]), "--conf",
                 str(files["conf"]), "--no-record")
    assert off.returncode == 0, off.stdout + off.stderr
    assert in_node("worker", "sha256sum", f"/opt/cni/bin/{PLUGIN}").split()[0] == files["sha256"]
    real = f"/opt/cni/bin/.nppctl-real/{PLUGIN}"
    assert node_exec(get_node(CLUSTER, "worker"), ["test", "-e", real], check=False)[0] == 1
    assert not any(r["recorded"] for r in status_json())
    on = nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(files["plugin"]), "--conf",
                str(files["conf"]))
    assert on.returncode == 0, on.stdout + on.stderr
    assert all(r["recorded"] for r in status_json())


def test_a_pod_gets_its_address_from_the_filled_keys(lab):
    done = nppctl("cni", "add", "--name", CLUSTER, "--node", "worker2", "c1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ips"][0]["address"].startswith("10.244.2."), done.stdout


def test_a_second_install_changes_nothing(lab, files):
    done = install_with(files, files["conf"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("unchanged") == 3 and "done" not in done.stdout, done.stdout
    assert "filled per node" in done.stdout, done.stdout


def test_a_broken_conf_is_refused_before_any_node_changes(lab, files):
    before = in_node("worker", "cat", f"/etc/cni/net.d/09-{PLUGIN}.conf")
    wrong = files["folder"] / "08-wrong.conf"
    wrong.write_text(json.dumps(dict(COURSE_CONF, type="nppnet")))
    done = install_with(files, wrong)
    assert done.returncode == 1 and f"has type 'nppnet', not '{PLUGIN}'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert in_node("worker", "ls", "/etc/cni/net.d").split() == [f"09-{PLUGIN}.conf"]
    assert in_node("worker", "cat", f"/etc/cni/net.d/09-{PLUGIN}.conf") == before
    builtin = nppctl("install", "--name", CLUSTER, "--all", "--conf", str(files["conf"]))
    assert builtin.returncode == 1 and "--conf is for your own plugin" in builtin.stderr, builtin.stderr


def test_a_template_conflist_replaces_the_conf(lab, files):
    template = files["folder"] / f"07-{PLUGIN}.conflist.j2"
    template.write_text(json.dumps({
        "cniVersion": "{{ cni_version }}", "name": "np24", "plugins": [
            {"type": PLUGIN, "subnet_network": "{{ subnet_network }}", "subnet_node": "{{ subnet_node }}",
             "myHost": "{{ node }}#{{ node_index }}"}]}))
    done = install_with(files, template)
    assert done.returncode == 0, done.stdout + done.stderr
    # the .conf removed: the record named it
    assert in_node("worker2", "ls", "/etc/cni/net.d").split() == [f"07-{PLUGIN}.conflist"]
    conf = json.loads(in_node("worker2", "cat", f"/etc/cni/net.d/07-{PLUGIN}.conflist"))
    assert conf["plugins"][0]["myHost"] == f"{CLUSTER}-worker2#2" and conf["plugins"][0]["subnet_node"] == "2"
    assert {r["conf_source"] for r in status_json()} == {template.name}


def test_nppnet_back_removes_the_users_conf(lab):
    done = nppctl("install", "--name", CLUSTER, "--all", "--plugin", "nppnet")
    assert done.returncode == 0, done.stdout + done.stderr
    for node in ("worker", "worker2"):
        assert in_node(node, "ls", "/etc/cni/net.d").split() == ["09-nppnet.conflist"]
    rows = status_json()
    whose = {(r["plugin_origin"], r["conf_source"], r["bridge_by"]) for r in rows}
    assert whose == {("built-in", None, "plugin")}, rows
    assert all(r["ok"] for r in rows), rows
