"""The course's flow with a student's own plugin, on real kind, through the CLI as a student runs it
(issue 24's "Done when"): the plugin is tests/kind/plugins/nppnet, a bash script in the course's style
(jq, a counter file, a veth pair on cni0, a 0.3.1 result, DEL doing nothing), its skeleton
tests/kind/plugins/nppnet-skel (logs, prints nothing), and the course's plain .conf files in
tests/kind/confs/, filled per node by nppctl; then a Jinja conf with a key of the student's own.

Kindless flow (nppctl's keeper routes the nodes). The tests run in file order on one cluster (np24c):
`up` with the skeleton, the skeleton's pod stuck in ContainerCreating and its calls on record (one
replayed), `install` of the real plugin, forexec1/forexec3 pinging across nodes, `status`, `check`
(failing exactly where the fixture's known faults say), `logs`, `calls`, the .j2 conf, `down`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from pathlib import Path

from nppctl.resources import resource_dir

CLUSTER = "np24c"
CONTROL = f"{CLUSTER}-control-plane"
WORKERS = (f"{CLUSTER}-worker", f"{CLUSTER}-worker2")
HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "plugins" / "nppnet"
SKEL = HERE / "plugins" / "nppnet-skel"
CONF = HERE / "confs" / "09-nppnet.conf"
SKEL_CONF = HERE / "confs" / "09-nppnet-skel.conf"
TEMPLATE = HERE / "confs" / "09-nppnet.conf.j2"
PODS = resource_dir("pod-configs")
CONFIG = resource_dir("cluster-configs") / "1master2workerMount.yaml"
LOG = "/var/log/nppnet.log"
# `nppctl check`'s rows that fail with the fixture, each for one of its known faults (listed in its header)
KNOWN_CHECK_FAULTS = {
    "service hairpin": "F5: the fixture sets no hairpin mode on the veth's host end, so a pod cannot "
                       "reach itself through a Service",
}


def split(cidr: str) -> tuple[str, str]:
    """The course's split of a node's /24: 10.244.1.0/24 -> ("10.244", "1")."""
    a, b, c, _ = str(ipaddress.ip_network(cidr).network_address).split(".")
    return f"{a}.{b}", c


def pod_cidrs(lab) -> dict[str, str]:
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in lab.json("get", "nodes")["items"]}


def ready(lab, node: str) -> bool:
    item = lab.json("get", "node", node)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"]["conditions"])


def node_conf(lab, node: str) -> tuple[str, dict]:
    """The first file in the node's /etc/cni/net.d (what containerd uses) and its JSON."""
    first = sorted(lab.node_exec(node, "ls", "/etc/cni/net.d").stdout.split())[0]
    return first, json.loads(lab.node_exec(node, "cat", f"/etc/cni/net.d/{first}").stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calls(lab, *args: str) -> list[dict]:
    return json.loads(lab.nppctl("calls", "--name", CLUSTER, *args, "--json").stdout)


def pod_name(call: dict) -> str:
    return dict(p.partition("=")[::2] for p in call["args"].split(";") if p).get("K8S_POD_NAME", "")


def pod_ip(lab, pod: str) -> str:
    return lab.wait(f"pod {pod} running", lambda: (lab.running(pod) or {}).get("status", {}).get("podIP"),
                    timeout=240)


def test_up_with_the_students_skeleton_and_its_conf(kind_lab):
    lab = kind_lab
    done = lab.nppctl("up", "--name", CLUSTER, "--config", str(CONFIG), "--plugin", str(SKEL),
                      "--conf", str(SKEL_CONF), "--image", lab.world["NODE_IMAGE"],
                      "--registry-mirror", lab.world["REGISTRY"], "--timeout", "400", ok=False)
    lab.attach_registry()
    # everything is made and Ready, but the skeleton's ADD gives containerd no result: up's proof says so,
    # naming every node and the runtime's words, and exits 1 (a student's skeleton is proved like any plugin)
    last = done.stderr.strip().splitlines()[-1]
    assert "the plugin is installed but does not work on 3 of 3 node(s)" in last, done.stderr
    assert f"{WORKERS[0]}: ADD failed: plugin nppnet-skel ADD printed no result" in last, last
    assert "Traceback" not in done.stderr
    assert {p.name for p in (lab.cwd / "tmp").iterdir()} == {"cp", "w1", "w2"}, done.stdout
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in lab.json("get", "nodes")["items"]}
    assert labels[WORKERS[0]].get("node") == "node1" and labels[WORKERS[1]].get("node") == "node2", labels
    cidrs = pod_cidrs(lab)
    assert set(cidrs) == {CONTROL, *WORKERS}
    for node, cidr in cidrs.items():
        # the student's file, under its own name, with the course's keys filled from the node's podCIDR
        name, conf = node_conf(lab, node)
        assert name == SKEL_CONF.name, (node, name)
        network, subnet_node = split(cidr)
        assert (conf["subnet_network"], conf["subnet_node"]) == (network, subnet_node), (node, cidr, conf)
        assert conf["type"] == "nppnet-skel" and conf["cniVersion"] == "0.3.1", conf
        # the student's executable is in the node as it is (behind the recorder when recording)
        sums = lab.node_exec(node, "sh", "-c", "sha256sum /opt/cni/bin/nppnet-skel "
                             "/opt/cni/bin/.nppctl-real/nppnet-skel 2>/dev/null", ok=None).stdout
        assert digest(SKEL) in sums, (node, sums)
        assert ready(lab, node), node
    assert "09-nppnet-skel.conf" in done.stdout, done.stdout


