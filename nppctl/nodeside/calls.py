"""Every CNI call on record: the records recorder.sh writes in a node, read (`calls`) and replayed
(`replay`) by the agent; the Call both sides use (the host imports this module for the dataclass).

The recorder (nppctl/nodeside/recorder.sh, rendered by nppctl/access/recorder.py) sits at
/opt/cni/bin/TYPE; the real plugin at REAL_DIR/TYPE. Each call it sees becomes one file
CALLS_DIR/<start µs since the epoch, 16 digits>-<recorder pid>.call:
    nppctl-call 1
    NAME LENGTH FULL_LENGTH      one per field, then LENGTH bytes and a newline;
    <LENGTH bytes>               FULL_LENGTH > LENGTH: the field was cut at CAP bytes
    ...
    end 0 0                      the last line: a record without it is being written (or failed)
Fields: start (µs), duration_us (the plugin's run), type, pid, caller (the parent's comm: containerd,
or nppctl-replay for a replay), command, containerid, netns, ifname, args, path (the CNI_* variables),
exit, stdin, stdout, stderr. The folder keeps the newest KEEP records (pruned about once in 100 calls).

Replays (`nppctl calls --replay N`), as cnitool runs a plugin, through /opt/cni/bin/TYPE (so the replay
is recorded too, its caller nppctl-replay), with the recorded CNI_* environment and stdin:
- ADD: in a new netns /var/run/netns/nppctl-replay-<N> with a fresh CNI_CONTAINERID, followed by DEL
  with the same config; the netns is removed whatever happens, so nothing is left behind;
- DEL: also against a new netns and container ID, never the recorded ones: a replayed DEL against a
  live pod would tear its network down;
- CHECK: against the recorded netns and container ID when that netns still exists (CHECK changes
  nothing, by the spec), else against a new netns (where a plugin's CHECK fails, as it should);
- VERSION, STATUS: as recorded; GC is refused (it would remove attachments made since).
"""

import os
import secrets
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields

from .base import CNI_BIN, NETNS_DIR, AgentError

CALLS_DIR = "/var/log/nppctl/calls"
REAL_DIR = CNI_BIN + "/.nppctl-real"  # the real plugin of a recorded TYPE: REAL_DIR/TYPE
CAP = 65536  # bytes kept of each of stdin, stdout, stderr
KEEP = 2000  # records kept in CALLS_DIR
MAGIC = b"nppctl-call 1\n"
REPLAY_CALLER = "nppctl-replay"  # the comm a replay runs under: the record's caller
REPLAY_NETNS = "nppctl-replay-"
PLUGIN_TIMEOUT = 60
TEXT_FIELDS = ("type", "caller", "command", "containerid", "netns", "ifname", "args", "path")
STREAMS = ("stdin", "stdout", "stderr")


@dataclass
class Call:
    """One plugin call as the recorder saw it. Streams are text (bytes decoded as UTF-8, bad bytes
    replaced); `truncated` names the streams cut at CAP bytes, `sizes` their full byte sizes."""

    record: str  # the record's file name in CALLS_DIR
    start: float  # seconds since the epoch
    duration_ms: float
    type: str = ""
    pid: int = 0
    caller: str = ""
    command: str = ""
    containerid: str = ""
    netns: str = ""
    ifname: str = ""
    args: str = ""
    path: str = ""
    exit: int = 0
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    truncated: list = field(default_factory=list)
    sizes: dict = field(default_factory=dict)
    node: str = ""  # filled in by the host
    number: int = 0  # filled in by the host: the call's place in the lab's merged order, from 1

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def cni_args(self):
        """CNI_ARGS as a dict ("K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1" -> {...})."""
        pairs = (item.partition("=") for item in self.args.split(";") if item)
        return {k: v for k, _, v in pairs}

    @property
    def pod(self):
        """"namespace/name" from CNI_ARGS, or "" when the caller gave none (not kubelet)."""
        args = self.cni_args
        name = args.get("K8S_POD_NAME", "")
        return f"{args.get('K8S_POD_NAMESPACE', '')}/{name}" if name else ""

    @property
    def ok(self):
        return self.exit == 0


def fields_of(data, name=""):
    """A record's bytes -> ({field: its bytes}, {field: its full size}); ValueError for a record that
    is not one, or not complete."""
    if not data.startswith(MAGIC):
        raise ValueError(f"{name}: not an nppctl call record")
    at, values, sizes = len(MAGIC), {}, {}
    while True:
        nl = data.find(b"\n", at)
        if nl < 0:
            raise ValueError(f"{name}: incomplete record (no end line)")
        try:
            key, length, full = data[at:nl].decode("ascii").split(" ")
            length, full = int(length), int(full)
        except ValueError:
            raise ValueError(f"{name}: bad field header at byte {at}") from None
        if key == "end":
            break
        at = nl + 1
        if at + length + 1 > len(data) or data[at + length:at + length + 1] != b"\n":
            raise ValueError(f"{name}: field {key} runs past the record")
        values[key], sizes[key] = data[at:at + length], full
        at += length + 1
    return values, sizes


