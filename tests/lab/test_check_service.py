"""`nppctl check` stopped by Ctrl-C while its Service exists: the kube-proxy-shaped rules, the agent's TCP
server and the `cni add` pods are all removed before it exits; a check afterwards runs clean."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tests.conftest import sigint_default
from tests.lab.kindnode import drop_ping, leftovers, nodes, pause_keeper


def test_ctrl_c_during_check_removes_rules_server_and_pods(lab):
    name = "np4i"
    lab.clusters.append(name)
    lab.run("up", "--provider", "docker", "--workers", "1", "--image", lab.image, "--name", name)
    drop_ping(lab.docker, name)
    # worker loses its route to the control plane's pods: those probes wait for their 2 s timeouts, which
    # keeps check busy long enough to be interrupted while the Service is in place
    worker = lab.docker.containers.get(f"{name}-worker")
    cp = lab.docker.containers.get(f"{name}-control-plane")
    cp_address = cp.attrs["NetworkSettings"]["Networks"]["kind"]["IPAddress"]
    route = json.loads(worker.exec_run(["ip", "-j", "route", "show", "via", cp_address]).output)[0]["dst"]
    pause_keeper(worker)  # it would put the route back at once
    assert worker.exec_run(["ip", "route", "del", route, "via", cp_address]).exit_code == 0

    check = subprocess.Popen(
        [sys.executable, "-m", "nppctl", "check", "--name", name], cwd=lab.cwd, env=lab.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and check.poll() is None:
            rules = worker.exec_run(["iptables", "-t", "nat", "-S", "NPPCTL-SERVICES"])
            serving = worker.exec_run(["sh", "-c", "ls /run/nppctl/tcp-serve-*.pid"]).exit_code == 0
            if rules.exit_code == 0 and serving:
                break
            time.sleep(0.1)
        assert check.poll() is None, "check ended before its Service was in place"
        assert leftovers(lab.docker, name)  # rules, server and pods exist now
        check.send_signal(signal.SIGINT)
        out, err = check.communicate(timeout=60)
    finally:
        if check.poll() is None:
            check.kill()
    assert check.returncode in (1, 130), (check.returncode, out, err)  # 130: the shell's code for Ctrl-C
    assert "Traceback" not in err
    assert leftovers(lab.docker, name) == {}
    assert len(nodes(lab.docker, name)) == 2

    assert worker.exec_run(["ip", "route", "add", route, "via", cp_address]).exit_code == 0
    pause_keeper(worker, resume=True)
    again = lab.run("check", "--name", name, "--json")  # every probe, hairpin too (the plugin's hairpinMode)
    report = json.loads(again.stdout)
    assert report["service"]["server"] == "npp-check-worker" and report["failed"] == 0
    rows = [p["category"] for p in report["probes"] if p["category"].startswith("service")]
    assert sorted(rows) == ["service across nodes", "service hairpin", "service same node"]
    assert leftovers(lab.docker, name) == {}
    lab.run("down", "--name", name, "--purge")
