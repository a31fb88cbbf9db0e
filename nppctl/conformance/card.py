"""The conformance card's engine: plays the container runtime against one plugin, check by check.

It runs where the "node" is: in the throwaway sandbox on the host (launch.py starts it under
`unshare --mount --net --pid --fork --mount-proc`, and it makes its private mounts itself) or
inside a lab node. So it is one file, standard library only, Python 3.9 syntax, run as
`python3 - SPEC_JSON` with this source on stdin; it prints the card as one JSON line. What it
needs besides: iproute2's `ip` (and `mount` in the sandbox). Pings use nppctl/nodeside/icmp.py,
its source passed in SPEC.

SPEC: plugin (its CNI type), plugin_dir, cni_path (dirs), conf (a conflist or a single conf; or
conf_dir: the first file there), bridge ({"name", "address"} made first), parallel, timeout (per
call), sandbox (make the private mounts), icmp (source), prefix (netns names), isolate (in a node:
the network name, bridge, dataDir and subnet the config is given instead of its own; see isolated()).

Every check is one function `check_<id>` returning (result, detail); CHECKS lists them in order with
the SPEC.md section and the requirement in our own words. A check that needs an earlier one's pod
says so and fails; a check that raises fails with the error; each plugin call is killed (its whole
process group) after `timeout` seconds, so the card always finishes.
"""

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

RUNTIME_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_DIR = "/var/run/netns"
# where CNI plugins write: fresh tmpfs in the sandbox (everything else is the host's, read-only)
SANDBOX_DIRS = ("/tmp", "/run", "/var/lib/cni", "/var/cache", "/var/log", "/dev/shm", "/etc/cni")
OWN_FS = ("/proc", "/sys")  # the sandbox's own proc (unshare --mount-proc) and sysfs
STAGE = "/run/nppctl-conformance"  # inside the sandbox's own /run
HOST_LOCAL_DIR = "/var/lib/cni/networks"
NPPNET_DIR = "/var/lib/cni/nppnet"
BAD_VERSION = "99.0.0"
UNKNOWN_COMMAND = "NPPCTL-UNKNOWN"
KEEP = 8  # stderr texts and log lines kept for a failing check: the last ones

# id, SPEC.md section, the requirement in a sentence of our own
CHECKS = [
    ("version", "§2 CNI operations: VERSION",
     "VERSION answers with the versions the plugin supports; a runtime runs a config only in one of them."),
    ("add", "§2 CNI operations: ADD",
     "ADD attaches the container to the network and exits 0 with a result on stdout."),
    ("add-result", "§5 Result Types: Success",
     "The ADD result is in the config's cniVersion: named interfaces, CIDR addresses whose interface "
     "index points into interfaces, CIDR route destinations, the container interface with its sandbox."),
    ("add-truth", "§5 Result Types: Success",
     "What the result claims (interfaces, MACs, addresses, routes) is what exists in the container "
     "and on the node."),
    ("connectivity", "§2 CNI operations: ADD",
     "An added container is on the network: two pods reach each other and their gateway."),
    ("check", "§2 CNI operations: CHECK; §3 Checking an attachment",
     "CHECK on an attachment as ADD left it exits 0."),
    ("check-detects", "§2 CNI operations: CHECK",
     "CHECK fails with an error when the container's networking is not as ADD left it (here: its "
     "address removed)."),
    ("del", "§2 CNI operations: DEL",
     "DEL of an added container exits 0."),
    ("del-cleans", "§2 CNI operations: DEL",
     "DEL undoes what ADD did: the container interface, the links ADD made on the node and the "
     "address reservation are gone."),
    ("del-idempotent", "§2 CNI operations: DEL; §3 Deleting an attachment",
     "DEL of an attachment already deleted succeeds: DEL completes when its resources are missing."),
    ("del-netns-gone", "§2 CNI operations: DEL",
     "DEL succeeds when the container's network namespace no longer exists."),
    ("parallel-add", "§3 Lifecycle & Ordering",
     "ADDs of different containers may run at once: each succeeds with an address of its own, and "
     "their DELs leave nothing behind."),
    ("error-object", "§5 Result Types: Error",
     "On failure the plugin prints an error object (cniVersion, code, msg) on stdout and exits "
     "non-zero; stderr is for logs, not crashes."),
    ("unknown-command", "§2 Errors; §5 Error (code 4)",
     "An unknown CNI_COMMAND is an invalid environment variable: error code 4."),
    ("bad-version", "§2 VERSION; §5 Error (code 1)",
     "A config in a cniVersion the plugin does not support is refused with code 1 (incompatible "
     "CNI version)."),
    ("gc", "SPEC 1.1.0 §2 CNI operations: GC",
     "GC releases what belongs to attachments missing from cni.dev/valid-attachments and keeps the "
     "listed ones."),
    ("status", "SPEC 1.1.0 §2 CNI operations: STATUS",
     "STATUS exits 0 when the plugin is ready to service ADD."),
]