def test_the_skeleton_leaves_a_pod_creating_and_logs_what_containerd_passed(kind_lab):
    lab = kind_lab
    lab.kubectl("apply", "-f", str(PODS / "forexec1-node1.yaml"))
    events = lab.failed_sandboxes("forexec1")
    assert 'plugin type="nppnet-skel"' in events[0]["message"], events[0]["message"]
    pod = lab.waiting("forexec1")
    assert pod["spec"]["nodeName"] == WORKERS[0]
    waiting = pod["status"]["containerStatuses"][0]["state"].get("waiting", {})
    assert waiting.get("reason") == "ContainerCreating", pod["status"]
    # the skeleton's log in node1, as the course reads it with `cat /var/log/nppnet.log`
    log = lab.node_exec(WORKERS[0], "cat", LOG).stdout
    entries = log.split("nppnet-skel called:")
    adds = [e for e in entries if "CNI_COMMAND=ADD" in e and "K8S_POD_NAME=forexec1" in e]
    assert adds, log
    assert re.search(r"CNI_NETNS=/var/run/netns/cni-[0-9a-f-]+", adds[-1]), adds[-1]
    assert "CNI_IFNAME=eth0" in adds[-1] and "CNI_PATH=/opt/cni/bin" in adds[-1], adds[-1]
    assert re.search(r"CNI_CONTAINERID=[0-9a-f]{64}", adds[-1]), adds[-1]
    stdin = json.loads(re.search(r"^  stdin=(.*)$", adds[-1], re.M).group(1))  # the config, one line
    assert (stdin["subnet_network"], stdin["subnet_node"]) == split(pod_cidrs(lab)[WORKERS[0]]), stdin
    shown = lab.nppctl("logs", "--name", CLUSTER, "--node", "worker").stdout
    assert "CNI_COMMAND=ADD" in shown and "K8S_POD_NAME=forexec1" in shown, shown
    # status names the stuck pod, the failing call and containerd's words for the empty result
    status = lab.nppctl("status", "--name", CLUSTER).stdout
    stuck = [ln for ln in status.splitlines() if ln.startswith(f"pod default/forexec1 on {WORKERS[0]}")]
    assert stuck and "ADD by nppnet-skel failed" in stuck[0], status
    assert "unexpected end of JSON input" in stuck[0], stuck[0]


