"""The conformance card's runner: plays the container runtime against one plugin, check by check.

The checks are checks.py's functions, listed in checklist.CHECKS in the order the card runs them
(checklist.py says how to add one). The runner sets up where the pods live (sandbox.py), runs each
check and turns what it returns into a row of the card ({id, result, detail, section, requirement,
seconds}, with the plugin's stderr and log lines for a failing one), removes the pods that are left
and prints the card as one JSON line.

It runs where the "node" is: in the throwaway sandbox on the host (launch.py starts it under
`unshare --mount --net --pid --uts --ipc --cgroup --fork --mount-proc`, and sandbox.py makes its
private mounts) or inside a lab node. So the engine (bundle.ENGINE: this module and those it
imports) is standard library only, Python 3.9 syntax, shipped as one script to `python3 - SPEC_JSON`
(bundle.py). What it needs besides: iproute2's `ip` (and `mount` in the sandbox). Pings use
nppctl/nodeside/icmp.py, its source passed in SPEC.

SPEC: plugin (its CNI type), plugin_dir, cni_path (dirs), conf (a conflist or a single conf; or
conf_dir: the first file there), bridge ({"name", "address"} made first), parallel, timeout (per
call), sandbox (make the private mounts), icmp (source), prefix (netns names), isolate (in a node:
the network name, bridge, dataDir and subnet the config is given instead of its own; see
sandbox.isolated()).

A check that needs an earlier one's pod says so and fails; a check that raises fails with the
error; each plugin call is killed (its whole process group) after `timeout` seconds, so the card
always finishes.
"""

import json
import os
import sys
import threading
import time

from nppctl.conformance import checks  # noqa: F401 - its @check functions join CHECKS, in order
from nppctl.conformance.checklist import CHECKS, Check, Fail, Skip, check
from nppctl.conformance.cni import Pod, Runtime, tail
from nppctl.conformance.node import netns_add, netns_del, node_links, pod_links, run
from nppctl.conformance.results import result_problems, truth_problems
from nppctl.conformance.sandbox import (
    SANDBOX_DIRS,
    enter_sandbox,
    hold_node,
    isolated,
    make_bridge,
    remove_isolated,
    sweep,
)

# the names code outside the engine may take from here (the tests use result_problems)
__all__ = [
    "CHECKS", "Check", "Engine", "Fail", "SANDBOX_DIRS", "Skip", "check", "isolated", "main",
    "result_problems", "truth_problems",
]

HOST_LOCAL_DIR = "/var/lib/cni/networks"
NPPNET_DIR = "/var/lib/cni/nppnet"
KEEP = 8  # stderr texts and log lines kept for a failing check: the last ones


class Engine:
    """The running card, handed to every check as `card`: the runtime (rt), the pods, the rows."""

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
        self.a = None  # the pod of `add`, which CHECK and DEL use after it
        self._lock = threading.Lock()
        self._calls = []
        self._icmp = None
        self.logs = sorted({p["logFile"] for p in self.rt.plugins if isinstance(p.get("logFile"), str)})

    # what checks use ---------------------------------------------------------------------------
    def note(self, call):
        """Every plugin call goes here (Runtime.call): a failing check shows their stderr."""
        with self._lock:
            self._calls.append(call)

    def pod(self, tag, make=True):
        """A pod named PREFIX-TAG: its network namespace made (unless make=False), removed at the end."""
        name = f"{self.prefix}-{tag}"
        pod = Pod(name, f"{self.prefix}-{self.tag}-{tag}")
        if make:
            netns_add([name])
        self.pods[name] = pod
        return pod

    def forget(self, pod):
        """The pod's namespace removed (call rt.delete(pod) first when it was added)."""
        netns_del([pod.name])
        self.pods.pop(pod.name, None)

    def add(self, pod):
        """ADD through the chain (rt.add), noting the node links it made (pod.made)."""
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
        """The folders where the config's plugins keep address reservations (host-local, nppnet)."""
        dirs = []
        for p in self.rt.plugins:
            ipam = p.get("ipam") if isinstance(p.get("ipam"), dict) else {}
            if ipam.get("type") == "host-local":
                dirs.append(os.path.join(str(ipam.get("dataDir") or HOST_LOCAL_DIR), self.rt.name))
            if p.get("type") == "nppnet":
                dirs.append(os.path.join(str(p.get("dataDir") or NPPNET_DIR), self.rt.name))
        return dirs

    def reservations(self, pod):
        """The reservation files in stores() that name the pod's container ID."""
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

    # running ---------------------------------------------------------------------------------
    def run(self):
        """Every check of CHECKS in order, then the pods left removed: the card as a dict."""
        started = time.monotonic()
        rows = []
        try:
            for check in CHECKS:
                rows.append(self.one(check))
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

    def one(self, check):
        """Run one check: its row of the card (stderr and log lines too when it fails)."""
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
            result, detail = check.run(self)
        except Skip as why:
            result, detail = "skip", str(why)
        except Fail as seen:
            result, detail = "fail", str(seen)
        except Exception as err:  # the card always finishes: an engine error fails this check
            result, detail = "fail", f"the check itself failed: {type(err).__name__}: {err}"
        row = {
            "id": check.id,
            "result": result,
            "detail": detail,
            "section": check.section,
            "requirement": check.requirement,
            "seconds": round(time.monotonic() - started, 3),
        }
        if result == "fail":
            errs = [f"{c.ptype} {c.command}: {tail(c.err, 2000)}" for c in self._calls if c.err.strip()]
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
        """DEL and remove every pod still there (best effort)."""
        for pod in list(self.pods.values()):
            try:
                if os.path.exists(pod.netns) or pod.result is not None:
                    self.rt.delete(pod)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        netns_del(list(self.pods))


def _first_conf(conf_dir):
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conf", ".conflist", ".json")))
    except OSError:
        names = []
    if not names:
        raise RuntimeError(f"no network config in {conf_dir}: install a plugin or pass --conf")
    with open(os.path.join(conf_dir, names[0])) as f:
        return json.load(f)


def main(argv):
    spec = json.loads(argv[1])
    try:
        if spec.get("sweep"):  # only the clean-up of a card cut off in this node (launch.py, after Ctrl-C)
            found = sweep(spec.get("prefix", "nppt"), spec["sweep"]["subnet"], spec["sweep"]["scratch_root"])
            sys.stdout.write(json.dumps({"swept": found}) + "\n")
            return 0
        if spec.get("sandbox"):
            spec = enter_sandbox(spec)
        elif spec.get("isolate"):  # in a node: one card at a time, after what a cut-off one left
            hold_node(spec["isolate"], spec.get("prefix", "nppt"), spec["isolate"]["scratch_root"])
        made = spec.get("bridge") and make_bridge(spec["bridge"])
        try:
            card = Engine(spec).run()
        finally:
            if made:  # in a node: the bridge goes with the card's pods
                run(["ip", "link", "del", spec["bridge"]["name"]])
            if spec.get("isolate"):
                remove_isolated(spec["isolate"])
    except Exception as err:  # noqa: BLE001 - one JSON line, whatever happened
        sys.stdout.write(json.dumps({"error": f"{type(err).__name__}: {err}"}) + "\n")
        return 1
    sys.stdout.write(json.dumps(card) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
