"""`nppctl conformance`: Kubernetes' own e2e conformance tests against the lab's plugin, whatever it is
(nppnet, the skeleton, a student's).

As hydrophone runs them: a namespace (NAMESPACE), a ServiceAccount bound to cluster-admin, and one pod
whose first container runs the conformance image (registry.k8s.io/conformance:<the cluster's version>:
e2e.test, ginkgo and kubectl, started by its go-runner, which reads E2E_FOCUS, E2E_SKIP,
E2E_EXTRA_GINKGO_ARGS, RESULTS_DIR) and whose second only sleeps beside the results folder so the JUnit
report can be read once the first has ended. The first container's log is followed line by line:
ginkgo's "Will run N of M specs" gives the total, each spec's header line ("• [12.3 seconds]", "•
[FAILED] [...]") one more passed or failed (Progress). At the end the JUnit report names each failure
with its first line (report_of), and both files are kept in the lab's state folder. Everything made
is deleted at the end, Ctrl-C included, with the namespaces the suite itself made (label e2e-run).

Interface: run(cluster, options, out_dir, on_event) -> Outcome; manifests(options); Progress; report_of.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nppctl.errors import NppctlError

NAMESPACE = "nppctl-conformance"
SERVICE_ACCOUNT = "nppctl-conformance"
BINDING = "nppctl-conformance"  # cluster-admin for the suite's service account, as hydrophone binds it
POD = "e2e-conformance-test"
RUNNER = "conformance"  # the container running the suite
OUTPUT = "output"  # the container that keeps the results folder readable after the suite ends
RESULTS = "/tmp/results"  # go-runner's RESULTS_DIR (its default): junit_01.xml and e2e.log
SUITE_NAMESPACES = "e2e-run"  # the label key of every namespace the e2e framework makes
LABELS = {"app.kubernetes.io/managed-by": "nppctl", "nppctl/role": "conformance"}
# the suite's own busybox (test/utils/image/manifest.go of v1.37.0) for the output container: pulled
# for the tests anyway, through the same mirror
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
# sig-network's conformance tests (47 in v1.37.0); the Networking Granular Checks of pods (http, udp),
# [Conformance] themselves, named too so that they stay whatever a release tags
FOCUS = (r"\[sig-network\].*\[Conformance\]"
         r"|\[sig-network\] Networking Granular Checks: Pods should function for (intra|node)-pod "
         r"communication: (http|udp)")
SKIP = r"\[Disruptive\]|\[Feature:"  # ginkgo runs [Serial] specs last, alone


@dataclass
class Options:
    image: str | None = None  # None: registry.k8s.io/conformance:<server version>
    focus: str = FOCUS
    skip: str = SKIP
    parallel: int = 2
    timeout: float = 3600.0  # the whole suite, seconds
    start_timeout: float = 300.0  # until the suite's container runs (image pull)


@dataclass
class Failure:
    name: str
    message: str  # its first line


@dataclass
class Outcome:
    image: str
    total: int | None
    passed: int
    failed: int
    failures: list[Failure]
    files: list[Path]
    seconds: float
    exit_code: int | None
    left: list[str] = field(default_factory=list)  # what could not be deleted (kubectl names)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.failures and self.passed > 0 and self.exit_code == 0


WILL_RUN = re.compile(r"Will run (\d+) of (\d+) specs")
# a spec's header once it ended: "• [12.345 seconds]", "• [FAILED] [12.345 seconds]", "• [TIMEDOUT] ..."
SPEC_DONE = re.compile(
    r"^\s*•\s+(?:\[(?P<state>[A-Z!]+)\]\s+)?(?:DURING REPETITION #\d+\s+)?\[\d+(?:\.\d+)? seconds\]"
)
RAN = re.compile(r"Ran (\d+) of (\d+) Specs in")
RESULT = re.compile(r"(\d+) Passed \| (\d+) Failed")


@dataclass
class Progress:
    """What ginkgo's output has said so far; feed() takes one line, returns True when a count changed."""

    total: int | None = None
    passed: int = 0
    failed: int = 0
    final: tuple[int, int] | None = None  # ginkgo's own closing count (passed, failed)

    def feed(self, line: str) -> bool:
        if m := WILL_RUN.search(line):
            self.total = int(m.group(1))
            return True
        if m := SPEC_DONE.match(line):
            if m.group("state") in (None, "PASSED"):
                self.passed += 1
            else:
                self.failed += 1
            return True
        if m := RESULT.search(line):
            self.final = (int(m.group(1)), int(m.group(2)))
            return True
        return False

    @property
    def done(self) -> int:
        return self.passed + self.failed


@dataclass
class Report:
    """A JUnit report as e2e.test writes it: its tests ([It] testcases not skipped) and every failure
    (a suite-level node's too: a failed [SynchronizedBeforeSuite] skips every test)."""

    ran: int
    passed: int
    failures: list[Failure]


def report_of(junit: str) -> Report:
    try:
        root = ET.fromstring(junit)
    except ET.ParseError as err:
        raise NppctlError(f"the suite's JUnit report is not XML ({err})") from None
    ran = passed = 0
    failures = []
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            continue
        name = case.get("name", "?")
        test = name.startswith("[It] ")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        ran += test
        if bad is None:
            passed += test
            continue
        text = bad.get("message") or bad.text or bad.get("type") or "failed"
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "failed")
        failures.append(Failure(name.removeprefix("[It] "), first))
    return Report(ran, passed, failures)


