"""The record format, the Call both sides share, the spec verdicts and the recorder's files: no Docker."""

from __future__ import annotations

import json
import re

import pytest

from nppctl.access.recorder import plain_files, recorder_dirs, recorder_files, recorder_leftovers
from nppctl.errors import NppctlError
from nppctl.lab.calls import message, verdicts
from nppctl.nodeside.calls import CALLS_DIR, CAP, REAL_DIR, Call, parse, read


def record(fields: dict[str, bytes], full: dict[str, int] | None = None, end: bool = True) -> bytes:
    """A record framed as recorder.sh frames it."""
    out = b"nppctl-call 1\n"
    for key, value in fields.items():
        out += b"%s %d %d\n%s\n" % (key.encode(), len(value), (full or {}).get(key, len(value)), value)
    return out + (b"end 0 0\n" if end else b"")


FIELDS = {"start": b"1796677562473415", "duration_us": b"90161", "type": b"badnet", "pid": b"23",
          "caller": b"containerd", "command": b"ADD", "containerid": b"c0ffee", "netns": b"/var/run/netns/p",
          "ifname": b"eth0", "args": b"IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web-1",
          "path": b"/opt/cni/bin", "exit": b"1", "stdin": b'{"cniVersion":"1.0.0"}',
          "stdout": b"line\n\n\0\xff", "stderr": b"x" * 10}


def test_a_record_parses_into_a_call_and_back_through_a_dict():
    call = parse(record(FIELDS, {"stderr": 99999}), "1796677562473415-23.call")
    assert call.start == pytest.approx(1796677562.473415) and call.duration_ms == pytest.approx(90.161)
    assert (call.command, call.containerid, call.ifname) == ("ADD", "c0ffee", "eth0")
    assert (call.exit, call.pid) == (1, 23)
    assert call.stdout == "line\n\n\0\ufffd"  # bytes that are not UTF-8 become U+FFFD
    assert call.truncated == ["stderr"] and call.sizes == {"stdin": 22, "stdout": 8, "stderr": 99999}
    assert call.pod == "team/web-1" and call.cni_args["IgnoreUnknown"] == "1"
    assert Call.from_dict(json.loads(json.dumps(call.to_dict()))) == call
    assert Call.from_dict({**call.to_dict(), "from_a_newer_nppctl": 1}) == call


@pytest.mark.parametrize("data", [
    record(FIELDS, end=False),  # still being written
    b"nppctl-call 2\n",
    record(FIELDS)[:record(FIELDS).index(b"K8S_POD_NAME=")] + b"\nend 0 0\n",  # a field cut short
    b"",
])
def test_a_record_that_is_not_whole_is_refused(data):
    with pytest.raises(ValueError):
        parse(data, "r.call")


def test_read_skips_incomplete_records_and_filters_by_pod(tmp_path):
    (tmp_path / "1796677562473415-23.call").write_bytes(record(FIELDS))
    (tmp_path / "1796677562473416-24.call").write_bytes(record(FIELDS, end=False))
    (tmp_path / "1796677562473417-25.call").write_bytes(record({**FIELDS, "args": b""}))
    (tmp_path / ".nppctl-call-1796677562473418-26.out").write_bytes(b"scratch")
    assert [c.record for c in read(str(tmp_path))] == ["1796677562473415-23.call", "1796677562473417-25.call"]
    assert [c.record for c in read(str(tmp_path), pod="web-1")] == ["1796677562473415-23.call"]
    assert [c.record for c in read(str(tmp_path), pod="team/web-1")] == ["1796677562473415-23.call"]
    assert read(str(tmp_path), pod="other") == []
    after = read(str(tmp_path), since="1796677562473415-23.call")
    assert [c.record for c in after] == ["1796677562473417-25.call"]


def call(command="ADD", exit=0, stdout="", stdin='{"cniVersion":"1.0.0"}', **more) -> Call:
    return Call(record="r", start=0.0, duration_ms=1.0, command=command, exit=exit, stdout=stdout,
                stdin=stdin, **more)


OK_ADD = '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.244.1.2/24"}]}'


