"""The container runtime's part: one plugin call (killed after its timeout), and a network config
run as a runtime runs it (the chain in order, DEL in reverse, prevResult handed on).

Standard library only, Python 3.9 syntax: this runs wherever the card runs.
"""

import json
import os
import signal
import subprocess
import time

from nppctl.conformance.node import NETNS_DIR

RUNTIME_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def vtuple(version):
    try:
        return tuple(int(x) for x in str(version).split("."))
    except ValueError:
        return (0,)


def tail(text, limit=400):
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


# -- one plugin call ------------------------------------------------------------------------------


class Call:
    """One exec of a plugin: what it printed, how it ended."""

    def __init__(self, ptype, command, rc, out, err, timed_out, seconds):
        self.ptype, self.command, self.rc = ptype, command, rc
        self.out, self.err, self.timed_out, self.seconds = out, err, timed_out, seconds

    @property
    def obj(self):
        try:
            value = json.loads(self.out)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def describe(self):
        what = f"{self.ptype} {self.command}"
        if self.timed_out:
            return f"{what} did not answer in {self.seconds:.0f}s (killed)"
        if self.rc == 0:
            return f"{what} exited 0"
        err = self.obj
        if err is not None and "code" in err:
            return "{} failed: code {}: {}".format(what, err.get("code"), err.get("msg"))
        shown = tail(self.out or self.err or "no output", 200)
        return f"{what} exited {self.rc} with no error object: {shown}"


def invoke(exe, ptype, env, stdin, timeout):
    """Run exe in a process group of its own; after timeout the whole group is killed."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [exe], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as err:
        return Call(ptype, env["CNI_COMMAND"], 127, "", f"cannot exec {exe}: {err.strerror}", False, 0.0)
    timed_out = False
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a child left the group and holds the pipes
            proc.kill()
            out, err = b"", b""
    seconds = time.monotonic() - started
    return Call(
        ptype, env["CNI_COMMAND"], proc.returncode, out.decode(errors="replace"),
        err.decode(errors="replace"), timed_out, seconds,
    )


# -- pods and the runtime's part ------------------------------------------------------------------


class Pod:
    def __init__(self, name, cid):
        self.name, self.cid, self.ifname = name, cid, "eth0"
        self.netns = os.path.join(NETNS_DIR, name)
        self.result = None
        self.made = []  # node links the ADD made (bridges excluded)

    def address(self):
        """The container interface's first address (CIDR) the result claims, or None."""
        for ip in (self.result or {}).get("ips") or []:
            if isinstance(ip, dict) and isinstance(ip.get("address"), str):
                return ip["address"]
        return None


class Outcome:
    def __init__(self, ok, calls, result=None):
        self.ok, self.calls, self.result = ok, calls, result

    @property
    def why(self):
        failed = [c for c in self.calls if c.rc != 0 or c.timed_out]
        if failed:
            return failed[-1].describe()
        if not self.ok:
            return self.calls[-1].describe() + " but printed no result" if self.calls else "no plugin ran"
        return "succeeded"


class Runtime:
    """The network config as a runtime runs it: the chain in order (DEL in reverse), prevResult."""

    def __init__(self, spec, conf, engine):
        self.engine = engine
        self.timeout = float(spec.get("timeout", 10))
        self.cni_path = list(spec["cni_path"])
        self.plugin = spec["plugin"]
        self.plugin_exe = os.path.join(spec["plugin_dir"], self.plugin)
        self.listed = "plugins" in conf
        self.conf = conf
        self.version = str(conf.get("cniVersion", ""))
        self.name = str(conf.get("name", ""))
        self.plugins = list(conf["plugins"]) if self.listed else [conf]

    def exe(self, ptype):
        if ptype == self.plugin:
            return self.plugin_exe
        for d in self.cni_path:
            path = os.path.join(d, str(ptype))
            if os.access(path, os.X_OK):
                return path
        return os.path.join(self.cni_path[0], str(ptype))

    def plugin_conf(self, plugin, **extra):
        conf = dict(plugin, name=self.name, cniVersion=self.version) if self.listed else dict(plugin)
        conf.update(extra)
        return conf

    def own_conf(self):
        """The config of the plugin under test as the runtime hands it (the chain's first otherwise)."""
        for p in self.plugins:
            if p.get("type") == self.plugin:
                return self.plugin_conf(p)
        return self.plugin_conf(self.plugins[0])

    def env(self, command, pod=None, netns=None):
        env = {
            "PATH": RUNTIME_PATH,
            "CNI_COMMAND": command,
            "CNI_PATH": ":".join(self.cni_path),
        }
        if pod is not None:
            env.update(
                CNI_CONTAINERID=pod.cid,
                CNI_NETNS=pod.netns if netns is None else netns,
                CNI_IFNAME=pod.ifname,
                CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=nppctl-conformance;K8S_POD_NAME={pod.name}",
            )
        return env

    def call(self, ptype, command, conf, pod=None, netns=None, raw=None):
        stdin = raw if raw is not None else json.dumps(conf).encode()
        c = invoke(self.exe(ptype), ptype, self.env(command, pod, netns), stdin, self.timeout)
        self.engine.note(c)
        return c

    def add(self, pod):
        calls, prev = [], None
        for p in self.plugins:
            conf = self.plugin_conf(p, prevResult=prev) if prev is not None else self.plugin_conf(p)
            c = self.call(p.get("type"), "ADD", conf, pod)
            calls.append(c)
            if c.rc != 0 or c.timed_out or c.obj is None:
                return Outcome(False, calls)
            prev = c.obj
        pod.result = prev
        return Outcome(True, calls, prev)

    def _with_prev(self, p, pod):
        if pod.result is not None and vtuple(self.version) >= (0, 4, 0):
            return self.plugin_conf(p, prevResult=pod.result)
        return self.plugin_conf(p)

    def delete(self, pod, netns=None):
        calls = []
        for p in reversed(self.plugins):
            c = self.call(p.get("type"), "DEL", self._with_prev(p, pod), pod, netns)
            calls.append(c)
            if c.rc != 0 or c.timed_out:
                return Outcome(False, calls)
        return Outcome(True, calls)

    def check(self, pod):
        calls = []
        for p in self.plugins:
            c = self.call(p.get("type"), "CHECK", self._with_prev(p, pod), pod)
            calls.append(c)
            if c.rc != 0 or c.timed_out:
                return Outcome(False, calls)
        return Outcome(True, calls)

    def each(self, command, **extra):
        calls = []
        for p in self.plugins:
            c = self.call(p.get("type"), command, self.plugin_conf(p, **extra))
            calls.append(c)
            if c.rc != 0 or c.timed_out:
                return Outcome(False, calls)
        return Outcome(True, calls)