class Skip(Exception):
    """A check that does not apply: the reason."""


def vtuple(version):
    try:
        return tuple(int(x) for x in str(version).split("."))
    except ValueError:
        return (0,)


def _run(argv, check=False, timeout=30, data=None):
    p = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip()
        raise RuntimeError("`{}` failed: {}".format(" ".join(argv), err))
    return p


def _ip_json(*args):
    p = _run(["ip", "-j", *args])
    if p.returncode != 0 or not p.stdout.strip():
        return []
    return json.loads(p.stdout)


def _tail(text, limit=400):
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
        shown = _tail(self.out or self.err or "no output", 200)
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


# -- what the node and the pods hold ---------------------------------------------------------------


def node_links():
    """name -> kind of every link of the node."""
    links = {}
    for link in _ip_json("-d", "link", "show"):
        links[link.get("ifname")] = (link.get("linkinfo") or {}).get("info_kind") or ""
    return links


def pod_links(pod):
    """name -> {"mac", "mtu", "addrs": [ip_interface]} inside the pod's namespace."""
    found = {}
    for link in _ip_json("-n", pod.name, "addr", "show"):
        addrs = []
        for a in link.get("addr_info", []):
            try:
                addrs.append(ipaddress.ip_interface("{}/{}".format(a["local"], a["prefixlen"])))
            except (KeyError, ValueError):
                pass
        found[link.get("ifname")] = {"mac": link.get("address"), "mtu": link.get("mtu"), "addrs": addrs}
    return found


def pod_routes(pod):
    routes = []
    for family in ("-4", "-6"):
        for r in _ip_json("-n", pod.name, family, "route", "show"):
            dst = r.get("dst")
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            try:
                routes.append((ipaddress.ip_network(dst, strict=False), r.get("gateway")))
            except ValueError:
                pass
    return routes


def netns_add(names):
    if names:
        batch = "".join(f"netns add {n}\n" for n in names).encode()
        _run(["ip", "-batch", "-"], check=True, data=batch)
        batch = "".join(f"-n {n} link set lo up\n" for n in names).encode()
        _run(["ip", "-batch", "-"], data=batch)


def netns_del(names):
    if names:
        _run(["ip", "-force", "-batch", "-"], data="".join(f"netns del {n}\n" for n in names).encode())


# -- the engine -------------------------------------------------------------------------------------


