"""The CNI protocol: environment, stdin, versions, result shapes, error objects, one log line.

`run(commands)` is the whole life of one plugin call: it reads CNI_* and stdin, checks them,
calls commands[CNI_COMMAND](call, conf), prints the result or the error object, appends the
log line and returns the exit status. Nothing escapes as a traceback.
"""

import sys
import time

from . import fs, jsonio
from .errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INTERNAL,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    CNIError,
)

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]
DEFAULT_LOG_FILE = "/var/log/nppnet.log"
# the first version each command exists in
SINCE = {"ADD": "0.3.0", "DEL": "0.3.0", "CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
CONTAINER_COMMANDS = ("ADD", "DEL", "CHECK")


def at_least(version, minimum):
    return SUPPORTED_VERSIONS.index(version) >= SUPPORTED_VERSIONS.index(minimum)


class Call:
    """The CNI_* environment of one call (unchecked until validate())."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")

    def __init__(self, environ=None):
        get = fs.getenv if environ is None else environ.get
        self.command = get("CNI_COMMAND", "")
        self.container_id = get("CNI_CONTAINERID", "")
        self.netns = get("CNI_NETNS", "")
        self.ifname = get("CNI_IFNAME", "")
        self.args = get("CNI_ARGS", "")
        self.path = get("CNI_PATH", "")

    def validate(self):
        """CNIError(4) for a missing or malformed variable the command needs."""
        if self.command not in CONTAINER_COMMANDS:
            return
        from .names import valid_id, valid_ifname  # not loaded by a VERSION

        if not self.container_id:
            raise CNIError(INVALID_ENVIRONMENT, "CNI_CONTAINERID is missing")
        if not valid_id(self.container_id):
            raise CNIError(
                INVALID_ENVIRONMENT,
                f"CNI_CONTAINERID {self.container_id!r} is invalid: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
            )
        if not self.ifname:
            raise CNIError(INVALID_ENVIRONMENT, "CNI_IFNAME is missing")
        if not valid_ifname(self.ifname):
            raise CNIError(
                INVALID_ENVIRONMENT,
                f"CNI_IFNAME {self.ifname!r} is not a valid interface name "
                "(1-15 bytes, no '/', ':' or whitespace, "
                "not '.' or '..')",
            )
        if self.command != "DEL" and not self.netns:
            raise CNIError(INVALID_ENVIRONMENT, "CNI_NETNS is missing")


def decode_config(raw):
    """stdin bytes -> the network configuration dict; CNIError(6) when it is not a JSON object."""
    try:
        conf = jsonio.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CNIError(DECODE_FAILURE, f"cannot decode the network configuration on stdin: {err}") from None
    if not isinstance(conf, dict):
        raise CNIError(DECODE_FAILURE, "the network configuration on stdin must be a JSON object")
    return conf


def config_version(conf, command):
    """The config's cniVersion; CNIError(1) when unsupported or too old for the command."""
    version = conf.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI version %s" % (jsonio.dumps(version) if version is not None else "(missing)"),
            "supported versions: {}".format(", ".join(SUPPORTED_VERSIONS)),
        )
    since = SINCE.get(command)
    if since and not at_least(version, since):
        raise CNIError(
            INCOMPATIBLE_VERSION,
            f"config version {version} does not allow {command} (needs {since} or later)",
        )
    return version


def version_answer(conf):
    """The VERSION reply: the supported versions; cniVersion echoes the request when supported."""
    requested = conf.get("cniVersion") if conf else None
    version = requested if requested in SUPPORTED_VERSIONS else LATEST
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def shape_result(version, interfaces, ips, routes):
    """An ADD result for version: ips[].version before 1.0.0, interfaces[].mtu only in 1.1.0."""
    old = not at_least(version, "1.0.0")
    with_mtu = version == "1.1.0"
    return {
        "cniVersion": version,
        "interfaces": [{k: v for k, v in i.items() if with_mtu or k != "mtu"} for i in interfaces],
        "ips": [dict(ip, version="4") if old else ip for ip in ips],
        "routes": routes,
        "dns": {},
    }


