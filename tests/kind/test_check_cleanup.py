"""`nppctl check` on real kind removes what it made: its pods and its Service are gone from the API when it
ends, run after run (issue 25, point 4). And when something of its own cannot go, it says what is left
and how to remove it, and exits 1.

One lab, np25c (one worker, the real nppnet plugin), in file order: up, check twice, check with a pod of
its own held by a finalizer, down.
"""

from __future__ import annotations

import json

CLUSTER = "np25c"
STRAY = "npp-check-stray"  # a check pod a finalizer holds (labelled as check labels its own)
FINALIZER = "nppctl.test/hold"


def check_objects(lab) -> list[str]:
    """Every pod and Service of any namespace named npp-check*, as kubectl names them."""
    done = lab.kubectl("get", "pods,services", "--all-namespaces", "-o", "name")
    return [n for n in done.stdout.split() if n.split("/", 1)[1].startswith("npp-check")]


def test_up_makes_a_one_worker_lab(kind_lab):
    lab = kind_lab
    lab.nppctl("up", "--name", CLUSTER, "--workers", "1", "--image", lab.world["NODE_IMAGE"],
               "--registry-mirror", lab.world["REGISTRY"], "--timeout", "400")
    lab.attach_registry()
    assert len(lab.json("get", "nodes")["items"]) == 2
    assert check_objects(lab) == []


def test_check_twice_leaves_no_pod_and_no_service(kind_lab):
    lab = kind_lab
    for run in (1, 2):
        done = lab.nppctl("check", "--name", CLUSTER, ok=None, timeout=400)
        shown = f"run {run}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert check_objects(lab) == [], shown  # right when check ends: it waited for the API to say so
        assert done.returncode == 0, shown
        assert "✗" not in done.stdout and "service hairpin" in done.stdout, shown
        assert "pod-pod across nodes" in done.stdout, shown


def test_check_says_what_it_could_not_remove_and_exits_1(kind_lab):
    lab = kind_lab
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": STRAY, "namespace": "default", "finalizers": [FINALIZER],
                     "labels": {"app.kubernetes.io/managed-by": "nppctl", "nppctl/role": "check"}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "no-such-node"},
                 "containers": [{"name": "probe", "image": "busybox"}]},
    }
    lab.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        done = lab.nppctl("check", "--name", CLUSTER, ok=False, timeout=400)
        print(done.stderr)
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, done.stderr
        assert f"check left pod/{STRAY} in cluster {CLUSTER!r}" in errors[0], done.stderr
        assert f"`kubectl --context kind-{CLUSTER} delete pod/{STRAY}`" in errors[0], done.stderr
        assert "✗" not in done.stdout, done.stdout  # the matrix itself passed
        # the check's own pods and Service went; only the held pod is left, being deleted
        assert check_objects(lab) == [f"pod/{STRAY}"]
        assert lab.json("get", "pod", STRAY)["metadata"].get("deletionTimestamp")
    finally:
        lab.kubectl("patch", "pod", STRAY, "--type", "json", "-p",
                    '[{"op": "remove", "path": "/metadata/finalizers"}]', ok=None)
    lab.wait("the held pod gone", lambda: check_objects(lab) == [], timeout=60)


def test_down_removes_the_lab(kind_lab):
    kind_lab.nppctl("down", "--purge", "--name", CLUSTER)