class Engine:
    def __init__(self, spec):
        self.spec = spec
        self.prefix = spec.get("prefix", "nppt")
        self.tag = os.urandom(3).hex()
        conf = spec.get("conf")
        if conf is None:
            conf = _first_conf(spec.get("conf_dir", "/etc/cni/net.d"))
        if spec.get("isolate"):
            conf = isolated(conf, spec["isolate"])
        self.rt = Runtime(spec, conf, self)
        self.parallel = int(spec.get("parallel", 16))
        self.pods = {}
        self.a = None
        self._lock = threading.Lock()
        self._calls = []
        self._icmp = None
        self.logs = sorted({p["logFile"] for p in self.rt.plugins if isinstance(p.get("logFile"), str)})

    # bookkeeping -----------------------------------------------------------------------------
    def note(self, call):
        with self._lock:
            self._calls.append(call)

    def pod(self, tag, make=True):
        name = f"{self.prefix}-{tag}"
        pod = Pod(name, f"{self.prefix}-{self.tag}-{tag}")
        if make:
            netns_add([name])
        self.pods[name] = pod
        return pod

    def forget(self, pod):
        netns_del([pod.name])
        self.pods.pop(pod.name, None)

    def add(self, pod):
        before = node_links()
        out = self.rt.add(pod)
        after = node_links()
        pod.made = sorted(n for n, kind in after.items() if n not in before and kind != "bridge")
        return out

    def leftovers(self, pod):
        """What DEL should have removed but did not: descriptions."""
        left = []
        links = node_links()
        left += [f"node link {n}" for n in pod.made if n in links]
        if os.path.exists(pod.netns):
            inside = pod_links(pod)
            if pod.ifname in inside:
                left.append(f"{pod.ifname} in the pod's namespace")
        left += [f"reservation {r}" for r in self.reservations(pod)]
        return left

    def stores(self):
        dirs = []
        for p in self.rt.plugins:
            ipam = p.get("ipam") if isinstance(p.get("ipam"), dict) else {}
            if ipam.get("type") == "host-local":
                dirs.append(os.path.join(str(ipam.get("dataDir") or HOST_LOCAL_DIR), self.rt.name))
            if p.get("type") == "nppnet":
                dirs.append(os.path.join(str(p.get("dataDir") or NPPNET_DIR), self.rt.name))
        return dirs

    def reservations(self, pod):
        found = []
        for d in self.stores():
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for n in names:
                try:
                    with open(os.path.join(d, n), "rb") as f:
                        first = f.read(512).decode(errors="replace").splitlines()
                except OSError:
                    continue
                if first and first[0].strip() == pod.cid:
                    found.append(os.path.join(d, n))
        return found

    # running ---------------------------------------------------------------------------------
    def run(self):
        started = time.monotonic()
        rows = []
        try:
            for cid, section, requirement in CHECKS:
                rows.append(self.one(cid, section, requirement))
        finally:
            self.cleanup()
        counts = {k: sum(1 for r in rows if r["result"] == k) for k in ("pass", "fail", "skip")}
        return {
            "plugin": self.rt.plugin,
            "cniVersion": self.rt.version,
            "network": self.rt.name,
            "chain": [p.get("type") for p in self.rt.plugins],
            "checks": rows,
            "passed": counts["pass"],
            "failed": counts["fail"],
            "skipped": counts["skip"],
            "seconds": round(time.monotonic() - started, 2),
        }

    def one(self, cid, section, requirement):
        with self._lock:
            self._calls = []
        offsets = {}
        for path in self.logs:
            try:
                offsets[path] = os.path.getsize(path)
            except OSError:
                offsets[path] = 0
        started = time.monotonic()
        try:
            result, detail = getattr(self, "check_" + cid.replace("-", "_"))()
        except Skip as why:
            result, detail = "skip", str(why)
        except Exception as err:  # the card always finishes: an engine error fails this check
            result, detail = "fail", f"the check itself failed: {type(err).__name__}: {err}"
        row = {
            "id": cid,
            "result": result,
            "detail": detail,
            "section": section,
            "requirement": requirement,
            "seconds": round(time.monotonic() - started, 3),
        }
        if result == "fail":
            errs = [f"{c.ptype} {c.command}: {_tail(c.err, 2000)}" for c in self._calls if c.err.strip()]
            row["stderr"] = errs[-KEEP:]
            lines = []
            for path, offset in offsets.items():
                try:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        lines += f.read(200000).decode(errors="replace").splitlines()
                except OSError:
                    pass
            row["log"] = lines[-KEEP:]
        return row

    def cleanup(self):
        for pod in list(self.pods.values()):
            try:
                if os.path.exists(pod.netns) or pod.result is not None:
                    self.rt.delete(pod)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        netns_del(list(self.pods))

    # the checks ------------------------------------------------------------------------------
    def check_version(self):
        seen, bad = [], []
        for ptype in dict.fromkeys(p.get("type") for p in self.rt.plugins):
            c = self.rt.call(ptype, "VERSION", {"cniVersion": self.rt.version})
            info = c.obj
            versions = info.get("supportedVersions") if info else None
            if c.rc != 0 or c.timed_out or not isinstance(versions, list):
                shown = f"{ptype} VERSION printed {c.out[:200]!r}"
                bad.append(c.describe() if (c.rc or c.timed_out) else shown)
            elif self.rt.version not in versions:
                bad.append(f"{ptype} supports {', '.join(map(str, versions))}, not {self.rt.version}")
            else:
                seen.append(f"{ptype}: {', '.join(versions)}")
        if bad:
            return "fail", "; ".join(bad)
        return "pass", "; ".join(seen)

    def check_add(self):
        self.a = self.pod("a")
        out = self.add(self.a)
        if not out.ok:
            return "fail", out.why
        return "pass", f"{self.a.address() or 'no address'} in {self.a.netns}"

    def _need_a(self):
        if self.a is None or self.a.result is None:
            return "the pod of `add` (its ADD did not succeed)"
        return None

    def check_add_result(self):
        missing = self._need_a()
        if missing:
            return "fail", f"no result to check: {missing}"
        if vtuple(self.rt.version) < (0, 3, 0):
            raise Skip(f"result checks cover cniVersion 0.3.0 and later; the config is {self.rt.version}")
        problems = result_problems(self.a.result, self.rt.version, self.a)
        if problems:
            return "fail", "; ".join(problems)
        return "pass", "{} interfaces, {} ips, {} routes".format(
            *(len(self.a.result.get(k) or []) for k in ("interfaces", "ips", "routes"))
        )

    def check_add_truth(self):
        missing = self._need_a()
        if missing:
            return "fail", f"nothing to compare: {missing}"
        problems = truth_problems(self.a.result, self.a)
        if problems:
            return "fail", "; ".join(problems)
        return "pass", "interfaces, addresses and routes as the result claims"

    def check_connectivity(self):
        missing = self._need_a()
        if missing:
            return "fail", f"needs {missing}"
        b = self.pod("b")
        try:
            out = self.add(b)
            if not out.ok:
                return "fail", f"second pod: {out.why}"
            a_ip, b_ip = _ip_of(self.a.address()), _ip_of(b.address())
            probes = [(self.a, b_ip, "pod b"), (b, a_ip, "pod a")]
            gw = _gateway(self.a.result)
            if gw:
                probes.append((self.a, gw, "the gateway"))
            bad, good = [], []
            for src, dst, what in probes:
                if dst is None:
                    bad.append(f"{what} has no address in its result")
                    continue
                ok, value = self.ping(src, dst)
                (good if ok else bad).append(
                    f"{src.name} → {what} {dst}: " + (f"{value} ms" if ok else value)
                )
            if not gw:
                bad.append("the result names no gateway to reach")
            if bad:
                return "fail", "; ".join(bad)
            return "pass", "; ".join(good)
        finally:
            self.rt.delete(b)
            self.forget(b)

    def ping(self, pod, dst, tries=3):
        """ICMP echo from the pod's namespace (nodeside/icmp.py's ping, its source in SPEC)."""
        if self._icmp is None:
            source = self.spec.get("icmp")
            if not source:
                return False, "no ICMP source given to the engine"
            self._icmp = {"__name__": "icmp"}
            exec(compile(source, "icmp.py", "exec"), self._icmp)
        detail = "no reply"
        for _ in range(tries):
            reply = self._icmp["ping"]([dst], netns=pod.netns, timeout=1.0)[0]
            if reply["ok"]:
                return True, round(reply["rtt_ms"], 3)
            detail = reply["detail"]
        return False, f"{detail} ({tries} tries)"

    def _need_check_version(self):
        if vtuple(self.rt.version) < (0, 4, 0):
            raise Skip(f"CHECK exists from cniVersion 0.4.0; the config is {self.rt.version}")

    def check_check(self):
        self._need_check_version()
        missing = self._need_a()
        if missing:
            return "fail", f"needs {missing}"
        out = self.rt.check(self.a)
        return ("pass", "CHECK exited 0") if out.ok else ("fail", out.why)

    def check_check_detects(self):
        self._need_check_version()
        missing = self._need_a()
        if missing:
            return "fail", f"needs {missing}"
        addr = self.a.address()
        if addr is None:
            return "fail", "the result of `add` lists no address to remove"
        p = _run(["ip", "-n", self.a.name, "addr", "del", addr, "dev", self.a.ifname])
        if p.returncode != 0:
            return "fail", f"could not remove {addr} from {self.a.ifname}: {p.stderr.decode().strip()}"
        out = self.rt.check(self.a)
        if out.ok:
            return "fail", f"CHECK exited 0 with {addr} removed from {self.a.ifname}"
        return "pass", f"after {addr} was removed: {out.why}"

    def check_del(self):
        if self.a is None:
            self.a = self.pod("a")
        out = self.rt.delete(self.a)
        return ("pass", "DEL exited 0") if out.ok else ("fail", out.why)

    def check_del_cleans(self):
        if self.a is None:
            return "fail", "needs the pod of `add`"
        left = self.leftovers(self.a)
        if left:
            return "fail", "left after DEL: " + ", ".join(left)
        known = ", ".join(self.stores()) or "no known reservation store"
        return "pass", f"no interface, node link or reservation left ({known})"

    def check_del_idempotent(self):
        if self.a is None:
            return "fail", "needs the pod of `add`"
        out = self.rt.delete(self.a)
        return ("pass", "second DEL exited 0") if out.ok else ("fail", "second DEL: " + out.why)

    def check_del_netns_gone(self):
        c = self.pod("c")
        added = self.add(c)
        netns_del([c.name])
        out = self.rt.delete(c)
        self.pods.pop(c.name, None)
        note = "" if added.ok else f" (its ADD had failed: {added.why})"
        if out.ok:
            return "pass", f"DEL with {c.netns} gone exited 0{note}"
        return "fail", f"DEL with {c.netns} gone: {out.why}{note}"

    def check_parallel_add(self):
        n = self.parallel
        pods = [self.pod(f"p{i}", make=False) for i in range(n)]
        netns_add([p.name for p in pods])
        before = node_links()
        with ThreadPoolExecutor(max_workers=n) as pool:
            outs = list(pool.map(self.rt.add, pods))
        after = node_links()
        made = sorted(k for k, kind in after.items() if k not in before and kind != "bridge")
        problems = []
        failed = [(p, o) for p, o in zip(pods, outs) if not o.ok]
        if failed:
            problems.append(f"{len(failed)} of {n} ADDs failed, e.g. {failed[0][1].why}")
        owners = {}
        for p, o in zip(pods, outs):
            if o.ok:
                owners.setdefault(_ip_of(p.address()), []).append(p.name)
        dups = {ip: names for ip, names in owners.items() if len(names) > 1}
        if dups:
            shown = "; ".join(f"{ip} to {', '.join(names)}" for ip, names in sorted(dups.items(), key=str))
            problems.append(f"the same address went to several pods: {shown}")
        with ThreadPoolExecutor(max_workers=n) as pool:
            dels = list(pool.map(self.rt.delete, pods))
        bad_dels = [o for o in dels if not o.ok]
        if bad_dels:
            problems.append(f"{len(bad_dels)} of {n} DELs failed, e.g. {bad_dels[0].why}")
        links = node_links()
        left = [k for k in made if k in links]
        if left:
            problems.append(f"{len(left)} node links left after the DELs: {', '.join(left[:5])}")
        kept = [r for p in pods for r in self.reservations(p)]
        if kept:
            problems.append(f"{len(kept)} reservations left after the DELs, e.g. {kept[0]}")
        inside = [p.name for p in pods if p.ifname in pod_links(p)]
        if inside:
            problems.append(f"{len(inside)} pods still have {pods[0].ifname} after DEL")
        for p in pods:
            p.result = None
        netns_del([p.name for p in pods])
        for p in pods:
            self.pods.pop(p.name, None)
        if problems:
            return "fail", "; ".join(problems)
        return "pass", f"{n} ADDs, {len(owners)} distinct addresses; {n} DELs left nothing"

    def _probe(self, tag, command, raw=None, conf=None):
        """One direct call of the plugin under test for a fresh pod; undone afterwards if it added."""
        pod = self.pod(tag)
        c = self.rt.call(self.rt.plugin, command, conf, pod, raw=raw)
        if c.rc == 0 and command == "ADD":
            pod.result = c.obj
            self.rt.delete(pod)
        self.forget(pod)
        return c

    def check_error_object(self):
        c = self._probe("e", "ADD", raw=b'{"cniVersion": "1.0.0", "name": ')
        problems = _error_problems(c)
        for stream, text in (("stderr", c.err), ("stdout", c.out)):
            if "Traceback (most recent call last)" in text:
                problems.append(f"a traceback on {stream}: {_tail(text, 160)}")
        if problems:
            return "fail", "on malformed JSON: " + "; ".join(problems)
        return "pass", "code {}: {}".format(c.obj.get("code"), c.obj.get("msg"))

    def _expect_code(self, c, code, what):
        """pass when the call failed with an error object of that code."""
        problems = _error_problems(c)
        if not problems and c.obj.get("code") != code:
            got = c.obj.get("code")
            problems.append("error code {} (msg {!r}), not {}".format(got, c.obj.get("msg"), code))
        if problems:
            return "fail", f"{what}: " + "; ".join(problems)
        return "pass", "code {}: {}".format(code, c.obj.get("msg"))

    def check_unknown_command(self):
        c = self._probe("u", UNKNOWN_COMMAND, conf=self.rt.own_conf())
        return self._expect_code(c, 4, f"CNI_COMMAND={UNKNOWN_COMMAND}")

    def check_bad_version(self):
        conf = dict(self.rt.own_conf(), cniVersion=BAD_VERSION)
        c = self._probe("v", "ADD", conf=conf)
        return self._expect_code(c, 1, f"ADD with cniVersion {BAD_VERSION}")

    def check_gc(self):
        if vtuple(self.rt.version) < (1, 1, 0):
            raise Skip(f"GC exists from cniVersion 1.1.0; the config is {self.rt.version}")
        keep, drop = self.pod("gk"), self.pod("gd")
        try:
            for p in (keep, drop):
                out = self.add(p)
                if not out.ok:
                    return "fail", f"ADD before GC: {out.why}"
            valid = [{"containerID": keep.cid, "ifname": keep.ifname}]
            out = self.rt.each("GC", **{"cni.dev/valid-attachments": valid})
            if not out.ok:
                return "fail", out.why
            problems = []
            links = node_links()
            gone = [n for n in keep.made if n not in links]
            if self.stores() and not self.reservations(keep):
                gone.append("its reservation")
            if gone:
                problems.append(f"GC removed what the listed attachment still uses: {', '.join(gone)}")
            if keep.ifname not in pod_links(keep):
                problems.append(f"the listed pod lost {keep.ifname}")
            left = [n for n in drop.made if n in links] + self.reservations(drop)
            if left:
                problems.append(f"the unlisted attachment's {', '.join(left)} left after GC")
            if problems:
                return "fail", "; ".join(problems)
            return "pass", "released the unlisted attachment, kept the listed one"
        finally:
            for p in (keep, drop):
                self.rt.delete(p)
                p.result = None
                self.forget(p)

    def check_status(self):
        if vtuple(self.rt.version) < (1, 1, 0):
            raise Skip(f"STATUS exists from cniVersion 1.1.0; the config is {self.rt.version}")
        out = self.rt.each("STATUS")
        return ("pass", "STATUS exited 0") if out.ok else ("fail", out.why)


