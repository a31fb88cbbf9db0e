"""The one error type the CLI shows to a user: one line saying what is wrong and what to do.

Also: check_name(name) (a cluster name by kind's own rule, before anything uses it) and
explain(err) (a library's exception that reached the CLI, as one line with a remedy).
"""

from __future__ import annotations

import re

# kind's own rule for cluster names (its config validation): lower-case letters, digits, '.' and '-'.
CLUSTER_NAME = re.compile(r"^[a-z0-9.-]+$")


class NppctlError(Exception):
    """A failure the user can act on. str(err) is the whole one-line message.

    Raise it with what went wrong and what to do, e.g.
    NppctlError("cluster 'kind' not found: create it with `nppctl up --name kind`").
    The CLI prints it as one line (no traceback unless --debug) and exits 1.
    """


def check_name(name: str) -> str:
    """NAME when kind accepts it as a cluster name (and it names no folder like '.' or '..')."""
    if not isinstance(name, str) or not CLUSTER_NAME.match(name) or set(name) == {"."}:
        raise NppctlError(
            f"cluster name {name!r} is not valid: kind accepts lower-case letters, digits, '.' and '-' "
            "only (e.g. --name lab2)"
        )
    return name


def one_line(text: object) -> str:
    """TEXT on one line (a library's message may span several)."""
    return " ".join(str(text).split())


def explain(err: BaseException) -> str | None:
    """A library exception (Docker SDK, kubernetes client, YAML, OS) as one line with a remedy, or None.

    Recognised by module name, so nothing here imports docker or kubernetes."""
    module = type(err).__module__ or ""
    kind = type(err).__name__
    message = one_line(getattr(err, "explanation", None) or err) or kind
    if module.startswith(("docker.", "requests.", "urllib3.")):
        return (
            f"Docker engine: {message}: check the engine with `docker info` (or `nppctl doctor`) "
            "and retry"
        )
    if module.startswith("kubernetes."):
        return (
            f"Kubernetes client: {message}: check the cluster's kubeconfig "
            "(`kind get kubeconfig --name NAME`, or KUBECONFIG) and retry"
        )
    if module.startswith("yaml"):
        return f"YAML: {message}: fix the file named above"
    if isinstance(err, PermissionError):
        return f"{message}: run nppctl as a user who may write there, or pick another folder"
    if isinstance(err, OSError):
        return f"{kind}: {message}: check the path and retry"
    return None


class Interrupted(NppctlError):
    """Ctrl-C, with what it left behind and the command that cleans it (the CLI exits 130)."""
