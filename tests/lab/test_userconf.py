"""A student's own CNI config rendered per node (nppctl/lab/userconf.py), without Docker: templates with a
key of the student's own, the course's plain .conf filled per node, and every refusal as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nppctl.errors import NppctlError
from nppctl.lab import userconf
from nppctl.lab.userconf import NodeContext

POD_CIDR = "10.244.0.0/16"
NODES = ["np24u-control-plane", "np24u-worker", "np24u-worker2"]
COURSE_CONF = {"cniVersion": "0.3.1", "name": "nppnet", "type": "nppnet", "subnet_network": "10.244",
               "subnet_node": "1"}


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def contexts(mtu: int | None = 1400) -> list[NodeContext]:
    return userconf.sample_contexts(NODES, POD_CIDR, mtu=mtu)


def refusal(path: Path, ptype: str, ctxs: list[NodeContext] | None = None) -> str:
    """The one line render_nodes (or load) refuses PATH with."""
    with pytest.raises(NppctlError) as err:
        userconf.render_nodes(userconf.load(path), ctxs or contexts(), ptype)
    line = str(err.value)
    assert "\n" not in line, line
    return line


def test_the_context_splits_a_24_as_the_course_does():
    ctx = NodeContext.of("n1", 2, "10.244.2.0/24", pod_cidr=POD_CIDR)
    assert (ctx.subnet_network, ctx.subnet_node, ctx.gateway) == ("10.244", "2", "10.244.2.1")
    assert userconf.course_split("10.96.7.0/24") == ("10.96", "7")
    assert userconf.course_split("10.244.0.0/23") is None
    wide = NodeContext.of("n1", 1, "10.244.0.0/23", pod_cidr=POD_CIDR)
    assert wide.subnet_network is None and "subnet_network" not in wide.variables()
    assert set(ctx.variables()) == {"node", "node_index", "subnet", "gateway", "subnet_network",
                                    "subnet_node", "pod_cidr", "bridge", "mtu", "cni_version"}


def test_a_template_conflist_with_a_key_of_the_students_own_renders_per_node(tmp_path):
    template = """{
  "cniVersion": "{{ cni_version }}",
  "name": "labnet",
  "plugins": [
    {"type": "mynet", "myPodRange": "{{ subnet }}", "hostIndex": {{ node_index }},
     "where": "{{ node }}", "gw": "{{ gateway }}", "mtu": {{ mtu | tojson }}, "br": "{{ bridge }}",
     "cluster": "{{ pod_cidr }}"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"""
    conf = userconf.load(write(tmp_path, "05-mynet.conflist.j2", template))
    assert conf.name == "05-mynet.conflist" and conf.template and conf.notes == ()
    done = userconf.render_nodes(conf, contexts(), "mynet")
    assert list(done) == NODES
    worker2 = json.loads(done["np24u-worker2"].data)
    assert worker2["cniVersion"] == "0.3.1"  # a template's cni_version: the course's
    assert worker2["plugins"][0] == {"type": "mynet", "myPodRange": "10.244.2.0/24", "hostIndex": 2,
                                     "where": "np24u-worker2", "gw": "10.244.2.1", "mtu": 1400, "br": "cni0",
                                     "cluster": POD_CIDR}
    assert json.loads(done["np24u-control-plane"].data)["plugins"][0]["myPodRange"] == "10.244.0.0/24"
    assert done["np24u-worker"].types == ("mynet", "portmap") and done["np24u-worker"].name == conf.name
    no_mtu = userconf.render_nodes(conf, contexts(mtu=None), "mynet")
    assert json.loads(no_mtu["np24u-worker"].data)["plugins"][0]["mtu"] is None


def test_the_courses_plain_conf_gets_its_keys_filled_per_node_and_says_so(tmp_path):
    conf = userconf.load(write(tmp_path, "09-nppnet.conf", COURSE_CONF))
    assert conf.name == "09-nppnet.conf" and not conf.template
    done = userconf.render_nodes(conf, contexts(), "nppnet")
    got = {node: json.loads(r.data) for node, r in done.items()}
    assert [g["subnet_node"] for g in got.values()] == ["0", "1", "2"]
    assert {g["subnet_network"] for g in got.values()} == {"10.244"}
    assert got["np24u-worker"] == dict(COURSE_CONF, subnet_node="1")  # nothing else touched
    (note,) = done["np24u-worker"].notes
    assert "filled per node" in note and "09-nppnet.conf" in note, note


def test_a_plain_conflist_gets_the_keys_in_its_plugin_entry(tmp_path):
    plain = {"cniVersion": "1.0.0", "name": "n", "plugins": [dict(COURSE_CONF, type="mine", subnet_node="9"),
                                                             {"type": "portmap"}]}
    conf = userconf.load(write(tmp_path, "08-mine.conflist", plain))
    assert conf.cni_version == "1.0.0"  # a plain file's own
    got = json.loads(userconf.render_nodes(conf, contexts(), "mine")["np24u-worker2"].data)
    assert got["plugins"][0]["subnet_node"] == "2" and got["plugins"][1] == {"type": "portmap"}


def test_a_plain_file_without_per_node_keys_is_the_same_everywhere_and_a_note_says_so(tmp_path):
    text = '{"cniVersion": "0.4.0", "name": "n", "type": "mine", "subnet": "10.244.1.0/24"}\n'
    conf = userconf.load(write(tmp_path, "09-mine.json", text))
    done = userconf.render_nodes(conf, contexts(), "mine")
    assert {r.data for r in done.values()} == {text.encode()}  # the file's own bytes
    assert any("every node gets the same file" in n for n in conf.notes), conf.notes


def test_a_name_sorting_after_kindnets_gets_a_note(tmp_path):
    late = userconf.load(write(tmp_path, "20-mine.conf", dict(COURSE_CONF, type="mine")),
                         rivals=("10-kindnet.conflist",))
    assert any("sorts after 10-kindnet.conflist" in n and "09-mine.conf" in n for n in late.notes), late.notes
    early = userconf.load(write(tmp_path, "09-mine.conf", dict(COURSE_CONF, type="mine")),
                          rivals=("10-kindnet.conflist",))
    assert not any("sorts after" in n for n in early.notes), early.notes


def test_a_node_subnet_that_is_no_24_is_refused_naming_the_node(tmp_path):
    ctxs = contexts()
    ctxs[2] = NodeContext.of(NODES[2], 2, "10.244.4.0/23", pod_cidr=POD_CIDR)
    line = refusal(write(tmp_path, "09-nppnet.conf", COURSE_CONF), "nppnet", ctxs)
    assert "node np24u-worker2" in line and "10.244.4.0/23 is not a /24" in line and "/24" in line, line
    used = write(tmp_path, "09-t.conf.j2", '{"cniVersion": "0.3.1", "name": "n", "type": "t", '
                 '"net": "{{ subnet_network }}"}')
    line = refusal(used, "t", ctxs)
    assert "node np24u-worker2" in line and "is not a /24" in line, line
    unused = write(tmp_path, "09-u.conf.j2", '{"cniVersion": "0.3.1", "name": "n", "type": "u", '
                   '"range": "{{ subnet }}"}')
    assert json.loads(userconf.render_nodes(userconf.load(unused), ctxs, "u")[NODES[2]].data)["range"] == (
        "10.244.4.0/23")


def test_a_misspelt_variable_is_one_line_naming_it_and_its_line(tmp_path):
    path = write(tmp_path, "09-t.conf.j2", '{"cniVersion": "0.3.1", "name": "n", "type": "t",\n'
                 ' "node": "{{ subnet_nod }}"}')
    line = refusal(path, "t")
    assert "'subnet_nod' is undefined" in line and "(line 2)" in line and "subnet_node" in line, line
    assert "node np24u-control-plane" in line, line


def test_jinja_syntax_is_refused_at_load(tmp_path):
    with pytest.raises(NppctlError, match=r"line 1\): Jinja2 syntax"):
        userconf.load(write(tmp_path, "09-t.conf.j2", '{"name": "{{ node }"}'))


@pytest.mark.parametrize("conf, says", [
    ({"name": "n", "type": "t"}, 'no "cniVersion"'),
    ({"cniVersion": "0.3.1", "type": "t"}, 'no "name"'),
    ({"cniVersion": "", "name": "n", "type": "t"}, 'no "cniVersion"'),
    ({"cniVersion": "0.3.1", "name": "n", "type": "nppnet"}, "has type 'nppnet', not 't'"),
    ({"cniVersion": "0.3.1", "name": "n", "plugins": [{"type": "t"}]}, "name it .conflist"),
])
def test_a_conf_lacking_what_a_runtime_needs_is_refused(tmp_path, conf, says):
    line = refusal(write(tmp_path, "09-t.conf", conf), "t")
    assert says in line and "node np24u-control-plane" in line, line


def test_a_template_rendering_no_json_is_refused(tmp_path):
    line = refusal(write(tmp_path, "09-t.conf.j2", '{"cniVersion": "0.3.1", "name": {{ node }}}'), "t")
    assert "not JSON" in line and "node np24u-control-plane" in line, line
    line = refusal(write(tmp_path, "09-l.conf.j2", '["{{ node }}"]'), "t")
    assert "no JSON object" in line, line


def test_a_conflist_must_chain_the_plugin(tmp_path):
    chain = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}
    line = refusal(write(tmp_path, "09-c.conflist", chain), "mine")
    assert "chains bridge, portmap, not 'mine'" in line, line
    ok = dict(chain, plugins=[{"type": "bridge"}, {"type": "mine"}])
    assert userconf.render_nodes(userconf.load(write(tmp_path, "09-c.conflist", ok)), contexts(), "mine")[
        NODES[0]].types == ("bridge", "mine")
    line = refusal(write(tmp_path, "09-e.conflist", {"cniVersion": "1.0.0", "name": "n"}), "mine")
    assert 'lists its plugins in "plugins"' in line, line


@pytest.mark.parametrize("name", ["nppnet.yaml", "-09.conf", "09 x.conf", "09-x.conf.jinja", ".conf.j2",
                                  "09-x.j2"])
def test_a_name_no_runtime_reads_is_refused(tmp_path, name):
    with pytest.raises(NppctlError, match="rename it") as err:
        userconf.load(write(tmp_path, name, COURSE_CONF))
    assert name in str(err.value)


def test_the_installed_name_drops_only_j2():
    assert userconf.installed_name(Path("a/09-nppnet.conf.j2")) == "09-nppnet.conf"
    assert userconf.installed_name(Path("09-x.conflist")) == "09-x.conflist"
    assert userconf.installed_name(Path("09-x.json.j2")) == "09-x.json"


def test_a_missing_or_non_json_plain_file_is_one_line(tmp_path):
    with pytest.raises(NppctlError, match="no such file"):
        userconf.load(tmp_path / "09-gone.conf")
    with pytest.raises(NppctlError, match=r"is not JSON .*name it 09-bad.conf.j2"):
        userconf.load(write(tmp_path, "09-bad.conf", '{"name": "{{ node }}"'))


def test_install_refuses_conf_with_a_builtin_plugin_and_up_checks_the_conf(tmp_path):
    from nppctl.lab import install

    path = write(tmp_path, "09-nppnet.conf", COURSE_CONF)
    with pytest.raises(NppctlError, match="--conf is for your own plugin"):
        install.resolve_conf(path, install.resolve_plugin("nppnet"))
    assert install.resolve_conf(None, install.resolve_plugin("nppnet")) is None
    with pytest.raises(NppctlError, match="--conf is for your own plugin"):
        install.check_conf(path, install.resolve_plugin("skel"), POD_CIDR, NODES)
