"""Bad input: fuzzed config and environment (in-process through the plugin's own entry, and a few
end-to-end execs), hostile CNI_IFNAME / CNI_CONTAINERID / CNI_NETNS. Every call must end in a CNI
error object or a valid result, never a traceback or a hang, and write nothing outside dataDir
and logFile."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nppctl.plugin import protocol
from nppctl.plugin.config import NetConf, valid_attachments
from tests.harness import call_env, run
from tests.robustness.cni import netns_links

COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]
VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
PARSE_CODES = {1, 4, 6, 7}  # what parsing may answer: incompatible version, environment, decode, config

env_text = st.text(st.characters(blacklist_characters="\0"), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def cidr_like():
    octet = st.integers(-5, 300).map(str)
    ip = st.builds(lambda *o: ".".join(o), octet, octet, octet, octet)
    return st.builds(lambda a, b: f"{a}/{b}", ip, st.integers(-2, 40)) | ip | st.text(max_size=20)


def configs(safe_dir: str):
    """Network configurations: the plugin's keys with plausible, odd and wrong values."""
    paths = st.sampled_from(
        [safe_dir + "/data", safe_dir + "/log", "relative/path", "", "/", 7, None, "/x\0y"]
    )
    fields = {
        "cniVersion": st.sampled_from(VERSIONS) | st.text(max_size=8) | json_values,
        "name": st.sampled_from(["np2fuzz", "a.b-c_d"]) | st.text(max_size=12) | json_values,
        "type": st.just("nppnet") | json_values,
        "subnet": st.sampled_from(["10.202.30.0/24", "10.202.30.0/31"]) | cidr_like() | json_values,
        "gateway": cidr_like() | json_values,
        "bridge": st.sampled_from(["np2br30", "x" * 16, "a/b", ".."]) | env_text | json_values,
        "mtu": st.integers(-10, 70000) | json_values,
        "ipMasq": st.booleans() | json_values,
        "clusterCIDR": cidr_like() | json_values,
        "subnet_network": st.sampled_from(["10.202", "10"]) | json_values,
        "subnet_node": st.integers(-1, 300) | st.text(max_size=4) | json_values,
        "dataDir": paths,
        "logFile": paths,
        "prevResult": json_values,
        "cni.dev/valid-attachments": json_values
        | st.lists(st.fixed_dictionaries({"containerID": env_text, "ifname": env_text}), max_size=3),
        "runtimeConfig": json_values,
    }
    return st.fixed_dictionaries({}, optional=fields)


def stdin_bytes(safe_dir: str):
    return (
        configs(safe_dir).map(lambda c: json.dumps(c).encode())
        | st.binary(max_size=200)
        | st.sampled_from([b"", b"[]", b"null", b"{", b"\xff\xfe", b"[" * 100000, b'{"a":' * 50000])
    )


def environments():
    return st.fixed_dictionaries(
        {"CNI_COMMAND": st.sampled_from(COMMANDS) | env_text},
        optional={
            "CNI_CONTAINERID": st.sampled_from(["np2c-fuzz", "../../etc", "a/b"]) | env_text,
            "CNI_NETNS": st.sampled_from(["/proc/self/ns/net", "/nonexistent"]) | env_text,
            "CNI_IFNAME": st.sampled_from(["eth0", "x" * 16, "a/b", "..", "a b"]) | env_text,
            "CNI_ARGS": env_text,
            "CNI_PATH": env_text,
        },
    )


def parse_only(call, conf, version):
    """Stands for the plugin's commands: exactly its parsing of the configuration, no system work."""
    NetConf(conf, version)
    if call.command == "GC":
        valid_attachments(conf)
    return None


def check_reply(status: int, out: str, command: str) -> None:
    obj = json.loads(out) if out else None
    if status == 0:
        if command == "VERSION":
            assert obj["supportedVersions"] == VERSIONS
        return
    assert status == 1
    assert isinstance(obj, dict) and set(obj) >= {"cniVersion", "code", "msg"}, out
    assert obj["code"] in PARSE_CODES, obj  # 100 would be an unexpected exception: a bug
    assert isinstance(obj["msg"], str) and obj["msg"]