# -- result checks ---------------------------------------------------------------------------------


def _ip_of(cidr):
    try:
        return str(ipaddress.ip_interface(cidr).ip) if cidr else None
    except ValueError:
        return None


def _gateway(result):
    for ip in (result or {}).get("ips") or []:
        if isinstance(ip, dict) and ip.get("gateway"):
            return str(ip["gateway"])
    return None


def _error_problems(c):
    problems = []
    if c.timed_out:
        return [f"no answer in {c.seconds:.0f}s (killed)"]
    if c.rc == 0:
        problems.append("exit code 0")
    err = c.obj
    if err is None:
        problems.append(f"no JSON error object on stdout ({_tail(c.out, 120)!r})")
    else:
        if not isinstance(err.get("code"), int) or isinstance(err.get("code"), bool):
            problems.append("the error object has no integer code")
        if not isinstance(err.get("msg"), str):
            problems.append("the error object has no msg")
    return problems


def _listed(result, key, problems):
    value = result.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(f"{key} is not a list")
    return []


def result_problems(result, version, pod):
    """Where the ADD result breaks the result type of its cniVersion."""
    problems = []
    if str(result.get("cniVersion")) != version:
        problems.append(f"cniVersion {result.get('cniVersion')!r}, the config's is {version}")
    interfaces = _listed(result, "interfaces", problems)
    for i, iface in enumerate(interfaces):
        if not isinstance(iface, dict) or not isinstance(iface.get("name"), str) or not iface.get("name"):
            problems.append(f"interfaces[{i}] has no name")
            continue
        for key, kind in (("mac", str), ("sandbox", str), ("mtu", int)):
            if key in iface and not isinstance(iface[key], kind):
                problems.append(f"interfaces[{i}].{key} is not a {kind.__name__}")
    named = [i for i in interfaces if isinstance(i, dict) and i.get("name") == pod.ifname]
    if not any(i.get("sandbox") == pod.netns for i in named):
        problems.append(f"no interface {pod.ifname} with sandbox {pod.netns}")
    ips = _listed(result, "ips", problems)
    if not ips:
        problems.append("no ips")
    for i, ip in enumerate(ips):
        if not isinstance(ip, dict):
            problems.append(f"ips[{i}] is not an object")
            continue
        try:
            iface = ipaddress.ip_interface(ip.get("address"))
            if "/" not in str(ip.get("address")):
                raise ValueError
        except (ValueError, TypeError):
            problems.append(f"ips[{i}].address {ip.get('address')!r} is not a CIDR address")
            iface = None
        if "gateway" in ip:
            try:
                ipaddress.ip_address(ip["gateway"])
            except (ValueError, TypeError):
                problems.append(f"ips[{i}].gateway {ip['gateway']!r} is not an IP")
        if "interface" in ip:
            index = ip["interface"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(interfaces):
                problems.append(f"ips[{i}].interface {index!r} is not an index into interfaces")
        if vtuple(version) < (1, 0, 0):
            if ip.get("version") not in ("4", "6"):
                problems.append(f"ips[{i}].version {ip.get('version')!r}: {version} wants \"4\" or \"6\"")
            elif iface is not None and ip["version"] != str(iface.version):
                problems.append(f"ips[{i}].version {ip['version']} for an IPv{iface.version} address")
    routes = _listed(result, "routes", problems)
    for i, r in enumerate(routes):
        try:
            ipaddress.ip_network(r.get("dst"), strict=False)
            if "/" not in str(r.get("dst")):
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            problems.append(f"routes[{i}].dst {r.get('dst') if isinstance(r, dict) else r!r} is not a CIDR")
            continue
        if "gw" in r:
            try:
                ipaddress.ip_address(r["gw"])
            except (ValueError, TypeError):
                problems.append(f"routes[{i}].gw {r['gw']!r} is not an IP")
    if "dns" in result and not isinstance(result["dns"], dict):
        problems.append("dns is not an object")
    return problems


def truth_problems(result, pod):
    """Where what the result claims differs from the pod's namespace and the node."""
    problems = []
    inside = pod_links(pod)
    links = {link.get("ifname"): link for link in _ip_json("link", "show")}
    interfaces = [i for i in result.get("interfaces") or [] if isinstance(i, dict)]
    for iface in interfaces:
        name = iface.get("name")
        if iface.get("sandbox"):
            have = inside.get(name)
            where = "the pod"
            mac = have and have["mac"]
            mtu = have and have["mtu"]
        else:
            have = links.get(name)
            where = "the node"
            mac = have and have.get("address")
            mtu = have and have.get("mtu")
        if have is None:
            problems.append(f"interface {name} is not in {where}")
            continue
        if iface.get("mac") and str(iface["mac"]).lower() != str(mac).lower():
            problems.append(f"{name} in {where} has MAC {mac}, the result says {iface['mac']}")
        if isinstance(iface.get("mtu"), int) and iface["mtu"] and iface["mtu"] != mtu:
            problems.append(f"{name} in {where} has MTU {mtu}, the result says {iface['mtu']}")
    for ip in result.get("ips") or []:
        try:
            want = ipaddress.ip_interface(ip.get("address"))
        except (ValueError, TypeError, AttributeError):
            continue
        index = ip.get("interface")
        target = interfaces[index] if isinstance(index, int) and 0 <= index < len(interfaces) else None
        if target is not None and not target.get("sandbox"):
            continue  # an address on a node interface: not the pod's
        names = [target.get("name")] if target is not None else list(inside)
        if not any(want in (inside.get(n) or {}).get("addrs", []) for n in names):
            problems.append(f"{want} is not on {'/'.join(map(str, names))} in the pod")
    routes = pod_routes(pod)
    for r in result.get("routes") or []:
        try:
            dst = ipaddress.ip_network(r.get("dst"), strict=False)
        except (ValueError, TypeError, AttributeError):
            continue
        gw = r.get("gw")  # omitted: a gateway of the plugin's choosing
        if not any(d == dst and (not gw or g == gw) for d, g in routes):
            problems.append(f"route to {dst}" + (f" via {gw}" if gw else "") + " is not in the pod")
    return problems


# -- the config and the sandbox ----------------------------------------------------------------------


def _first_conf(conf_dir):
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conf", ".conflist", ".json")))
    except OSError:
        names = []
    if not names:
        raise RuntimeError(f"no network config in {conf_dir}: install a plugin or pass --conf")
    with open(os.path.join(conf_dir, names[0])) as f:
        return json.load(f)


def _mount_points():
    """(mount point, fs type) of every mount in this namespace, parents first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space
            found.append((point, fields[fields.index("-") + 1]))
    return found


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _writable_dir(d, stage):
    """A fresh tmpfs at d; where d does not exist on the host, its nearest parent becomes an overlay
    whose writes go to a tmpfs (d is made there), so nothing is created on the host."""
    missing = []
    while not os.path.isdir(d):
        missing.append(os.path.basename(d))
        d = os.path.dirname(d)
    if missing:
        upper = os.path.join(stage, "overlay", d.strip("/").replace("/", "_") or "root")
        os.makedirs(upper + "/u")
        os.makedirs(upper + "/w")
        _run(["mount", "-t", "overlay", "nppctl-conformance", "-o",
              f"lowerdir={d},upperdir={upper}/u,workdir={upper}/w", d], check=True)
        d = os.path.join(d, *reversed(missing))
        os.makedirs(d)
    _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "nppctl-conformance", d], check=True)


def _read_only(point):
    _run(["mount", "-o", "remount,bind,ro", point], check=True)


def enter_sandbox(spec):
    """In fresh mount, network and PID namespaces (launch.py's unshare, /proc mounted anew): the
    host's mounts read-only, fresh tmpfs where plugins write (SANDBOX_DIRS), /proc/sys read-only
    but for the namespace's own /proc/sys/net, a read-only sysfs of this network namespace, no
    namespace file of the host left mounted; the plugin dirs bound in read-only from before, lo up,
    forwarding on (as on a kind node)."""
    _run(["mount", "--make-rprivate", "/"], check=True)
    dirs = [spec["plugin_dir"]] + [d for d in spec["cni_path"] if d != spec["plugin_dir"]]
    fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs]
    mounts = _mount_points()
    for point, fstype in reversed(mounts):  # bind-mounted namespaces of the host: a way out
        if fstype == "nsfs":
            _run(["umount", "-l", point])
    for point, fstype in mounts:
        if fstype != "nsfs" and not any(_under(point, top) for top in OWN_FS) and os.path.isdir(point):
            _read_only(point)
    _run(["mount", "-t", "tmpfs", "-o", "mode=0700", "nppctl-conformance", "/run"], check=True)
    os.makedirs(STAGE)
    for d in SANDBOX_DIRS:
        if d != "/run" and not os.path.islink(d):
            _writable_dir(d, STAGE)
    _run(["mount", "-t", "sysfs", "-o", "ro", "sysfs", "/sys"], check=True)
    _run(["mount", "--bind", "/proc/sys", "/proc/sys"], check=True)
    _run(["mount", "--bind", "/proc/sys/net", "/proc/sys/net"], check=True)
    _read_only("/proc/sys")
    bound = []
    for i, fd in enumerate(fds):
        target = os.path.join(STAGE, "path", str(i))
        os.makedirs(target)
        _run(["mount", "--bind", f"/proc/{os.getpid()}/fd/{fd}", target], check=True)
        _read_only(target)
        os.close(fd)
        bound.append(target)
    os.makedirs(NETNS_DIR, exist_ok=True)
    _run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    spec = dict(spec, plugin_dir=bound[0], cni_path=bound)
    return spec


def isolated(conf, own):
    """The config with a network name, bridge, dataDir and subnet of the card's own (own: "name",
    "bridge", "data_dir", "subnet"), so that in a node its ADDs, DELs and GC never touch the node's
    real pods: nppnet's and the reference bridge's "bridge", nppnet's and host-local's "dataDir",
    every subnet key; a plugin naming its bridge or store otherwise is beyond what this can see."""
    conf = json.loads(json.dumps(conf))
    conf["name"] = own["name"]
    for i, p in enumerate(conf["plugins"] if "plugins" in conf else [conf]):
        kind = p.get("type")
        if "bridge" in p or kind in ("nppnet", "bridge"):
            p["bridge"] = own["bridge"]
        if "dataDir" in p or kind == "nppnet":
            p["dataDir"] = f"{own['data_dir']}/{i}"
        for key in ("gateway", "subnet_network", "subnet_node"):
            p.pop(key, None)
        for key in ("subnet", "clusterCIDR"):
            if key in p or (kind == "nppnet" and key == "subnet"):
                p[key] = own["subnet"]
        ipam = p.get("ipam")
        if isinstance(ipam, dict):
            if "dataDir" in ipam or ipam.get("type") == "host-local":
                ipam["dataDir"] = f"{own['data_dir']}/ipam{i}"
            for key in ("gateway", "rangeStart", "rangeEnd"):
                ipam.pop(key, None)
            if "subnet" in ipam:
                ipam["subnet"] = own["subnet"]
            if "ranges" in ipam:
                ipam["ranges"] = [[{"subnet": own["subnet"]}]]
    return conf


def remove_isolated(own):
    """What the card's own network leaves in a node: its bridge, iptables rules naming its subnet."""
    import shlex

    _run(["ip", "link", "del", own["bridge"]])
    saved = _run(["iptables-save"]).stdout.decode(errors="replace")
    table = None
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and own["subnet"] in line.split():
            _run(["iptables", "-w", "-t", table, "-D", *shlex.split(line)[1:]])


def make_bridge(bridge):
    """The bridge with that address, up; True when this call created it (removed at the end)."""
    name, address = bridge["name"], bridge["address"]
    created = not _ip_json("link", "show", "dev", name)
    if created:
        _run(["ip", "link", "add", name, "type", "bridge"], check=True)
    _run(["ip", "addr", "replace", address, "dev", name], check=True)
    _run(["ip", "link", "set", name, "up"], check=True)
    return created


def main(argv):
    spec = json.loads(argv[1])
    try:
        if spec.get("sandbox"):
            spec = enter_sandbox(spec)
        made = spec.get("bridge") and make_bridge(spec["bridge"])
        try:
            card = Engine(spec).run()
        finally:
            if made:  # in a node: the bridge goes with the card's pods
                _run(["ip", "link", "del", spec["bridge"]["name"]])
            if spec.get("isolate"):
                remove_isolated(spec["isolate"])
    except Exception as err:  # noqa: BLE001 - one JSON line, whatever happened
        sys.stdout.write(json.dumps({"error": f"{type(err).__name__}: {err}"}) + "\n")
        return 1
    sys.stdout.write(json.dumps(card) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