def parse(data, name=""):
    """A record's bytes -> Call; ValueError for a record that is not one, or not complete."""
    values, sizes = fields_of(data, name)
    text = {k: v.decode("utf-8", "replace") for k, v in values.items()}

    def number(key, kind=int):
        try:
            return kind(text.get(key, "0"))
        except ValueError:
            return kind(0)

    return Call(
        record=name,
        start=number("start") / 1e6,
        duration_ms=number("duration_us") / 1e3,
        pid=number("pid"),
        exit=number("exit"),
        truncated=[s for s in STREAMS if s in values and sizes[s] > len(values[s])],
        sizes={s: sizes[s] for s in STREAMS if s in values},
        **{k: text.get(k, "") for k in TEXT_FIELDS + STREAMS},
    )


def record_names(folder=CALLS_DIR):
    """The record files in FOLDER, oldest first (names sort by start time)."""
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(".call"))
    except OSError:
        return []


def read(folder=CALLS_DIR, since="", pod=""):
    """The complete records in FOLDER after record name SINCE, of pod POD ("ns/name" or "name") if given."""
    found = []
    for name in record_names(folder):
        if since and name <= since:
            continue
        try:
            with open(os.path.join(folder, name), "rb") as f:
                call = parse(f.read(), name)
        except (OSError, ValueError):
            continue  # being written, pruned meanwhile, or not a record
        if pod and pod not in (call.pod, call.pod.partition("/")[2]):
            continue
        found.append(call)
    return found


def calls(spec):
    """Agent command: {"calls": [Call.to_dict()...]} after spec["since"], of spec["pod"]."""
    found = read(spec.get("folder") or CALLS_DIR, spec.get("since") or "", spec.get("pod") or "")
    return {"calls": [c.to_dict() for c in found], "recording": os.path.isdir(REAL_DIR)}


def _set_comm(name):
    """This process's comm (what the recorder reads from /proc/PPID/comm) becomes NAME."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15] + b"\0", 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _run(plugin, env, stdin):
    began = time.monotonic()
    try:
        p = subprocess.run([plugin], input=stdin, env=env, capture_output=True, timeout=PLUGIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AgentError(f"{plugin} did not finish in {PLUGIN_TIMEOUT}s: killed") from None
    except OSError as err:
        raise AgentError(f"cannot run {plugin}: {err.strerror}") from None
    return {
        "exit": p.returncode,
        "stdout": p.stdout.decode("utf-8", "replace"),
        "stderr": p.stderr.decode("utf-8", "replace"),
        "duration_ms": round((time.monotonic() - began) * 1000, 1),
    }


def _netns(name):
    """A new network namespace NAME (one left by an interrupted replay goes first): its path."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if p.returncode != 0:
        why = p.stderr.decode(errors="replace").strip()
        raise AgentError(f"`ip netns add {name}` failed: {why}")
    return os.path.join(NETNS_DIR, name)


def replay(spec):
    """Agent command: run record spec["record"] again (see the module's docstring); spec["tag"] names the
    netns. {"command", "netns", "containerid", "outcome": {exit, stdout, stderr, duration_ms},
    "cleanup": the DEL after an ADD replay (or null), "left": what could not be removed ([])}."""
    folder = spec.get("folder") or CALLS_DIR
    name = os.path.basename(spec["record"])
    try:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        call, stdin = parse(data, name), fields_of(data, name)[0].get("stdin", b"")
    except OSError:
        raise AgentError(f"record {name} is gone from {folder} (pruned?): list the calls again") from None
    except ValueError as err:
        raise AgentError(str(err)) from None
    if call.truncated and "stdin" in call.truncated:
        raise AgentError(f"record {name} holds only the first {CAP} bytes of the call's stdin: cannot replay")
    command = call.command
    if command == "GC":
        raise AgentError("a GC call is not replayed: it would remove the attachments made since it ran")
    plugin = os.path.join(CNI_BIN, call.type)
    if not os.access(plugin, os.X_OK):
        raise AgentError(f"plugin {call.type} is no longer in {CNI_BIN}")
    tag = str(spec.get("tag") or secrets.token_hex(3))
    if not tag.isalnum():
        raise AgentError(f"replay tag {tag!r}: letters and digits only")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command}
    for var, value in (("CNI_CONTAINERID", call.containerid), ("CNI_NETNS", call.netns),
                       ("CNI_IFNAME", call.ifname), ("CNI_ARGS", call.args), ("CNI_PATH", call.path)):
        if value:
            env[var] = value
    _set_comm(REPLAY_CALLER)
    netns_name = None
    reuse = command == "CHECK" and call.netns and os.path.exists(call.netns)
    if command in ("ADD", "DEL", "CHECK") and not reuse:
        netns_name = REPLAY_NETNS + tag
        env["CNI_NETNS"] = _netns(netns_name)
        env["CNI_CONTAINERID"] = f"nppctl-replay-{tag}-{secrets.token_hex(8)}"
    answer = {"command": command, "netns": env.get("CNI_NETNS", ""),
              "containerid": env.get("CNI_CONTAINERID", ""), "cleanup": None, "left": []}
    try:
        answer["outcome"] = _run(plugin, env, stdin)
        if command == "ADD":
            answer["cleanup"] = _run(plugin, dict(env, CNI_COMMAND="DEL"), stdin)
    finally:
        if netns_name:
            subprocess.run(["ip", "netns", "del", netns_name], capture_output=True)
            if os.path.exists(os.path.join(NETNS_DIR, netns_name)):
                answer["left"].append(os.path.join(NETNS_DIR, netns_name))
    return answer