def test_calls_show_the_skeletons_add_as_containerd_made_it_and_a_replay_reproduces_it(kind_lab):
    lab = kind_lab
    cidr = pod_cidrs(lab)[WORKERS[0]]
    found = [c for c in calls(lab, "--node", "worker", "--pod", "forexec1") if c["command"] == "ADD"]
    assert found, "no ADD of forexec1 on record"
    add = found[0]
    assert add["type"] == "nppnet-skel" and add["caller"] == "containerd", add
    assert pod_name(add) == "forexec1" and "K8S_POD_NAMESPACE=default" in add["args"], add["args"]
    assert add["exit"] == 0 and add["stdout"] == "", add  # exit 0 and no result: containerd fails the ADD
    assert any("must output a result" in v["requirement"] for v in add["verdicts"]), add["verdicts"]
    assert add["ifname"] == "eth0" and add["netns"].startswith("/var/run/netns/cni-"), add
    stdin = json.loads(add["stdin"])
    assert (stdin["subnet_network"], stdin["subnet_node"]) == split(cidr), stdin
    text = lab.nppctl("calls", "--name", CLUSTER, "--pod", "forexec1").stdout
    assert "forexec1" in text and "ADD" in text, text
    replayed = json.loads(lab.nppctl("calls", "--name", CLUSTER, "--replay", str(add["number"]),
                                     "--json").stdout)
    # the replay (a new netns, then DEL) answers as containerd's call did: exit 0 and no result
    assert replayed["same"] is True and replayed["command"] == "ADD", replayed
    assert replayed["exit"] == 0 and replayed["stdout"] == "" and replayed["left"] == [], replayed
    assert any("nothing on stdout" in v for v in replayed["verdicts"]), replayed["verdicts"]


def test_the_students_plugin_gives_pods_addresses_in_their_nodes_cidr_and_they_ping_across(kind_lab):
    lab = kind_lab
    lab.kubectl("delete", "pod", "forexec1", "--wait=true", timeout=180)
    done = lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(PLUGIN), "--conf", str(CONF))
    cidrs = pod_cidrs(lab)
    for node, cidr in cidrs.items():
        name, conf = node_conf(lab, node)
        assert name == CONF.name, (node, name, done.stdout)
        confs = lab.node_exec(node, "ls", "/etc/cni/net.d").stdout.split()
        assert SKEL_CONF.name not in confs, (node, confs)  # it would sort first and win
        assert (conf["subnet_network"], conf["subnet_node"]) == split(cidr), (node, conf)
        # cni0 made by nppctl with <subnet_network>.<subnet_node>.1/24, as the course's install script
        gateway = f"{'.'.join(split(cidr))}.1/24"
        assert gateway in lab.node_exec(node, "ip", "-4", "addr", "show", "cni0").stdout, node
    lab.kubectl("apply", "-f", str(PODS / "forexec1-node1.yaml"), "-f", str(PODS / "forexec3-node2.yaml"))
    ips = {p: pod_ip(lab, p) for p in ("forexec1", "forexec3")}
    for pod, node in (("forexec1", WORKERS[0]), ("forexec3", WORKERS[1])):
        assert lab.json("get", "pod", pod)["spec"]["nodeName"] == node
        cidr = ipaddress.ip_network(cidrs[node])
        assert ipaddress.ip_address(ips[pod]) in cidr, (pod, ips[pod], cidr)
        routes = lab.kubectl("exec", pod, "--", "ip", "-4", "route").stdout
        assert f"default via {next(cidr.hosts())} dev eth0" in routes, routes
    print(f"pod addresses: {ips}")
    there = lab.kubectl("exec", "forexec1", "--", "ping", "-c", "2", "-W", "5", ips["forexec3"])
    assert "2 packets received" in there.stdout, there.stdout


def test_status_names_the_students_file(kind_lab):
    lab = kind_lab
    rows = {r["node"]: r for r in json.loads(lab.nppctl("status", "--name", CLUSTER, "--json").stdout)}
    for node in (CONTROL, *WORKERS):
        row = rows[node]
        assert row["plugin_origin"] == "user" and row["conf_source"] == CONF.name, row
        assert row["plugin_sha256"] == digest(PLUGIN), (
            f"status gives {node}'s plugin digest {row['plugin_sha256']}, not the student's file's: {row}")
    text = lab.nppctl("status", "--name", CLUSTER).stdout
    assert "your file nppnet" in text and digest(PLUGIN)[:12] in text, text