def error_object(version, err, conf=None):
    """The error JSON; its cniVersion is the config's when that one is supported."""
    if version is None and isinstance(conf, dict) and conf.get("cniVersion") in SUPPORTED_VERSIONS:
        version = conf["cniVersion"]
    return {"cniVersion": version or LATEST, "code": err.code, "msg": err.msg, "details": err.details}


def log_file_of(conf):
    path = conf.get("logFile") if isinstance(conf, dict) else None
    return path if isinstance(path, str) and path.startswith("/") and "\0" not in path else DEFAULT_LOG_FILE


def _outcome(result):
    if result is None:
        return "ok"
    ips = result.get("ips") if isinstance(result, dict) else None
    if ips:
        return "ok " + ",".join(ip["address"] for ip in ips)
    return "ok"


def _log(call, raw, conf, outcome, started):
    from . import log

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    config = jsonio.dumps(conf) if conf is not None else raw.decode("utf-8", "backslashreplace").strip()
    q = jsonio.dumps
    line = "{}Z {} container={} netns={} ifname={} args={} outcome={} duration_ms={:.1f} config={}".format(
        stamp,
        call.command or "-",
        q(call.container_id),
        q(call.netns),
        q(call.ifname),
        q(call.args),
        q(outcome),
        (time.monotonic() - started) * 1000.0,
        config,
    )
    log.append(log_file_of(conf), line)


def run(commands, environ=None, stdin=None, stdout=None):
    """One plugin call; returns the exit status (0 ok, 1 CNI error). commands: {CNI_COMMAND:
    function}, or a function that returns it (called unless the call is a VERSION)."""
    started = time.monotonic()
    call = Call(environ)
    out = stdout or sys.stdout
    raw, conf, version, status = b"", None, None, 0
    try:
        raw = (stdin or sys.stdin.buffer).read()
        if call.command == "VERSION":
            try:  # stdin is optional here: {"cniVersion": ...} at most
                conf = decode_config(raw) if raw.strip() else None
            except CNIError:
                pass
            result = version_answer(conf)
        else:
            try:  # decoded first so that even an environment error is logged where logFile says
                conf, undecodable = decode_config(raw), None
            except CNIError as err:
                undecodable = err
            if callable(commands):  # loaded only by a call that runs one (not by a VERSION)
                commands = commands()
            if call.command not in commands:
                raise CNIError(
                    INVALID_ENVIRONMENT,
                    "CNI_COMMAND {!r} is not one of VERSION, {}".format(call.command, ", ".join(commands)),
                )
            call.validate()
            if undecodable is not None:
                raise undecodable
            version = config_version(conf, call.command)
            result = commands[call.command](call, conf, version)
        outcome = _outcome(result)
        if result is not None:
            out.write(jsonio.dumps(result))
    except CNIError as err:
        status, outcome = 1, f"error {err.code}: {err.msg}"
        _emit(out, error_object(version, err, conf))
    except Exception as err:  # noqa: BLE001 - never a traceback: an error object instead
        status = 1
        wrapped = CNIError(INTERNAL, f"{type(err).__name__}: {err}")
        outcome = f"error {wrapped.code}: {wrapped.msg}"
        _emit(out, error_object(version, wrapped, conf))
    try:
        out.flush()
    except Exception:  # noqa: BLE001 - a closed stdout must not become a traceback
        pass
    try:
        _log(call, raw, conf, outcome, started)
    except Exception:  # noqa: BLE001 - nor a config the log line cannot hold
        pass
    return status


def _emit(out, obj):
    try:
        out.write(jsonio.dumps(obj))
    except Exception:  # noqa: BLE001 - stdout closed by the caller: nothing left to tell it
        pass


def invalid(key, why):
    """The error for a config value that cannot be used: code 7, naming the key."""
    return CNIError(INVALID_CONFIG, f"invalid config: {key} {why}")


def main(commands):
    """The executable's whole life: run the call, then leave without the interpreter's clean-up
    (nothing is left to flush or close, and skipping it saves a noticeable part of a call)."""
    status = run(commands)
    try:
        sys.stdout.flush()
    finally:
        fs._exit(status)
