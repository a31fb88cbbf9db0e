"""Does a CNI plugin executable answer VERSION? The one check `install`, `up`, `plugin test` (on this
machine) and `status` (in the node, through the agent) all use.

A container runtime first runs a plugin with CNI_COMMAND=VERSION and the config's cniVersion on
stdin; a plugin answers one JSON object with "cniVersion" and a list "supportedVersions". Anything
else (not executable, an exec format error, a crash, a hang, other output) is the reason returned.
Stdlib only, Python 3.9 syntax: it runs on the host and in nodes.
"""

import json
import os
import subprocess

VERSION_STDIN = b'{"cniVersion":"1.0.0"}'
TIMEOUT = 5.0


def ask_version(path, timeout=TIMEOUT):
    """None when PATH answers CNI VERSION as the spec says, else why not (one line)."""
    if not os.path.isfile(path):
        return "no such file"
    if not os.access(path, os.X_OK):
        return "not executable"
    # as a runtime calls it: every CNI_ variable set, the ones VERSION has no use for empty
    env = {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "", "CNI_NETNS": "", "CNI_IFNAME": "",
           "CNI_ARGS": "", "CNI_PATH": os.path.dirname(os.path.abspath(path)),
           "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        done = subprocess.run(
            [path], input=VERSION_STDIN, capture_output=True, env=env, timeout=timeout,
            cwd="/", start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return f"did not answer CNI VERSION within {timeout:g}s"
    except OSError as err:
        return f"cannot be run ({err.strerror or err})"
    return judge(done.returncode, done.stdout, done.stderr)


def judge(code, stdout, stderr):
    """None when a VERSION call's result is a CNI version answer, else why not (one line)."""
    out = stdout.decode("utf-8", "replace").strip()
    err = stderr.decode("utf-8", "replace").strip()
    if code != 0:
        said = (err or out or "no output").splitlines()[-1][:200]
        return f"CNI VERSION exited {code}: {said}"
    try:
        answer = json.loads(out)
    except ValueError:
        return f"CNI VERSION printed no JSON object ({out[:80]!r})"
    if not isinstance(answer, dict):
        return f"CNI VERSION printed no JSON object ({out[:80]!r})"
    versions = answer.get("supportedVersions")
    if not isinstance(answer.get("cniVersion"), str) or not isinstance(versions, list) or not versions:
        return f"CNI VERSION answer lacks cniVersion and supportedVersions ({out[:80]!r})"
    return None