def test_check_fails_exactly_where_the_fixture_has_known_faults(kind_lab):
    lab = kind_lab
    done = lab.nppctl("check", "--name", CLUSTER, "--json", ok=None, timeout=600)
    report = json.loads(done.stdout)
    failing = sorted({p["category"] for p in report["probes"] if not p["ok"]})
    details = [f"{p['src']} -> {p['dst']}: {p.get('detail')}" for p in report["probes"] if not p["ok"]]
    assert failing == sorted(KNOWN_CHECK_FAULTS), (
        f"nppctl check failed {failing}; expected only the fixture's known faults {KNOWN_CHECK_FAULTS} "
        f"(F1, the unlocked counter, can add duplicate addresses when two pods start at once): {details}")
    assert done.returncode == 1, "check must exit 1 when a row fails"


def test_logs_and_calls_show_the_plugins_adds(kind_lab):
    lab = kind_lab
    cidrs = pod_cidrs(lab)
    ips = {p: lab.json("get", "pod", p)["status"]["podIP"] for p in ("forexec1", "forexec3")}
    shown = lab.nppctl("logs", "--name", CLUSTER).stdout
    for pod, node in (("forexec1", WORKERS[0]), ("forexec3", WORKERS[1])):
        assert re.search(rf"nppnet ADD containerid=[0-9a-f]+ gave {re.escape(ips[pod])}/24", shown), shown
        adds = [c for c in calls(lab, "--node", node, "--pod", pod) if c["command"] == "ADD"]
        mine = [c for c in adds if c["type"] == "nppnet"]
        assert mine, f"no ADD of {pod} by the student's nppnet on record: {adds}"
        call = mine[-1]
        assert call["exit"] == 0 and call["caller"] == "containerd", call
        result = json.loads(call["stdout"])
        assert result["cniVersion"] == "0.3.1", result
        assert result["ips"][0]["address"] == f"{ips[pod]}/24", result
        stdin = json.loads(call["stdin"])
        assert (stdin["subnet_network"], stdin["subnet_node"]) == split(cidrs[node]), stdin
    # the skeleton's calls are on record beside them, failed by containerd for their empty result
    skel = [c for c in calls(lab, "--pod", "forexec1")
            if c["type"] == "nppnet-skel" and c["command"] == "ADD"]
    assert skel and all(c["stdout"] == "" for c in skel), skel


def test_a_jinja_conf_gives_the_plugin_the_students_own_key_per_node(kind_lab):
    lab = kind_lab
    lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(PLUGIN), "--conf", str(TEMPLATE))
    cidrs = pod_cidrs(lab)
    for node in (CONTROL, *WORKERS):
        name, conf = node_conf(lab, node)
        assert name == CONF.name, (node, name)  # 09-nppnet.conf.j2 is installed as 09-nppnet.conf
        assert conf["greeting"] == f"hello from {node}", conf
        assert (conf["subnet_network"], conf["subnet_node"]) == split(cidrs[node]), conf
    lab.kubectl("apply", "-f", str(PODS / "forexec2-node1.yaml"))
    ip = pod_ip(lab, "forexec2")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[WORKERS[0]])
    log = lab.node_exec(WORKERS[0], "cat", LOG).stdout
    line = [ln for ln in log.splitlines() if f"gave {ip}/24" in ln]
    assert line and f'greeting="hello from {WORKERS[0]}"' in line[-1], log[-2000:]


def test_down_removes_the_cluster(kind_lab):
    lab = kind_lab
    lab.nppctl("down", "--name", CLUSTER)
    assert CLUSTER not in lab.kind("get", "clusters").stdout.split()
    left = lab.docker.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={CLUSTER}"})
    assert not left, [c.name for c in left]