@pytest.fixture
def fuzz_dir(tmp_path_factory, monkeypatch):
    work = tmp_path_factory.mktemp("np2fuzz")
    # a config without a usable logFile logs to the default: keep that inside the test's folder
    monkeypatch.setattr(protocol, "DEFAULT_LOG_FILE", str(work / "default.log"))
    return work


def test_fuzzed_config_and_environment_end_in_error_object_or_result(fuzz_dir):
    safe = str(fuzz_dir)

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(environ=environments(), raw=stdin_bytes(safe))
    def one_call(environ, raw):
        out = io.StringIO()
        status = protocol.run(dict.fromkeys(COMMANDS[:-1], parse_only), environ, io.BytesIO(raw), out)
        check_reply(status, out.getvalue(), environ["CNI_COMMAND"])

    one_call()
    written = {p.name for p in fuzz_dir.iterdir()}
    assert written <= {"data", "log", "log.1", "default.log", "default.log.1"}, written


@pytest.fixture
def canary(tmp_path):
    """dataDir and logFile live in tmp/store; anything hostile input aims elsewhere lands next to it."""
    (tmp_path / "store").mkdir()
    return tmp_path


def snapshot(*dirs) -> set:
    found = set()
    for d in dirs:
        for root, subdirs, files in os.walk(d):
            found.update(os.path.join(root, n) for n in subdirs + files)
    return found


HOSTILE = [
    # (what, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS: None = a real fresh namespace, expected code)
    ("ifname over 15 bytes", "np2c-h1", "eth0123456789abc", None, 4),
    ("ifname with /", "np2c-h2", "a/b", None, 4),
    ("ifname ..", "np2c-h3", "..", None, 4),
    ("ifname .", "np2c-h3b", ".", None, 4),
    ("ifname with space", "np2c-h4", "et h0", None, 4),
    ("ifname empty", "np2c-h4b", "", None, 4),
    ("container id climbing up", "../../../store-escape", "eth0", None, 4),
    ("container id with /", "np2c/evil", "eth0", None, 4),
    ("container id absolute", "/tmp/np2-evil", "eth0", None, 4),
    ("container id empty", "", "eth0", None, 4),
    ("netns a regular file", "np2c-h5", "eth0", "FILE", 4),
    ("netns missing", "np2c-h6", "eth0", "/nonexistent/np2-netns", 4),
    ("netns a mount namespace", "np2c-h7", "eth0", "/proc/self/ns/mnt", 4),
    ("netns a directory", "np2c-h8", "eth0", "DIR", 4),
    ("netns relative", "np2c-h9", "eth0", "np2-relative", 4),
]


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_hostile_environment_gives_clean_errors_and_writes_nothing_outside(
    nppnet_exe, canary, command, root_netns
):
    store = canary / "store"
    conf = {
        "cniVersion": "1.0.0",
        "name": "np2hostile",
        "type": "nppnet",
        "subnet": "10.202.31.0/24",
        "bridge": "np2br31",
        "dataDir": str(store / "data"),
        "logFile": str(store / "nppnet.log"),
    }
    (canary / "a-file").write_text("")
    (canary / "a-dir").mkdir()
    netns_name = f"np2-{os.getpid()}-hostile"
    subprocess.run(["ip", "netns", "add", netns_name], check=True)
    runs_before = set(os.listdir("/var/run/netns"))  # other suites may add theirs meanwhile
    try:
        before = snapshot(canary)
        for what, cid, ifname, netns, code in HOSTILE:
            if command == "DEL" and code == 4 and netns is not None:
                continue  # DEL needs no namespace: those cases may succeed (nothing to delete)
            path = {
                None: f"/var/run/netns/{netns_name}",
                "FILE": str(canary / "a-file"),
                "DIR": str(canary / "a-dir"),
            }.get(netns, netns)
            sent = conf
            if command == "CHECK":  # what ADD would have answered (CHECK requires it)
                eth = {"name": ifname, "mac": "0a:58:0a:ca:1f:02", "sandbox": path}
                ips = [{"address": "10.202.31.2/24", "gateway": "10.202.31.1", "interface": 0}]
                sent = dict(conf, prevResult={"cniVersion": "1.0.0", "interfaces": [eth], "ips": ips})
            done = run([nppnet_exe], call_env(command, cid, path, ifname), json.dumps(sent).encode(), canary,
                       timeout=30)
            assert done.rc == 1, f"{what}: {done}"
            obj = json.loads(done.stdout)
            # CHECK looks the attachment up before opening the namespace: unknown container (3)
            allowed = {code, 3} if command == "CHECK" and netns is not None else {code}
            assert obj["code"] in allowed and obj["msg"], f"{what}: {obj}"
            assert "Traceback" not in done.stderr, f"{what}: {done.stderr[-500:]}"
        created = {p for p in snapshot(canary) - before if not p.startswith(str(store) + os.sep)}
        assert created == set(), created
        reserved = [p for p in snapshot(store) if os.path.basename(p).count(".") == 3 and "tmp" not in p]
        assert reserved == [], reserved  # no call that failed kept an address
        new_entries = set(os.listdir("/var/run/netns")) - runs_before
        assert not [n for n in new_entries if n.startswith(("np2c", "store-escape"))], new_entries
        assert not os.path.lexists("/store-escape") and not os.path.lexists("/tmp/np2-evil")
        assert netns_links(f"/var/run/netns/{netns_name}") == ["lo"]
        assert subprocess.run(["ip", "link", "show", "np2br31"], capture_output=True).returncode != 0
    finally:
        subprocess.run(["ip", "netns", "del", netns_name], capture_output=True)
        subprocess.run(["ip", "link", "del", "np2br31"], capture_output=True)


