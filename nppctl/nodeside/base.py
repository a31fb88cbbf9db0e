"""Shared by the node-side modules: paths, the agent's error, argv runners, JSON files, conflists."""

import hashlib
import json
import os
import subprocess

CNI_BIN = "/opt/cni/bin"
CNI_CONF = "/etc/cni/net.d"
NETNS_DIR = "/var/run/netns"
STATE = "/var/lib/nppctl/installed.json"  # {"plugin": type, "conflist": file name, "subnet": ...}
CONF_EXTS = (".conf", ".conflist", ".json")


class AgentError(Exception):
    """Raised in the node: becomes {"error": ..., "cni": ...} on stdout and exit 1."""

    def __init__(self, msg, cni=None):
        super().__init__(msg)
        self.msg = msg
        self.cni = cni


def run(argv, check=True):
    try:
        p = subprocess.run(argv, capture_output=True)
    except FileNotFoundError:
        raise AgentError(f"`{argv[0]}` is not installed in this node (the lab needs iproute2)") from None
    if check and p.returncode != 0:
        raise AgentError("`{}` failed: {}".format(" ".join(argv), p.stderr.decode(errors="replace").strip()))
    return p


def ip_json(*args):
    p = run(["ip", "-j", *args], check=False)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    return json.loads(p.stdout)


def sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, data):
    """PATH replaced whole by DATA as JSON: written to a temporary file of this call's own beside it (two
    agents writing at once never share one), then renamed over it."""
    import tempfile

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def conf_files():
    """The config files in CNI_CONF a runtime considers, in the order it considers them."""
    try:
        return sorted(n for n in os.listdir(CNI_CONF) if n.endswith(CONF_EXTS))
    except OSError:
        return []


def load_conflist(name):
    """A .conflist as is; a single-plugin .conf/.json wrapped into a list, as libcni does."""
    conf = read_json(os.path.join(CNI_CONF, name))
    if not isinstance(conf, dict):
        raise AgentError(f"{CNI_CONF}/{name} is not valid JSON")
    if "plugins" not in conf:
        conf = {"cniVersion": conf.get("cniVersion", ""), "name": conf.get("name", ""), "plugins": [conf]}
    if not conf["plugins"]:
        raise AgentError(f"{CNI_CONF}/{name} lists no plugins")
    return conf
