"""`nppctl conformance`: Kubernetes' own sig-network conformance tests against the lab's plugin
(nppctl.lab.e2e runs them; this file shows the progress and the failures)."""

from __future__ import annotations

import typer

from nppctl.cli import render


def conformance_cmd(
    name: str = typer.Option("kind", "--name", "-n", help=render.NAME_HELP),
    focus: str | None = typer.Option(
        None, "--focus", metavar="REGEX",
        help="The tests to run (ginkgo's --focus); default: sig-network's [Conformance] tests and the "
        "Networking Granular Checks of pods (47 tests in v1.37.0)."),
    skip: str | None = typer.Option(
        None, "--skip", metavar="REGEX",
        help="Tests not to run (ginkgo's --skip); default: [Disruptive], [Feature:...]."),
    parallel: int = typer.Option(2, "--parallel", min=1, max=16, help="ginkgo processes."),
    image: str | None = typer.Option(
        None, "--image", help="The conformance image; default registry.k8s.io/conformance:<the cluster's "
        "version> (a classroom: `up --registry-mirror registry.k8s.io=URL`)."),
    timeout: float = typer.Option(3600, "--timeout", help="Seconds the whole suite may take."),
) -> None:
    """Run Kubernetes' e2e conformance tests in the cluster (as hydrophone does) against the lab's plugin;
    the JUnit report and the log are kept in .nppctl/NAME/conformance/."""
    from nppctl.errors import NppctlError
    from nppctl.lab import e2e
    from nppctl.lab.cluster import detect_provider
    from nppctl.lab.labstate import state_dir

    provider = detect_provider(name)
    if provider is None:
        raise NppctlError(f"cluster {name!r} not found: create it with `nppctl up --name {name}`")
    if provider != "kind":
        raise NppctlError(f"conformance runs Kubernetes' tests: cluster {name!r} ({provider} provider) "
                          "has no Kubernetes; use a kind lab (`nppctl up --name NAME`)")
    opts = e2e.Options(image=image, parallel=parallel, timeout=timeout)
    if focus is not None:
        opts.focus = focus
    if skip is not None:
        opts.skip = skip
    out_dir = state_dir(name) / "conformance"
    with render.SuiteProgress() as bar:
        outcome = e2e.run(name, opts, out_dir, on_event=bar.update)
    console = render.console()
    console.print(render.conformance_summary(outcome), soft_wrap=True)
    if outcome.failures:
        console.print(render.conformance_table(outcome.failures))
    for path in outcome.files:
        console.print(f"[dim]kept:[/] {render.escape(str(path))}", soft_wrap=True)
    if outcome.left:
        raise NppctlError(
            f"conformance left {', '.join(outcome.left)} in cluster {name!r}: delete with `kubectl --context "
            f"kind-{name} delete {' '.join(outcome.left)}`"
        )
    if not outcome.ok:
        raise typer.Exit(1)
