"""The seed lab as a student runs it, on real kind: kind v0.33.0 creates the nodes, kubeadm v1.37.0 the
control plane, the kubelet asks containerd 2.x for each pod sandbox and containerd runs the conflist
nppctl installed; the course's manifests pull busybox and nginx through the registry nodes use as
docker.io's mirror (`up --registry-mirror`). Every fact is read from the real API server and nodes.

The tests run in file order on one cluster (np5k): skeleton first, then the real plugin, Services,
`check`, the kubelet's journal, a restarted worker, a pod churn, and `down`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from pathlib import Path

import yaml

from nppctl.resources import resource_dir

CLUSTER = "np5k"
WORKERS = (f"{CLUSTER}-worker", f"{CLUSTER}-worker2")
PODS = resource_dir("pod-configs")
CONFIG = resource_dir("cluster-configs") / "1master2workerMount.yaml"


def ready(lab, node: str) -> bool:
    item = lab.json("get", "node", node)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"]["conditions"])


def pod_ip(lab, pod: str) -> str:
    return lab.wait(f"pod {pod} running", lambda: (lab.running(pod) or {}).get("status", {}).get("podIP"),
                    timeout=240)


def test_up_creates_the_course_cluster_with_the_skeleton(kind_lab):
    lab = kind_lab
    started = time.monotonic()
    done = lab.nppctl("up", "--name", CLUSTER, "--config", str(CONFIG), "--plugin", "skel",
                      "--image", lab.world["NODE_IMAGE"], "--registry-mirror", lab.world["REGISTRY"],
                      "--timeout", "400")
    lab.timings["up (first)"] = time.monotonic() - started
    lab.attach_registry()
    # the course's mount folders, bound at /npp-temp in each node
    assert {p.name for p in (lab.cwd / "tmp").iterdir()} == {"cp", "w1", "w2"}
    (lab.cwd / "tmp" / "w1" / "hello").write_text("from the host\n")
    assert lab.node_exec(WORKERS[0], "cat", "/npp-temp/hello").stdout == "from the host\n"
    (lab.cwd / "tmp" / "w1" / "hello").unlink()  # down --purge keeps what nppctl did not make
    # the real API server: three nodes, the workers labelled by name, each with its podCIDR
    nodes = {n["metadata"]["name"]: n for n in lab.json("get", "nodes")["items"]}
    assert set(nodes) == {f"{CLUSTER}-control-plane", *WORKERS}
    assert nodes[WORKERS[0]]["metadata"]["labels"].get("node") == "node1"
    assert nodes[WORKERS[1]]["metadata"]["labels"].get("node") == "node2"
    cidrs = {n: ipaddress.ip_network(nodes[n]["spec"]["podCIDR"]) for n in nodes}
    assert len(set(cidrs.values())) == 3
    assert all(c.subnet_of(ipaddress.ip_network("10.244.0.0/16")) for c in cidrs.values())
    # each node's conflist and `status` hold the podCIDR the API gave it (registration order, not names)
    rows = {r["node"]: r for r in json.loads(lab.nppctl("status", "--name", CLUSTER, "--json").stdout)}
    for n in nodes:
        name = lab.node_exec(n, "ls", "/etc/cni/net.d").stdout.split()[0]
        conf = json.loads(lab.node_exec(n, "cat", f"/etc/cni/net.d/{name}").stdout)
        assert conf["plugins"][0]["subnet"] == str(cidrs[n]) == rows[n]["subnet"], (n, conf, rows[n])
    # kind got the rendered copy: no kindnet, and on a cgroup v1 host failCgroupV1: false for kubelets
    rendered = yaml.safe_load((lab.cwd / ".nppctl" / CLUSTER / "kind-config.yaml").read_text())
    assert rendered["networking"]["disableDefaultCNI"] is True
    cgroup_v1 = not Path("/sys/fs/cgroup/cgroup.controllers").exists()  # the kernel's answer
    assert ("every kubelet gets failCgroupV1: false" in done.stdout) == cgroup_v1
    kubelet_conf = lab.node_exec(WORKERS[0], "cat", "/var/lib/kubelet/config.yaml").stdout
    assert ("failCgroupV1: false" in kubelet_conf) == cgroup_v1, kubelet_conf
    hosts = lab.node_exec(WORKERS[1], "cat", "/etc/containerd/certs.d/docker.io/hosts.toml").stdout
    assert f'[host."{lab.world["REGISTRY"]}"]' in hosts, hosts
    # every node Ready with the skeleton's conflist (containerd needs a conflist, not a working plugin)
    assert all(ready(lab, n) for n in nodes)
    assert "Ready" in done.stdout and "nppnet-skel" in done.stdout
    for n in nodes:
        confs = lab.node_exec(n, "ls", "/etc/cni/net.d").stdout.split()
        assert confs and confs[0].endswith(".conflist") and "10-kindnet.conflist" not in confs, confs
    # kind v0.33.0 made it: its node image, its labels, containerd 2.x
    version = lab.node_exec(WORKERS[0], "containerd", "--version").stdout
    assert re.search(r"\bv2\.\d+\.\d+", version), version
    assert lab.node_exec(WORKERS[0], "cat", "/kind/version").stdout.strip() == "v1.37.0"
    # a second `up` with the same arguments keeps the cluster as it is
    started = time.monotonic()
    again = lab.nppctl("up", "--name", CLUSTER, "--config", str(CONFIG), "--plugin", "skel",
                       "--image", lab.world["NODE_IMAGE"], "--registry-mirror", lab.world["REGISTRY"])
    lab.timings["up (second)"] = time.monotonic() - started
    assert "Ready" in again.stdout and "exists, kept" in again.stdout, again.stdout
    uids = {n["metadata"]["name"]: n["metadata"]["uid"] for n in lab.json("get", "nodes")["items"]}
    assert uids == {n: nodes[n]["metadata"]["uid"] for n in nodes}


def test_label_sets_and_keeps_labels_through_the_api(kind_lab):
    lab = kind_lab
    lab.nppctl("label", "--name", CLUSTER, "--set", "worker2=tier=web")
    lab.nppctl("label", "--name", CLUSTER)  # the default again: changes nothing
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in lab.json("get", "nodes")["items"]}
    assert labels[WORKERS[0]]["node"] == "node1" and labels[WORKERS[1]]["node"] == "node2"
    assert labels[WORKERS[1]]["tier"] == "web" and "node" not in labels[f"{CLUSTER}-control-plane"]
    bad = lab.nppctl("label", "--name", CLUSTER, "--set", "nonode=a=b", ok=False)
    assert f"node '{CLUSTER}-nonode' not found" in bad.stderr


def test_a_node_without_a_conflist_is_not_ready_until_install(kind_lab):
    lab = kind_lab
    node = WORKERS[1]
    confs = lab.node_exec(node, "ls", "/etc/cni/net.d").stdout.split()
    lab.node_exec(node, "rm", "-f", *[f"/etc/cni/net.d/{c}" for c in confs])
    lab.wait(f"{node} NotReady without a CNI config", lambda: not ready(lab, node), timeout=90)
    cond = next(c for c in lab.json("get", "node", node)["status"]["conditions"] if c["type"] == "Ready")
    assert "cni" in cond["message"].lower() or "network" in cond["message"].lower(), cond
    lab.nppctl("install", "--name", CLUSTER, "--worker", node, "--plugin", "skel")
    lab.wait(f"{node} Ready after install", lambda: ready(lab, node), timeout=90)


def test_the_skeleton_leaves_the_pod_creating_and_says_why(kind_lab):
    lab = kind_lab
    lab.kubectl("apply", "-f", str(PODS / "simple-nginx-node1.yaml"))
    events = lab.failed_sandboxes("mynginx")
    assert "nppnet-skel is a skeleton plugin" in events[0]["message"], events[0]["message"]
    pod = lab.waiting("mynginx")
    assert pod["spec"]["nodeName"] == WORKERS[0]
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"].get("waiting", {})
    assert waiting.get("reason") == "ContainerCreating", pod["status"]
    described = lab.kubectl("describe", "pod", "mynginx").stdout
    assert "FailedCreatePodSandBox" in described and 'plugin type="nppnet-skel"' in described, described
    # the plugin's log has a line per call with what containerd passed (CNI_* and the config)
    log = lab.nppctl("logs", "--name", CLUSTER, "--node", "worker").stdout
    # (coredns's sandboxes fail on this worker too: its lines interleave with the pod's)
    # containerd passes CNI_ARGS in no fixed order: the pod's name may be the last field
    add = [ln for ln in log.splitlines() if " ADD " in ln and re.search(r"K8S_POD_NAME=mynginx[;\"]", ln)]
    assert add, log
    assert re.search(r"netns=\S*/var/run/netns/cni-[0-9a-f-]+", add[-1]), add[-1]
    assert 'ifname="eth0"' in add[-1], add[-1]
    assert "K8S_POD_NAMESPACE=default" in add[-1], add[-1]
    assert 'outcome="error 100: nppnet-skel is a skeleton plugin' in add[-1], add[-1]
    # the kubelet's own journal names the failed sandbox
    journal = lab.node_exec(WORKERS[0], "journalctl", "-u", "kubelet", "--no-pager").stdout
    assert "Failed to create pod sandbox" in journal or "CreatePodSandbox" in journal
    kubelet = lab.nppctl("logs", "--name", CLUSTER, "--node", "worker", "--kubelet").stdout
    assert "nppnet-skel" in kubelet, kubelet
    # status names the pod, the failing call and the plugin's own words, one line
    shown = lab.nppctl("status", "--name", CLUSTER, ok=None).stdout
    stuck = [ln for ln in shown.splitlines() if ln.startswith("pod default/mynginx ")]
    assert len(stuck) == 1, shown
    assert f"on {WORKERS[0]}: ContainerCreating, ADD by nppnet-skel failed (sandbox " in stuck[0], stuck[0]
    assert "nppnet-skel is a skeleton plugin: it logged this ADD" in stuck[0], stuck[0]
    lab.kubectl("delete", "pod", "mynginx", "--wait=true", timeout=180)


def test_the_real_plugin_gives_addresses_from_each_nodes_pod_cidr_and_pods_ping_across(kind_lab):
    lab = kind_lab
    started = time.monotonic()
    lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", "nppnet")
    lab.timings["install --all nppnet"] = time.monotonic() - started
    lab.nppctl("status", "--name", CLUSTER)
    lab.kubectl("apply", "-f", str(PODS / "forexec1-node1.yaml"), "-f", str(PODS / "forexec3-node2.yaml"))
    ips = {p: pod_ip(lab, p) for p in ("forexec1", "forexec3")}
    for pod, node in (("forexec1", WORKERS[0]), ("forexec3", WORKERS[1])):
        item = lab.json("get", "pod", pod)
        assert item["spec"]["nodeName"] == node
        cidr = ipaddress.ip_network(lab.json("get", "node", node)["spec"]["podCIDR"])
        assert ipaddress.ip_address(ips[pod]) in cidr, (pod, ips[pod], cidr)
        # the pod's eth0 inside, as the plugin set it up: address, default route via the node's cni0
        routes = lab.kubectl("exec", pod, "--", "ip", "-4", "route").stdout
        assert f"default via {next(cidr.hosts())} dev eth0" in routes, routes
    print(f"pod addresses: {ips}")
    there = lab.kubectl("exec", "forexec1", "--", "ping", "-c", "1", "-W", "5", ips["forexec3"])
    assert "1 packets received" in there.stdout, there.stdout
    back = lab.kubectl("exec", "forexec3", "--", "ping", "-c", "1", "-W", "5", ips["forexec1"])
    assert "1 packets received" in back.stdout, back.stdout


def test_pods_reach_nginx_through_a_service_via_the_real_kube_proxy(kind_lab):
    lab = kind_lab
    lab.kubectl("apply", "-f", str(PODS / "simple-nginx-node1.yaml"),
                "-f", str(PODS / "simple-nginx-service.yaml"))
    pod_ip(lab, "mynginx")
    # the course's service selects app=nginx: label the pinned nginx pod so it is the only endpoint
    lab.kubectl("label", "pod", "mynginx", "app=nginx", "--overwrite")
    cluster_ip = lab.json("get", "service", "mynginx-service")["spec"]["clusterIP"]

    def endpoint():
        slices = lab.json("get", "endpointslices", "-l", "kubernetes.io/service-name=mynginx-service")
        return [a for s in slices["items"] for e in s.get("endpoints") or [] for a in e["addresses"]]

    lab.wait("the service's endpoint", endpoint, timeout=60)
    # kube-proxy (iptables mode) programmed the ClusterIP on the nodes
    def programmed():
        nat = lab.node_exec(WORKERS[1], "iptables-save", "-t", "nat").stdout
        return cluster_ip in nat and "KUBE-SVC-" in nat

    lab.wait(f"kube-proxy's rules for {cluster_ip}", programmed, timeout=60)
    lab.kubectl("apply", "-f", str(PODS / "forexec2-node1.yaml"))
    pod_ip(lab, "forexec2")
    for client in ("forexec2", "forexec3"):  # same node as nginx, the other node
        page = lab.wait(f"{client} -> {cluster_ip}", lambda c=client: _fetch_ok(lab, c, cluster_ip),
                        timeout=60)
        assert "Welcome to nginx" in page
    # hairpin: nginx reaches itself through its own Service (bash's /dev/tcp: the image has no wget)
    hairpin = lab.kubectl(
        "exec", "mynginx", "--", "bash", "-c",
        f"exec 3<>/dev/tcp/{cluster_ip}/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; timeout 5 cat <&3",
    ).stdout
    assert "Welcome to nginx" in hairpin, hairpin


def _fetch_ok(lab, pod: str, ip: str) -> str | None:
    done = lab.kubectl("exec", pod, "--", "wget", "-q", "-O", "-", "-T", "3", f"http://{ip}/", ok=None)
    return done.stdout if done.returncode == 0 else None


def test_check_passes_every_row_on_kind(kind_lab):
    lab = kind_lab
    started = time.monotonic()
    done = lab.nppctl("check", "--name", CLUSTER, timeout=400)
    lab.timings["check"] = time.monotonic() - started
    print(done.stdout)
    assert "✗" not in done.stdout
    for row in ("pod-pod same node", "across nodes", "pod-node", "node-pod", "service"):
        assert row in done.stdout, (row, done.stdout)


def test_a_restarted_worker_has_its_pods_back_reachable_without_nppctl(kind_lab):
    lab = kind_lab
    node = WORKERS[0]
    started = time.monotonic()
    lab.docker.containers.get(node).restart(timeout=30)

    def answers():
        item = lab.running("forexec1")
        if not item:
            return None
        ip = item["status"]["podIP"]
        done = lab.kubectl("exec", "forexec3", "--", "ping", "-c", "1", "-W", "1", ip, ok=None, timeout=30)
        return ip if done.returncode == 0 else None

    ip = lab.wait("forexec1 answering forexec3 after the restart", answers, timeout=300, every=0.5)
    lab.timings["docker restart worker -> pod answers across nodes"] = time.monotonic() - started
    keeper = lab.node_exec(node, "systemctl", "is-active", "nppctl-keeper.service", ok=None).stdout.strip()
    assert keeper == "active", keeper
    cidr = ipaddress.ip_network(lab.json("get", "node", node)["spec"]["podCIDR"])
    assert ipaddress.ip_address(ip) in cidr


def _scale(lab, replicas: int) -> None:
    lab.kubectl("scale", "deployment", "churn", f"--replicas={replicas}")


def _leftovers(lab) -> dict[str, list[str]]:
    """Per worker: what nppnet holds for a sandbox that is not running (anymore): host veths on cni0
    (their ifalias names the container) and address reservations (their file names the container)."""
    left = {}
    for node in WORKERS:
        ready_pods = lab.node_exec(node, "crictl", "pods", "--state", "ready", "-q", "--no-trunc")
        live = set(ready_pods.stdout.split())
        links = lab.node_exec(node, "ip", "-o", "link", "show", "master", "cni0", ok=None).stdout
        held = {m.group(1): "veth" for m in re.finditer(r"alias nppnet:[^:]+:([0-9a-f]+):", links)}
        store = lab.node_exec(node, "sh", "-c", "grep -m1 -H . /var/lib/cni/nppnet/*/[0-9]* 2>/dev/null",
                              ok=None).stdout
        for line in store.splitlines():
            path, _, cid = line.partition(":")
            held.setdefault(cid.strip(), "address " + path.rsplit("/", 1)[-1])
        left[node] = sorted(f"{what} of {cid[:12]}" for cid, what in held.items() if cid not in live)
    return left


def _clean(lab):
    left = _leftovers(lab)
    return None if any(left.values()) else True


def test_a_deployment_churn_gets_distinct_addresses_and_leaves_nothing(kind_lab):
    lab = kind_lab
    for pod in ("forexec1", "forexec2", "forexec3", "mynginx"):
        lab.kubectl("delete", "pod", pod, "--wait=true", "--ignore-not-found", timeout=180)
    lab.wait("nothing held for a dead sandbox", lambda: _clean(lab), timeout=120,
                 explain=lambda: _leftovers(lab))
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: churn}\nspec:\n  replicas: 0\n"
        "  selector: {matchLabels: {app: churn}}\n  template:\n    metadata: {labels: {app: churn}}\n"
        "    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n"
        "        image: busybox\n        command: [sh, -c, 'sleep 3600']\n"
    )
    lab.kubectl("apply", "-f", "-", input=manifest)
    for rnd in (1, 2):
        started = time.monotonic()
        _scale(lab, 30)

        def all_running():
            pods = lab.pods("app=churn")
            ok = [p for p in pods if p["status"].get("podIP") and p["status"].get("phase") == "Running"]
            return ok if len(ok) == 30 else None

        pods = lab.wait(f"30 churn pods running (round {rnd})", all_running, timeout=600, every=2)
        up_s = time.monotonic() - started
        addresses = [p["status"]["podIP"] for p in pods]
        assert len(set(addresses)) == 30, addresses
        for p in pods:
            cidr = ipaddress.ip_network(lab.json("get", "node", p["spec"]["nodeName"])["spec"]["podCIDR"])
            assert ipaddress.ip_address(p["status"]["podIP"]) in cidr
        started = time.monotonic()
        _scale(lab, 0)
        lab.wait(f"churn pods gone (round {rnd})", lambda: not lab.pods("app=churn"), timeout=300, every=2)
        lab.wait(f"nothing left on the workers (round {rnd})", lambda: _clean(lab), timeout=120,
                 explain=lambda: _leftovers(lab))
        lab.timings[f"churn round {rnd}: 0->30 running"] = up_s
        lab.timings[f"churn round {rnd}: 30->0 clean"] = time.monotonic() - started
    lab.kubectl("delete", "deployment", "churn")


def test_down_purge_removes_the_cluster_and_what_up_made(kind_lab):
    lab = kind_lab
    lab.nppctl("down", "--name", CLUSTER, "--purge")
    assert not lab.docker.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={CLUSTER}"})
    assert CLUSTER not in lab.kind("get", "clusters").stdout.split()
    assert list(lab.cwd.iterdir()) == []
    # down twice is safe
    lab.nppctl("down", "--name", CLUSTER, "--purge")

