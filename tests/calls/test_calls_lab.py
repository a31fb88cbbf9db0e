"""`nppctl calls` on a docker-provider lab (real nodes, real netns): the recorder in front of a bad
course-style plugin (tests/calls/plugins/badnet), calls made by `nppctl cni add` (which gives CNI_ARGS
as kubelet does), listed with pod names and spec verdicts, replayed, followed until Ctrl-C.

Nodes from the bookworm test image (python3 for the node agent); the cluster is np24bc, deleted at the
end whatever the tests did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from nppctl.access.recorder import recorder_dirs, recorder_files
from tests.calls.conftest import PLUGINS
from tests.conftest import ended_by_sigint, sigint_default
from tests.nodes.conftest import make_cluster

CLUSTER = "np24bc"
FAULTS = {"worker": "nocode", "control-plane": "nojson"}


def nppctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "nppctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def node_sh(docker_client, node: str, script: str) -> str:
    code, out = docker_client.containers.get(f"{CLUSTER}-{node}").exec_run(["bash", "-c", script])
    assert code == 0, (script, out)
    return out.decode()


@pytest.fixture(scope="module")
def lab(request, docker_client, node_image_bookworm):
    """Control plane + 1 worker, badnet recorded in each, its conflist first in /etc/cni/net.d."""
    from nppctl.access.nodes import get_node, node_exec, put_files

    make_cluster(request, docker_client, node_image_bookworm, CLUSTER, workers=1)
    for short, fault in FAULTS.items():
        node = get_node(CLUSTER, short)
        node_exec(node, ["mkdir", "-p", "/etc/cni/net.d", *recorder_dirs()])
        conf = {"cniVersion": "1.0.0", "name": "badnet", "plugins": [{"type": "badnet", "fault": fault}]}
        put_files(node, {**recorder_files("badnet", (PLUGINS / "badnet").read_bytes()),
                         "/etc/cni/net.d/05-badnet.conflist": (json.dumps(conf).encode(), 0o644)})
    return CLUSTER


def listed(*args: str) -> list[dict]:
    done = nppctl("calls", "--name", CLUSTER, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_calls_lists_the_failing_add_with_its_pod_message_and_broken_requirement(lab):
    added = nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "np24bp1")
    assert added.returncode == 1, (added.stdout, added.stderr)
    calls = listed("--pod", "np24bp1")
    assert [c["command"] for c in calls] == ["ADD", "DEL"]  # the runtime's DEL after a failed ADD
    add = calls[0]
    assert add["pod"] == "default/np24bp1" and add["node"] == f"{CLUSTER}-worker" and add["exit"] == 1
    assert add["cni_args"]["K8S_POD_NAME"] == "np24bp1" and add["ifname"] == "eth0"
    assert add["netns"] == "/var/run/netns/np24bp1" and add["containerid"] == "np24bp1"
    assert json.loads(add["stdin"])["fault"] == "nocode" and "badnet: no address left" in add["stderr"]
    assert add["message"] == "no address left in 10.244.1.0/24"
    assert add["verdicts"] == [{"requirement": "error object without 'code'",
                                "section": "Section 5: Result Types, Error"}]
    assert calls[1]["exit"] == 0 and calls[1]["verdicts"] == []
    text = nppctl("calls", "--name", CLUSTER, "--pod", "np24bp1").stdout
    (line,) = [t for t in text.splitlines() if " ADD " in t]
    assert f"{CLUSTER}-worker" in line and "default/np24bp1 eth0 exit 1" in line
    assert "no address left in 10.244.1.0/24" in line
    assert "spec: error object without 'code' (CNI SPEC.md Section 5: Result Types, Error)" in text


def test_calls_merge_the_nodes_in_time_order_and_filter_by_node(lab):
    assert nppctl("cni", "add", "--name", CLUSTER, "--node", "control-plane", "np24bp2").returncode == 1
    every = listed()
    assert [c["number"] for c in every] == list(range(1, len(every) + 1))
    assert [c["start"] for c in every] == sorted(c["start"] for c in every)
    assert {c["node"] for c in every} == {f"{CLUSTER}-worker", f"{CLUSTER}-control-plane"}
    mine = listed("--node", "control-plane")
    assert mine and {c["node"] for c in mine} == {f"{CLUSTER}-control-plane"}
    assert {c["number"] for c in mine} <= {c["number"] for c in every}  # the lab's numbers
    add = [c for c in mine if c["command"] == "ADD" and c["pod"] == "default/np24bp2"][0]
    assert add["verdicts"][0]["requirement"].startswith("stdout is not JSON")


def test_replay_of_a_failing_add_reproduces_it_and_leaves_nothing(lab, docker_client):
    add = [c for c in listed("--pod", "np24bp1") if c["command"] == "ADD"][0]
    done = nppctl("calls", "--name", CLUSTER, "--replay", str(add["number"]), "--json")
    assert done.returncode == 0, done.stderr
    replay = json.loads(done.stdout)
    assert replay["exit"] == 1 and replay["same"] is True and replay["left"] == []
    assert replay["netns"] == f"/var/run/netns/nppctl-replay-{add['number']}"
    assert replay["containerid"].startswith(f"nppctl-replay-{add['number']}-")
    assert "no address left" in replay["stdout"] and replay["cleanup"]["exit"] == 0
    assert "error object without 'code' (CNI SPEC.md Section 5: Result Types, Error)" in replay["verdicts"]
    assert "nppctl-replay" not in node_sh(docker_client, "worker", "ip netns list")
    assert "np24v" not in node_sh(docker_client, "worker", "ip -o link")  # the veth went with the netns
    replayed = [c for c in listed("--node", "worker") if c["caller"] == "nppctl-replay"]
    assert [c["command"] for c in replayed] == ["ADD", "DEL"]
    assert replayed[0]["stdin"] == add["stdin"] and replayed[0]["args"] == add["args"]
    text = nppctl("calls", "--name", CLUSTER, "--replay", str(add["number"])).stdout
    assert "the same answer as recorded" in text and "no address left" in text


def test_replay_of_a_call_not_on_record_says_which_there_are(lab):
    done = nppctl("calls", "--name", CLUSTER, "--replay", "9999")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no call 9999 on record in cluster np24bc (calls 1 to"), done.stderr


def test_follow_prints_new_calls_and_ends_with_130_on_sigint(lab):
    proc = subprocess.Popen([sys.executable, "-m", "nppctl", "calls", "--name", CLUSTER, "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200", NO_COLOR="1"), preexec_fn=sigint_default)
    try:
        first = proc.stdout.readline()  # the calls on record so far: following now
        assert first, proc.stderr.read() if proc.poll() is not None else "no line"
        assert nppctl("cni", "add", "--name", CLUSTER, "--node", "worker", "np24bp3").returncode == 1
        deadline = time.monotonic() + 30
        seen = ""
        while "np24bp3" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "default/np24bp3 eth0 exit 1" in seen, seen
    except BaseException:
        proc.kill()
        raise
    ended_by_sigint(proc)
