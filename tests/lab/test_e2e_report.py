"""Issue 26: `nppctl conformance` reads ginkgo's output as it streams (lab/e2e.py Progress) and the JUnit
report e2e.test writes (report_of). Both read here from the world's own e2e.test and ginkgo (built from
the Kubernetes module, .ci/kind-world.sh), in a dry run: no cluster, the real formats."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from nppctl.lab import e2e
from tests.conftest import load_world, require

FOCUS = (r"Networking Granular Checks: Pods should function for intra-pod communication: (http|udp)"
         r"|HostPort validates that there is no conflict")


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    world = load_world()
    for key in ("E2E_TEST", "GINKGO"):
        require(bool(world[key]) and os.access(world[key], os.X_OK),
                f"the kind world's {key} (run bash .ci/kind-world.sh)")
    return world["GINKGO"], world["E2E_TEST"]


def dry_run(binaries, tmp_path, focus: str) -> tuple[str, str]:
    """ginkgo's verbose output and the JUnit report of a dry run of FOCUS (ginkgo dry-runs in series only)."""
    ginkgo, e2e_test = binaries
    done = subprocess.run([ginkgo, "-v", "--silence-skips", "--no-color", "--dry-run", f"--focus={focus}",
                           f"--skip={e2e.SKIP}", e2e_test, "--", f"--report-dir={tmp_path}",
                           "--provider=skeleton"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout, (tmp_path / "junit_01.xml").read_text()


def test_progress_counts_every_spec_the_suite_reports(binaries, tmp_path):
    out, junit = dry_run(binaries, tmp_path, FOCUS)
    progress = e2e.Progress()
    changed = [line for line in out.splitlines() if progress.feed(line)]
    assert progress.total == 3 and progress.passed == 3 and progress.failed == 0, out
    assert progress.final == (3, 0)
    assert len(changed) == 5  # "Will run", a header per spec, ginkgo's closing count
    report = e2e.report_of(junit)
    assert (report.ran, report.passed, report.failures) == (3, 3, [])


def test_the_default_focus_is_sig_networks_conformance_tests_and_the_granular_checks(binaries, tmp_path):
    out, junit = dry_run(binaries, tmp_path, e2e.FOCUS)
    progress = e2e.Progress()
    for line in out.splitlines():
        progress.feed(line)
    report = e2e.report_of(junit)
    assert progress.total == report.ran == 47, out[-3000:]
    granular = [line for line in out.splitlines() if "Networking Granular Checks: Pods" in line]
    assert len(granular) == 4, granular  # [Conformance] themselves: among the 47


def test_a_report_with_a_failure_names_the_test_and_its_first_line(binaries, tmp_path):
    _, junit = dry_run(binaries, tmp_path, FOCUS)
    # the same report as a failed run writes it: ginkgo's <failure> element in the first test
    failed = re.sub(r'(<testcase name="\[It\][^"]*"[^>]*status=")passed("[^>]*>)</testcase>',
                    r'\1failed\2<failure message="expected pod to answer&#xA; more" type="failed">'
                    r"[FAILED] expected pod to answer</failure></testcase>", junit, count=1)
    assert failed != junit
    report = e2e.report_of(failed)
    assert report.ran == 3 and report.passed == 2, failed[:3000]
    assert [f.message for f in report.failures] == ["expected pod to answer"]
    assert report.failures[0].name.startswith("[sig-network] ")
