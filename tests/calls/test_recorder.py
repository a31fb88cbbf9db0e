"""The recorder in front of a plugin (nppctl/nodeside/recorder.sh), in a container of the test node image:
the caller gets what the plugin gives, byte for byte; every call becomes one record with every field;
streams are capped; the folder is pruned; an unwritable folder changes nothing for the caller."""

from __future__ import annotations

import pytest

from nppctl.nodeside.calls import CALLS_DIR, CAP, KEEP, REAL_DIR, parse
from tests.calls.conftest import sh

ODD_STDIN = b'{"cniVersion":"1.0.0","name":"t"}\0\xff\xfe raw \\n\n\n\n'
CNI_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee",
    "CNI_NETNS": "/var/run/netns/p1",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1",
    "CNI_PATH": "/opt/cni/bin",
}


@pytest.mark.parametrize("variant", [
    {"RC": "0"},
    {"RC": "3", "ERR_KIB": "300"},  # non-zero exit, stderr far past the record's cap and a pipe's size
    {"RC": "1", "OUT_KIB": "200"},
    {"RC": "255"},
])
def test_the_caller_gets_the_plugins_bytes_and_exit_code(box, variant):
    env = {**CNI_ENV, **variant}
    direct = box.call("/direct/echo", ODD_STDIN, env)
    wrapped = box.call("/opt/cni/bin/echo", ODD_STDIN, env)
    assert direct.exit == int(variant["RC"])
    assert wrapped == direct
    assert direct.stdout.startswith(ODD_STDIN + b"\0\xff\xfe odd\n\n\0\n\n")


def test_a_binary_plugin_sees_the_callers_argv0_environment_and_fds(box):
    """bash as the plugin: its program comes on stdin; it tells what a plugin can see of its call."""
    program = (b'printf "argv0=%s\\n" "$0"; tr "\\0" "\\n" </proc/$$/environ | sort; '
               b'fds=(/proc/$$/fd/*); echo "${fds[@]##*/}"; pwd\n')
    env = {**CNI_ENV, "SHLVL": "7", "PWD": "/tmp/caller", "OLDPWD": "/x", "LANG": "C.UTF-8"}
    direct = box.call("/direct/shplug", program, env)
    wrapped = box.call("/opt/cni/bin/shplug", program, env)
    assert wrapped.exit == direct.exit == 0, wrapped
    seen = wrapped.stdout.decode().splitlines()
    assert seen[0] == "argv0=/opt/cni/bin/shplug"  # the caller's argv[0], not the real plugin's path
    assert direct.stdout.decode().splitlines()[1:] == seen[1:]  # environment, open fds, cwd
    assert "SHLVL=7" in seen and "PWD=/tmp/caller" in seen and "OLDPWD=/x" in seen
    assert not any(line.startswith("_=") for line in seen)


def test_every_field_is_recorded(box):
    box.clear()
    wrapped = box.call("/opt/cni/bin/echo", ODD_STDIN, {**CNI_ENV, "RC": "3"})
    (name,) = box.records()
    call = parse(box.record(name), name)
    assert call.command == "ADD" and call.containerid == "c0ffee" and call.netns == "/var/run/netns/p1"
    assert call.ifname == "eth0" and call.args == CNI_ENV["CNI_ARGS"] and call.path == "/opt/cni/bin"
    assert call.pod == "default/web-1" and call.type == "echo" and call.caller == "bash"
    assert call.exit == 3 and call.pid > 0 and 0 < call.duration_ms < 5000
    assert call.stdin == ODD_STDIN.decode("utf-8", "replace")
    assert call.stdout.encode("utf-8") == wrapped.stdout.decode("utf-8", "replace").encode("utf-8")
    assert call.stderr.startswith("stderr \0") and not call.truncated
    assert call.sizes == {"stdin": len(ODD_STDIN), "stdout": len(wrapped.stdout),
                          "stderr": len(wrapped.stderr)}
    assert name == f"{int(round(call.start * 1e6)):016d}-{call.pid}.call"


def test_streams_are_capped_in_the_record_not_for_the_caller(box):
    box.clear()
    wrapped = box.call("/opt/cni/bin/echo", b"x" * (CAP + 10), {**CNI_ENV, "OUT_KIB": "100", "ERR_KIB": "70"})
    assert len(wrapped.stdout) > 100 * 1024 + CAP and len(wrapped.stderr) > 70 * 1024
    (name,) = box.records()
    call = parse(box.record(name), name)
    assert call.truncated == ["stdin", "stdout", "stderr"]
    assert call.sizes["stdout"] == len(wrapped.stdout) and call.sizes["stderr"] == len(wrapped.stderr)
    assert call.stdin == "x" * CAP and len(call.stdout) == CAP


def test_the_folder_keeps_the_newest_records(box):
    """About one call in a hundred prunes: to KEEP records, and the scratch files."""
    box.clear()
    sh(box.container, f'mkdir -p {CALLS_DIR} && cd {CALLS_DIR} && '
       f'for i in $(seq 1000 {1000 + KEEP + 49}); do : > 100000000000$i-1.call; done')
    code, out = sh(box.container, (
        f'cd {CALLS_DIR}; for i in $(seq 3000); do CNI_COMMAND=VERSION /opt/cni/bin/badnet </dev/null '
        f'>/dev/null || exit 9; n=(*.call); [ ${{#n[@]}} -le {KEEP} ] && {{ echo $i; exit 0; }}; done; '
        'exit 1'))
    assert code == 0, out
    names = box.records()
    assert len(names) == KEEP, len(names)
    fakes = [n for n in names if n.startswith("100000000000")]
    made = [f"100000000000{i}-1.call" for i in range(1000, 1000 + KEEP + 50)]
    assert 0 < len(fakes) < KEEP and fakes == made[-len(fakes):]  # the oldest went
    assert len(names) - len(fakes) == int(out)  # every real call's record stayed
    code, out = sh(box.container, "ls -A /dev/shm | grep -c '^\\.nppctl-call-'")
    assert int(out or b"0") <= 3, out  # the pruning call's own scratch files at most


def test_an_unwritable_record_folder_changes_nothing_for_the_caller(readonly_box):
    box = readonly_box
    for variant in ({"RC": "0"}, {"RC": "4", "ERR_KIB": "80"}):
        env = {**CNI_ENV, **variant}
        assert box.call("/opt/cni/bin/echo", ODD_STDIN, env) == box.call("/direct/echo", ODD_STDIN, env)
    assert box.records() == []
    code, out = sh(box.container, f"ls {REAL_DIR}")
    assert code == 0 and b"echo" in out
    # which way the recorder went: kept the streams in /dev/shm (and failed to write the record), or,
    # /dev/shm read-only too, exec'd the plugin directly
    code, out = sh(box.container, "touch /dev/shm/probe 2>/dev/null && w=yes || w=no; "
                   "echo $w $(ls -A /dev/shm | grep -c '^\\.nppctl-call-')")
    writable, scratch = out.decode().split()
    assert (writable, int(scratch) > 0) == (("yes", True) if box.mode == "records" else ("no", False)), out
