"""The real kind world (.ci/kind-world.sh): kind v0.33.0, Kubernetes v1.37.0 built from Go modules, the
node image assembled as kind assembles kindest/node, and a registry that mirrors docker.io for the
course's `image: busybox` / `image: nginx`.

The world is found as .ci/kind-world.sh prints it: NPPCTL_KIND, NPPCTL_KUBECTL, NPPCTL_NODE_IMAGE,
NPPCTL_REGISTRY (the mirror URL nodes use) in the environment (.ci/run exports them), else the
world.env file the script writes under its cache ($NPPCTL_WORLD, default /var/cache/nppctl-world).
Missing, the tests skip on a developer's machine and fail in CI.

One cluster per module (`kind_lab`), named np5*, deleted at the module's end whatever happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REGISTRY_CONTAINER

REPO = Path(__file__).resolve().parents[2]


@dataclass
class KindLab:
    """`nppctl`, `kubectl` and `kind` of the world, run in a scratch folder for cluster NAME."""

    name: str
    cwd: Path
    env: dict
    world: dict
    docker: object
    timings: dict = field(default_factory=dict)

    def _run(self, argv, ok, timeout, input=None):
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout, input=input)
        shown = f"{' '.join(map(str, argv))} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        if ok is True:
            assert done.returncode == 0, shown
        elif ok is False:
            assert done.returncode != 0, shown
        return done

    def nppctl(self, *args, ok: bool | None = True, timeout: float = 600):
        return self._run([sys.executable, "-m", "nppctl", *args], ok, timeout)

    def kubectl(self, *args, ok: bool | None = True, timeout: float = 120, input=None):
        return self._run([self.world["KUBECTL"], "--context", f"kind-{self.name}", *args], ok, timeout, input)

    def kind(self, *args, ok: bool | None = True, timeout: float = 300):
        return self._run([self.world["KIND"], *args], ok, timeout)

    def json(self, *args) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def node_exec(self, node: str, *argv: str, ok: bool | None = True, timeout: float = 60):
        return self._run(["docker", "exec", node, *argv], ok, timeout)

    def wait(self, what: str, probe, timeout: float = 180, every: float = 1.0, explain=None):
        """Call PROBE until it returns a true value (given back) or TIMEOUT passes (fails the test,
        with EXPLAIN() in the message when given)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = probe()
            if last:
                return last
            time.sleep(every)
        seen = explain() if explain else last
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {seen!r})")

    def pods(self, selector: str | None = None) -> list[dict]:
        args = ["get", "pods"] + (["-l", selector] if selector else [])
        return self.json(*args)["items"]

    def running(self, pod: str) -> dict | None:
        item = self.json("get", "pod", pod)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in item["status"].get("conditions", []))
        return item if ready and item["status"].get("podIP") else None

    def failed_sandboxes(self, pod: str, timeout: float = 120) -> list[dict]:
        """kubelet's FailedCreatePodSandBox events of POD once there is one (fails the test after TIMEOUT)."""

        def events():
            found = self.json("get", "events", "--field-selector", f"involvedObject.name={pod}")["items"]
            return [e for e in found if e["reason"] == "FailedCreatePodSandBox"]

        return self.wait(f"FailedCreatePodSandBox of {pod}", events, timeout=timeout)

    def waiting(self, pod: str, timeout: float = 60) -> dict:
        """POD as the API gives it once kubelet has posted its container statuses (a moment after the first
        failed sandbox, later on a loaded machine)."""

        def posted():
            item = self.json("get", "pod", pod)
            return item if item.get("status", {}).get("containerStatuses") else None

        return self.wait(f"container statuses of {pod}", posted, timeout=timeout)

    def attach_registry(self) -> None:
        """As kind's local-registry guide: the registry joins the cluster's Docker network."""
        subprocess.run(["docker", "network", "connect", "kind", REGISTRY_CONTAINER], capture_output=True)
        networks = self.docker.containers.get(REGISTRY_CONTAINER).attrs["NetworkSettings"]["Networks"]
        assert "kind" in networks, networks


    def adapt_vm(self) -> None:
        """The test VM's adaptation for kind's network (.ci/world/vm-egress.sh: this VM's egress answers
        any TCP connection to port 80, so traffic to the service CIDR must never leave the host)."""
        done = subprocess.run(["bash", str(REPO / ".ci" / "world" / "vm-egress.sh")], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def delete_cluster(world: dict, name: str, env: dict, docker_client) -> None:
    subprocess.run([world["KIND"], "delete", "cluster", "--name", name], env=env, capture_output=True,
                   timeout=300)
    for c in docker_client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={name}"}):
        c.remove(force=True, v=True)


def make_lab(tmp_path_factory, world, docker_client, name: str):
    cwd = tmp_path_factory.mktemp(name)
    bindir = cwd.parent / f"{name}-bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("KIND", "KUBECTL"):
        link = bindir / Path(world[tool]).name
        if not link.exists():
            link.symlink_to(world[tool])
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(bindir)] + [p for p in env.get("PATH", "").split(os.pathsep) if "standins" not in p]
    )
    env["KUBECONFIG"] = str(cwd.parent / f"{name}-kubeconfig")
    env["COLUMNS"] = "200"
    env.pop("NPPCTL_STATE_DIR", None)
    return KindLab(name, cwd, env, world, docker_client)


@pytest.fixture(scope="module")
def kind_lab(request, tmp_path_factory, world, docker_client):
    name = getattr(request.module, "CLUSTER", "np5k")
    lab = make_lab(tmp_path_factory, world, docker_client, name)
    delete_cluster(world, name, lab.env, docker_client)  # a leftover of an interrupted run
    yield lab
    for what, seconds in lab.timings.items():
        print(f"timing {name}: {what} {seconds:.1f} s")
    delete_cluster(world, name, lab.env, docker_client)
