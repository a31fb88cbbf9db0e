"""Issue 26: `nppctl conformance` runs Kubernetes' own e2e conformance tests (sig-network's [Conformance]
tests and the Networking Granular Checks of pods) in a real kind lab, from the conformance image the
world builds as Kubernetes' test/conformance/image makes it, pulled through `--registry-mirror
registry.k8s.io=URL`.

One lab, np26c (the course's config: a control plane, two workers), in file order: up with nppnet;
the whole default suite passes; nppnet without portmap in its chain (a student's plugin and conf)
fails exactly the HostPort test; the skeleton fails at once with one line; Ctrl-C leaves nothing; down.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from nppctl.build import artifacts
from nppctl.lab import e2e
from nppctl.resources import resource_dir
from tests.conftest import ended_by_sigint, sigint_default

CLUSTER = "np26c"
CONFIG = resource_dir("cluster-configs") / "1master2workerMount.yaml"
HOSTPORT = "HostPort validates that there is no conflict"
INTRA_HTTP = "Networking Granular Checks: Pods should function for intra-pod communication: http"


def left_over(lab) -> list[str]:
    """What a run could leave: its namespace, its binding, the suite's own namespaces."""
    found = lab.kubectl("get", "namespaces", "-o", "name").stdout.split()
    names = [n for n in found if n == f"namespace/{e2e.NAMESPACE}"]
    names += lab.kubectl("get", "namespaces", "-l", e2e.SUITE_NAMESPACES, "-o", "name").stdout.split()
    binding = lab.kubectl("get", "clusterrolebinding", e2e.BINDING, "-o", "name", ok=None)
    return names + binding.stdout.split()


def summary(out: str) -> tuple[int, int, int | None]:
    m = re.search(r"(\d+) passed, (\d+) failed(?: of (\d+))?", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None


def test_up_the_course_lab_with_registry_k8s_io_mirrored(kind_lab):
    lab = kind_lab
    mirror = lab.world["REGISTRY"]
    lab.nppctl("up", "--name", CLUSTER, "--config", str(CONFIG), "--image", lab.world["NODE_IMAGE"],
               "--registry-mirror", mirror, "--registry-mirror", f"registry.k8s.io={mirror}",
               "--timeout", "400")
    lab.attach_registry()
    lab.adapt_vm()
    for node in (f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2"):
        text = lab.node_exec(node, "cat", "/etc/containerd/certs.d/registry.k8s.io/hosts.toml").stdout
        assert 'server = "https://registry.k8s.io"' in text and f'[host."{mirror}"]' in text, text


def test_nppnet_passes_every_test_of_the_default_suite(kind_lab):
    lab = kind_lab
    started = time.monotonic()
    done = lab.nppctl("conformance", "--name", CLUSTER, ok=None, timeout=3000)
    lab.timings["conformance (nppnet, default suite)"] = time.monotonic() - started
    shown = done.stdout + done.stderr
    print(shown)
    assert done.returncode == 0, shown
    passed, failed, total = summary(done.stdout)
    assert failed == 0 and passed == total and passed >= 40, shown
    assert "✓ conformant" in done.stdout
    kept = lab.cwd / ".nppctl" / CLUSTER / "conformance"
    report = e2e.report_of((kept / "junit_01.xml").read_text())
    assert (report.ran, report.passed, report.failures) == (passed, passed, [])
    log = (kept / "e2e.log").read_text()
    assert f"Ran {passed} of " in log and f"{passed} Passed | 0 Failed" in log, log[-2000:]
    assert left_over(lab) == []


def test_a_plugin_without_portmap_fails_exactly_the_hostport_test(kind_lab, tmp_path):
    """nppnet's executable as a student's plugin np26net, its conf without portmap. The conf keeps nppnet's
    network name and dataDir, so its allocator goes on from nppnet's: with a store of its own it would
    hand out addresses that pods of the earlier suite run still hold (CI saw the intra-pod test time
    out that way)."""
    lab = kind_lab
    built = {p.name: p for p in artifacts.build_plugins(tmp_path)}
    plugin = tmp_path / "np26net"
    plugin.write_bytes(built["nppnet"].read_bytes())
    plugin.chmod(0o755)
    conf = Path(__file__).parent / "confs" / "09-np26net.conflist.j2"
    lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", str(plugin), "--conf", str(conf))
    done = lab.nppctl("conformance", "--name", CLUSTER, "--focus", f"{HOSTPORT}|{INTRA_HTTP}", ok=None,
                      timeout=1800)
    shown = done.stdout + done.stderr
    print(shown)
    assert done.returncode == 1, shown
    passed, failed, _ = summary(done.stdout)
    assert (passed, failed) == (1, 1), shown
    table = done.stdout[done.stdout.index("failed tests"):]
    assert "[sig-network] HostPort" in " ".join(table.split()), table
    assert "intra-pod" not in table, table
    assert left_over(lab) == []


def test_the_skeleton_fails_at_once_with_one_line(kind_lab):
    lab = kind_lab
    lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", "skel")
    done = lab.nppctl("conformance", "--name", CLUSTER, ok=False, timeout=600)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, done.stderr
    # told by the sandbox's failure (the plugin's own words), not by a timeout
    assert "the suite's pod gets no network" in errors[0], done.stderr
    assert "nppnet-skel is a skeleton plugin" in done.stderr, done.stderr
    assert left_over(lab) == []


def test_ctrl_c_removes_what_the_run_made(kind_lab):
    lab = kind_lab
    lab.nppctl("install", "--name", CLUSTER, "--all", "--plugin", "nppnet")
    proc = subprocess.Popen([sys.executable, "-m", "nppctl", "conformance", "--name", CLUSTER],
                            cwd=lab.cwd, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_default)

    def suite_namespaces() -> str:
        return lab.kubectl("get", "namespaces", "-l", e2e.SUITE_NAMESPACES, "-o", "name").stdout.strip()

    try:
        lab.wait("the suite's own namespaces", suite_namespaces, timeout=300, every=2)  # the suite runs
    except BaseException:
        proc.kill()
        raise
    out, err = ended_by_sigint(proc, timeout=300)
    assert left_over(lab) == [], (out, err)


def test_down_removes_the_lab(kind_lab):
    kind_lab.nppctl("down", "--purge", "--name", CLUSTER)
