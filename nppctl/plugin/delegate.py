"""Delegation to an IPAM plugin (SPEC section 4), as the reference bridge does it: the plugin named
by ipam.type is looked up in CNI_PATH, run with this call's environment (CNI_COMMAND set to the
command at hand) and the whole network configuration on stdin; its stderr is ours.

Imported only when the configuration has an ipam section: `subprocess` costs milliseconds.
"""

import subprocess
from posix import environ

from . import fs, jsonio
from .errors import INTERNAL, INVALID_CONFIG, CNIError


def find(kind, cni_path):
    """The executable of plugin `kind` in CNI_PATH; empty and relative entries are skipped (they
    would resolve against whatever directory the runtime happens to run us in)."""
    for d in cni_path.split(":"):
        if not d.startswith("/"):
            continue
        path = fs.join(d, kind)
        if fs.access(path, fs.X_OK):
            return path
    raise CNIError(
        INVALID_CONFIG,
        f"IPAM plugin {kind!r} not found in CNI_PATH {cni_path!r}",
        "install it next to nppnet (say /opt/cni/bin) or drop the ipam section to use nppnet's own",
    )


def run(kind, command, raw_conf, cni_path):
    """Run the IPAM plugin once; its parsed stdout (None when empty). Its error object becomes
    our CNIError with the same code and message."""
    exe = find(kind, cni_path)
    env = dict(environ)  # bytes to bytes, as this process got it
    env[b"CNI_COMMAND"] = command.encode()
    try:
        done = subprocess.run([exe], input=raw_conf, env=env, stdout=subprocess.PIPE, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        raise CNIError(INTERNAL, f"IPAM plugin {kind} ({command}): {err}") from None
    text = done.stdout.decode("utf-8", "replace").strip()
    try:
        answer = jsonio.loads(text) if text else None
    except ValueError:
        answer = None
        if done.returncode == 0:
            raise CNIError(
                INTERNAL, f"IPAM plugin {kind} ({command}) printed no JSON: {text[:200]!r}"
            ) from None
    if done.returncode != 0:
        if isinstance(answer, dict) and isinstance(answer.get("code"), int) and answer.get("msg"):
            raise CNIError(
                answer["code"], f"IPAM plugin {kind}: {answer['msg']}", str(answer.get("details") or "")
            )
        raise CNIError(
            INTERNAL, f"IPAM plugin {kind} ({command}) failed with status {done.returncode}: {text[:200]}"
        )
    return answer


def supports(kind, version, cni_path):
    """True when the IPAM plugin's VERSION answer lists `version` (GC and STATUS need 1.1.0: a
    plugin without them is skipped, as libcni skips such plugins of a chain)."""
    answer = run(kind, "VERSION", jsonio.dumps({"cniVersion": version}).encode(), cni_path)
    return isinstance(answer, dict) and version in (answer.get("supportedVersions") or ())