@pytest.fixture
def default_log():
    """Calls without a usable logFile log to the default path: remove it if this test made it."""
    existed = os.path.exists(protocol.DEFAULT_LOG_FILE)
    yield
    if not existed:
        for path in (protocol.DEFAULT_LOG_FILE, protocol.DEFAULT_LOG_FILE + ".1"):
            if os.path.exists(path):
                os.unlink(path)


def test_fuzzed_execs_never_trace_or_hang(nppnet_exe, tmp_path, default_log):
    """A handful of whole execs with broken stdin and environment: an error object, promptly."""
    cases = [
        (call_env("ADD", "np2c-f1", "/nonexistent"), b"\xff\xfe\x00"),
        (call_env("ADD", "np2c-f2", "/nonexistent"), b"[" * 100000),
        (call_env("ADD", "np2c-f3", "/nonexistent"), b'{"cniVersion": "9.9.9"}'),
        (call_env("BOGUS", "np2c-f4", "/nonexistent"), b"{}"),
        (call_env("DEL", "np2c-f5", ""), b'{"cniVersion": "1.0.0", "name": "n", "subnet": "10.202.32.0/33"}'),
        ({"PATH": "/usr/bin:/bin"}, b""),  # no CNI_* at all
        (call_env("CHECK", "np2c-f6", "/proc/self/ns/net"), b'{"cniVersion": "0.3.1", "name": "n"}'),
        (
            call_env("GC", "", ""),
            json.dumps(
                {
                    "cniVersion": "1.1.0",
                    "name": "n",
                    "subnet": "10.202.32.0/24",
                    "cni.dev/valid-attachments": "nope",
                }
            ).encode(),
        ),
    ]
    for environ, stdin in cases:
        done = run([nppnet_exe], environ, stdin, tmp_path, timeout=30)
        assert done.rc == 1, done
        obj = json.loads(done.stdout)
        assert obj["code"] in PARSE_CODES | {4}, (environ.get("CNI_COMMAND"), stdin[:40], obj)
        assert "Traceback" not in done.stderr
