"""The kind provider: runs the `kind` binary (argv lists, never a shell) to make real Kubernetes nodes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections.abc import Callable

from nppctl.access.providers.base import ClusterSpec
from nppctl.errors import NppctlError

INSTALL_HINT = (
    "install kind (a release binary from kind's Quick Start, or `go install sigs.k8s.io/kind@latest`) "
    "and put it on PATH, or use `--provider docker` for a lab without Kubernetes"
)


TAIL = 6  # lines of kind's output after its ERROR: line shown with a failure


def failure(what: str, lines: list[str], code: int, hint: str = "") -> str:
    """What a failed kind run says: kind's ERROR: line first (else its last line), then the tail of
    what it printed after it (its command output), indented, then HINT: each on a line of its own, as
    the CLI prints them (nppctl.cli.app.error_text), so kind's words and nppctl's remedy stay apart."""
    lines = [ln.rstrip() for ln in lines if ln.strip()]
    at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("ERROR:")), None)
    if at is None:
        head, tail = (lines[-1] if lines else f"kind exited {code}"), []
    else:
        head, tail = lines[at], lines[at + 1 :][-TAIL:]
    text = f"{what} failed: {head}"
    if tail:
        text += "\n" + "\n".join(f"  {ln}" for ln in tail)
    return text + (f"\n{hint}" if hint else "")


def _stop(proc: subprocess.Popen, within: float = 5.0) -> None:
    """Send kind the Ctrl-C it did not get, and wait for it to end (killed after WITHIN seconds)."""
    from nppctl.access.throwaway import sigint_held

    with sigint_held():  # a second Ctrl-C does not leave kind running
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class KindProvider:
    name = "kind"
    has_kubernetes = True

    def __init__(self) -> None:
        self.progress: Callable[[str], None] | None = None  # gets each line kind logs (spinner text)

    def run(self, argv: list[str], *, what: str, hint: str = "") -> str:
        """Run `kind ARGV`, return its stdout; a failure becomes an NppctlError (see failure())."""
        binary = shutil.which("kind")
        if binary is None:
            raise NppctlError(f"kind not found on PATH: {INSTALL_HINT}")
        with subprocess.Popen(
            [binary, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            out = []
            reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
            reader.start()
            lines = []
            try:
                for line in proc.stderr:  # kind logs its progress on stderr
                    if line.strip():
                        lines.append(line.strip())
                        if self.progress is not None:
                            self.progress(line.strip())
            except KeyboardInterrupt:  # only nppctl got the Ctrl-C: kind must not go on creating
                _stop(proc)
                raise
            reader.join()
        if proc.returncode != 0:
            raise NppctlError(failure(what, lines + "".join(out).splitlines(), proc.returncode, hint))
        return "".join(out)

    def clusters(self) -> list[str]:
        """`kind get clusters`: one name a line (kind says "No kind clusters found." on stderr)."""
        return [
            ln.strip()
            for ln in self.run(["get", "clusters"], what="kind get clusters").splitlines()
            if ln.strip()
        ]

    def exists(self, name: str) -> bool:
        return name in self.clusters()

    def create(self, spec: ClusterSpec) -> None:
        if self.exists(spec.name):
            return
        argv = ["create", "cluster", "--name", spec.name]
        if spec.config_file is not None:
            argv += ["--config", str(spec.config_file)]
        if spec.image:
            argv += ["--image", spec.image]
        hint = (
            f"to look inside, run `kind create cluster --retain {' '.join(argv[2:])}` (keeps the nodes "
            f"after a failure), then `kind export logs --name {spec.name}`"
        )
        self.run(argv, what=f"kind create cluster --name {spec.name}", hint=hint)

    def delete(self, name: str) -> None:
        self.run(["delete", "cluster", "--name", name], what=f"kind delete cluster --name {name}")

    def kubeconfig(self, name: str) -> str | None:
        return self.run(["get", "kubeconfig", "--name", name], what=f"kind get kubeconfig --name {name}")

    def undo_network(self) -> None:
        return None  # kind makes its network itself and keeps it

    def version(self) -> str:
        return self.run(["version"], what="kind version").strip()