def manifests(opts: Options, image: str) -> list[dict]:
    """The objects of a run, in creation order (deleted with the namespace and the binding)."""
    meta = {"labels": dict(LABELS)}
    ginkgo = [f"--procs={opts.parallel}"] if opts.parallel > 1 else []
    ginkgo += ["-v", "--silence-skips"]  # a header line per spec ended (Progress); none per skipped one
    volume = [{"name": "results", "mountPath": RESULTS}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": BINDING, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": POD, "namespace": NAMESPACE, **meta},
         "spec": {
             "serviceAccountName": SERVICE_ACCOUNT,
             "restartPolicy": "Never",
             "tolerations": [{"operator": "Exists"}],
             "volumes": [{"name": "results", "emptyDir": {}}],
             "containers": [
                 {"name": RUNNER, "image": image, "imagePullPolicy": "IfNotPresent",
                  "env": [{"name": "E2E_FOCUS", "value": opts.focus},
                          {"name": "E2E_SKIP", "value": opts.skip},
                          {"name": "E2E_PROVIDER", "value": "skeleton"},
                          {"name": "E2E_EXTRA_GINKGO_ARGS", "value": " ".join(ginkgo)},
                          {"name": "RESULTS_DIR", "value": RESULTS}],
                  "volumeMounts": volume},
                 {"name": OUTPUT, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                  "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
                  "volumeMounts": volume},
             ],
         }},
    ]


Event = Callable[[str, Progress], None]  # (what happens now, the counts so far)


def run(cluster: str, opts: Options, out_dir: Path, on_event: Event | None = None) -> Outcome:
    """Run the suite in CLUSTER; everything made is deleted at the end (Ctrl-C too). NppctlError when it
    could not start or its report cannot be read."""
    from nppctl.access import kubejob

    say = on_event or (lambda _what, _progress: None)
    progress = Progress()
    image = opts.image or f"registry.k8s.io/conformance:{kubejob.server_version(cluster)}"
    started = time.monotonic()
    say("removing what an earlier run left", progress)
    _clean(cluster, wait=120)
    outcome = None
    try:
        say(f"starting {image}", progress)
        kubejob.create(cluster, manifests(opts, image))
        _wait_started(cluster, image, opts.start_timeout, lambda what: say(what, progress))
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path = out_dir / "e2e.log"
        deadline = time.monotonic() + opts.timeout
        with open(log_path, "w", encoding="utf-8") as log:
            for line in kubejob.follow_log(cluster, NAMESPACE, POD, RUNNER):
                log.write(line + "\n")
                if progress.feed(line):
                    log.flush()
                    say("running", progress)
                if time.monotonic() > deadline:
                    raise NppctlError(f"the suite ran over --timeout {opts.timeout:.0f}s: see {log_path}")
        state = kubejob.container_state(cluster, NAMESPACE, POD, RUNNER)
        say("reading the JUnit report", progress)
        files = [log_path]
        junit = kubejob.read_file(cluster, NAMESPACE, POD, OUTPUT, f"{RESULTS}/junit_01.xml")
        junit_path = out_dir / "junit_01.xml"
        junit_path.write_text(junit, encoding="utf-8")
        files.append(junit_path)
        report = report_of(junit)
        outcome = Outcome(image, progress.total, report.passed, report.ran - report.passed, report.failures,
                          files, time.monotonic() - started, state.exit_code)
    finally:
        say("deleting what the run made", progress)
        left = _clean(cluster, wait=120)
    outcome.left = left
    return outcome


def _clean(cluster: str, wait: float) -> list[str]:
    from nppctl.access import kubejob

    return kubejob.delete(cluster, NAMESPACE, [BINDING], selector=SUITE_NAMESPACES, wait=wait)


def _wait_started(cluster: str, image: str, timeout: float, say: Callable[[str], None]) -> None:
    """Until the suite's container runs (or already ended); one error line when its image cannot be
    pulled or TIMEOUT passes."""
    from nppctl.access import kubejob

    deadline = time.monotonic() + timeout
    while True:
        state = kubejob.container_state(cluster, NAMESPACE, POD, RUNNER)
        if state.running or state.exit_code is not None:
            return
        if state.waiting in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            raise NppctlError(
                f"the nodes cannot pull {image} ({state.waiting}: {' '.join(state.message.split())[:160]}): "
                "give a registry that has it, `nppctl up --registry-mirror registry.k8s.io=URL`, or "
                "--image IMAGE"
            )
        if state.waiting == "ContainerCreating":
            _no_network(cluster)
        if time.monotonic() > deadline:
            raise NppctlError(
                f"the suite's pod did not start in {timeout:.0f}s ({state.waiting or state.phase}): see "
                f"`kubectl -n {NAMESPACE} describe pod {POD}`"
            )
        say(f"waiting for the suite's pod ({state.waiting or state.phase})")
        time.sleep(1)


def _no_network(cluster: str) -> None:
    """NppctlError when the suite's own pod cannot get its sandbox: the lab's CNI plugin fails its ADD
    (the skeleton always does), so no test could run; the plugin's message is quoted."""
    from nppctl.access import kube

    for pod in kube.sandbox_failures(cluster):
        if (pod["namespace"], pod["name"]) == (NAMESPACE, POD):
            why = " ".join(pod["message"].split())
            raise NppctlError(
                f"the suite's pod gets no network on {pod['node']}: the CNI plugin fails its ADD "
                f"({why[-300:]}); every conformance test needs pod networking: fix the plugin "
                "(`nppctl calls`, `nppctl logs`), then run conformance again"
            )