@pytest.mark.parametrize("the_call, broken, section", [
    (call(exit=1, stdout="no address left"), "stdout is not JSON", "Section 2: Execution Protocol, Errors"),
    (call(exit=1, stdout='{"msg":"full"}'), "error object without 'code'", "Section 5: Result Types, Error"),
    (call(exit=1, stdout='{"code":7}'), "error object without 'msg'", "Section 5: Result Types, Error"),
    (call(exit=1, stdout='{"code":"7","msg":"x"}'), "error code '7' is not a number", "Error"),
    (call(exit=2, stdout="", stderr="boom"), "exit 2 with nothing on stdout", "Errors"),
    (call(stdout='{"code":11,"msg":"again"}'), "exit 0 with an error object", "Errors"),
    (call(stdout='{"interfaces":[],"ips":[]}'), "ADD result without `cniVersion`", "Success"),
    (call(stdout='{"cniVersion":"0.4.0","interfaces":[],"ips":[]}'), "is not the config's '1.0.0'",
     "Success"),
    (call(stdout='{"cniVersion":"1.0.0"}'), "ADD result without an `ips` list", "Success"),
    (call(stdout='{"cniVersion":"1.0.0","ips":{}, "interfaces":[]}'), "`ips` is not a list", "Success"),
    (call(stdout="[]"), "not an object", "Success"),
    (call("VERSION", stdout='{"cniVersion":"1.0.0"}'), "without a `supportedVersions` list",
     "Section 5: Result Types, Version"),
    (call("VERSION", stdout=""), "VERSION succeeded with nothing on stdout", "Version"),
])
def test_verdicts_name_the_broken_requirement_and_its_section(the_call, broken, section):
    found = verdicts(the_call)
    assert any(broken in v.requirement and v.section.endswith(section) for v in found), found
    assert all("CNI SPEC.md Section" in str(v) for v in found)


@pytest.mark.parametrize("the_call", [
    call(stdout=OK_ADD),
    call(exit=1, stdout='{"cniVersion":"1.0.0","code":7,"msg":"bad config"}'),
    call("DEL", stdout=""),
    call("CHECK", stdout=""),
    call("VERSION", stdout='{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'),
    call(stdout='{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.2/24"}}', stdin='{"cniVersion":"0.2.0"}'),
    call(exit=1, stdout="x" * 10, truncated=["stdout"]),  # cut: nothing can be said of it
])
def test_a_call_that_keeps_the_spec_gets_no_verdict(the_call):
    assert verdicts(the_call) == []


def test_the_failure_message_is_the_plugins_own():
    assert message(call(exit=1, stdout='{"code":7,"msg":"bad","details":"no subnet"}')) == "bad: no subnet"
    assert message(call(exit=1, stdout="", stderr="trace\nbadnet: cannot add\n")) == "badnet: cannot add"
    assert message(call(exit=1, stdout="no address left\n")) == "no address left"


def test_the_recorder_files_put_the_plugin_aside_and_the_recorder_in_its_place():
    files = recorder_files("badnet", b"\x7fELF plugin")
    assert list(files) == [f"{REAL_DIR}/badnet", "/opt/cni/bin/badnet"]  # the real one written first
    assert files[f"{REAL_DIR}/badnet"] == (b"\x7fELF plugin", 0o755)
    script, mode = files["/opt/cni/bin/badnet"]
    assert mode == 0o755 and script.startswith(b"#!/bin/bash\n")
    assert not re.search(rb"@[A-Z]+@", script)  # every place filled
    assert f"real={REAL_DIR}/badnet\n".encode() in script and f"dir={CALLS_DIR}\n".encode() in script
    assert f"cap={CAP}\n".encode() in script
    assert plain_files("badnet", b"x") == {"/opt/cni/bin/badnet": (b"x", 0o755)}
    assert recorder_leftovers("badnet") == [f"{REAL_DIR}/badnet"] and CALLS_DIR in recorder_dirs()
    for bad in ("../etc/passwd", "a b", "", "x;rm"):
        with pytest.raises(NppctlError):
            recorder_files(bad, b"x")
