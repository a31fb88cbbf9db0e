"""The kind provider: runs the `kind` binary (argv lists, never a shell) to make real Kubernetes nodes."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable

from nppctl.errors import NppctlError
from nppctl.providers.base import ClusterSpec

INSTALL_HINT = (
    "install kind (a release binary from kind's Quick Start, or `go install sigs.k8s.io/kind@latest`) "
    "and put it on PATH, or use `--provider docker` for a lab without Kubernetes"
)


class KindProvider:
    name = "kind"
    has_kubernetes = True

    def __init__(self) -> None:
        self.progress: Callable[[str], None] | None = None  # gets each line kind logs (spinner text)

    def run(self, argv: list[str], *, what: str) -> str:
        """Run `kind ARGV`, return its stdout; a failure becomes one NppctlError line."""
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
            for line in proc.stderr:  # kind logs its progress on stderr
                if line.strip():
                    lines.append(line.strip())
                    if self.progress is not None:
                        self.progress(line.strip())
            reader.join()
        if proc.returncode != 0:
            raise NppctlError(f"{what} failed: {lines[-1] if lines else f'kind exited {proc.returncode}'}")
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
        self.run(argv, what=f"kind create cluster --name {spec.name}")

    def delete(self, name: str) -> None:
        self.run(["delete", "cluster", "--name", name], what=f"kind delete cluster --name {name}")

    def kubeconfig(self, name: str) -> str | None:
        return self.run(["get", "kubeconfig", "--name", name], what=f"kind get kubeconfig --name {name}")

    def version(self) -> str:
        return self.run(["version"], what="kind version").strip()
