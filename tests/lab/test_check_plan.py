"""`nppctl check`'s plan without a lab: which probe lands in which row, the manifests the kind path sends
(no kubelet or API server can run here, so kind's Service probe is tested this far), the kube-proxy-shaped
rules the kindless path writes, and how results are rendered."""

from __future__ import annotations

from types import SimpleNamespace

from nppctl.errors import NppctlError
from nppctl.lab import checks, services
from nppctl.nodeside import kubeproxy


def _nodes():
    return [SimpleNamespace(name=f"k-{s}", short=s, role=r) for s, r in
            (("control-plane", "control-plane"), ("worker", "worker"), ("worker2", "worker"))]


def _pods(ping=None, fetch=None):
    return [
        checks.Endpoint(name, "pod", node.name, f"10.244.{i}.2", ping=ping, fetch=fetch)
        for i, (name, node) in enumerate(checks.pod_names(_nodes()))
    ]


def test_service_rows_same_node_across_nodes_and_hairpin():
    pods = _pods()
    assert [p.name for p in pods] == ["npp-check-control-plane", "npp-check-worker", "npp-check-worker2",
                                      "npp-check-worker-b"]
    server = checks.server_of(pods)
    assert server.name == "npp-check-worker"
    rows = {src.name: category for src, category in checks.service_plan(pods, server)}
    assert rows == {
        "npp-check-control-plane": "service across nodes",
        "npp-check-worker": "service hairpin",
        "npp-check-worker2": "service across nodes",
        "npp-check-worker-b": "service same node",
    }
    assert set(rows.values()) == set(checks.SERVICE_CATEGORIES)


def test_one_node_lab_still_has_a_server_and_a_same_node_client():
    only = [SimpleNamespace(name="k-control-plane", short="control-plane", role="control-plane")]
    pods = [checks.Endpoint(n, "pod", node.name, "10.244.0.2") for n, node in checks.pod_names(only)]
    server = checks.server_of(pods)
    assert server.name == "npp-check-control-plane"
    assert sorted(c for _, c in checks.service_plan(pods, server)) == ["service hairpin", "service same node"]


def test_kind_manifests_select_the_server_pod_only():
    server = checks.pod_manifest("npp-check-worker", "k-worker", "busybox", server=True)
    other = checks.pod_manifest("npp-check-worker2", "k-worker2", "busybox", server=False)
    svc = services.service_manifest()
    selector = svc["spec"]["selector"]
    assert selector.items() <= server["metadata"]["labels"].items()
    assert not selector.items() <= other["metadata"]["labels"].items()
    assert svc["kind"] == "Service" and svc["spec"]["type"] == "ClusterIP"
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (services.PORT, services.TARGET_PORT)
    assert port["protocol"] == "TCP"
    container = server["spec"]["containers"][0]
    script = container["args"][-1]
    assert f"httpd -p {services.TARGET_PORT}" in script and services.REPLY in script  # busybox's httpd
    assert container["ports"] == [{"containerPort": services.TARGET_PORT, "protocol": "TCP"}]
    assert server["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "k-worker"}


def test_rules_are_shaped_as_kube_proxys_with_names_of_our_own():
    spec = {"name": "default/npp-check:http", "cluster_ip": "10.96.78.10", "port": 80,
            "endpoints": [{"ip": "10.244.1.2", "port": 8080}], "cluster_cidr": "10.244.0.0/16"}
    lines = kubeproxy.restore_lines(spec)
    text = "\n".join(lines)
    assert lines[0] == "*nat" and lines[-1] == "COMMIT" and "KUBE-" not in text
    chains = [ln[1:].split()[0] for ln in lines if ln.startswith(":")]
    assert all(c.startswith("NPPCTL-") and len(c) <= 28 for c in chains), chains  # iptables: under 29
    svc = next(c for c in chains if c.startswith("NPPCTL-SVC-"))
    sep = next(c for c in chains if c.startswith("NPPCTL-SEP-"))
    assert "-A NPPCTL-SERVICES -d 10.96.78.10/32 -p tcp" in text and f"--dport 80 -j {svc}" in text
    assert f"-A {svc} ! -s 10.244.0.0/16 -d 10.96.78.10/32" in text  # traffic from outside the pods: masq
    assert f"-j {sep}" in text
    assert f"-A {sep} -s 10.244.1.2/32" in text and "-j NPPCTL-MARK-MASQ" in text  # hairpin
    assert "-j DNAT --to-destination 10.244.1.2:8080" in text
    assert "-A NPPCTL-POSTROUTING -m mark ! --mark 0x10000/0x10000 -j RETURN" in text
    assert "MASQUERADE" in text and "--or-mark 0x10000" in text
    # more endpoints: kube-proxy's random split, the last one taking the rest
    two = dict(spec, endpoints=[{"ip": "10.244.1.2", "port": 8080}, {"ip": "10.244.2.2", "port": 8080}])
    split = [ln for ln in kubeproxy.restore_lines(two) if ln.startswith(f"-A {svc} -m comment")]
    assert "--probability 0.50000000000" in split[0] and "statistic" not in split[1]
    assert kubeproxy.chain_name("NPPCTL-SVC-", "a") != kubeproxy.chain_name("NPPCTL-SVC-", "b")


def test_a_source_that_cannot_probe_fails_its_own_row_only():
    def ping(addresses):
        return [{"address": a, "ok": a != "10.244.2.2", "rtt_ms": 0.5, "detail": "lost"} for a in addresses]

    def broken(addresses):
        raise NppctlError("node agent failed")

    pods = _pods(ping=ping)
    pods[2].ping = broken
    nodes = [checks.Endpoint("k-worker", "node", "k-worker", "172.18.0.3", ping=ping)]
    probes = checks.run_matrix(pods, nodes, None)
    planned = checks.plan(pods, nodes, None)
    assert [(p.src, p.dst) for p in probes] == [(s.name, d.name) for s, d, _ in planned]
    failed = {(p.src, p.dst): p.detail for p in probes if not p.ok}
    assert all(src == "npp-check-worker2" or dst == "npp-check-worker2" for src, dst in failed)
    assert failed[("npp-check-worker2", "k-worker")] == "node agent failed"
    assert failed[("k-worker", "npp-check-worker2")] == "lost"


def test_service_results_render_as_a_column_and_summary_rows():
    def fetch(ip, port):
        return {"ok": True, "ms": 0.3, "reply": f"{services.REPLY} x 10.244.1.3", "detail": ""}

    pods = _pods(fetch=fetch)
    server = checks.server_of(pods)
    server.fetch = lambda ip, port: {"ok": False, "ms": None, "detail": f"no answer from {ip}:{port} in 2s"}
    svc = services.Service("npp-check", "10.96.78.10", 80, 8080, server.name, server.address, "test")
    probes = checks.fetch_all(pods, server, svc)
    lines = checks.summary(probes)
    assert "[green]✓[/] service same node: 1/1" in lines and "[green]✓[/] service across nodes: 2/2" in lines
    assert "[red]✗[/] service hairpin: 0/1" in lines
    hairpin = next(p for p in probes if p.category == "service hairpin")
    assert hairpin.address == "10.96.78.10:80" and "hairpin mode" in hairpin.detail
    from rich.console import Console

    from nppctl.cli import render

    console = Console(width=300, record=True)
    console.print(render.check_table(probes, wide=True))
    assert "svc npp-check" in console.export_text()
