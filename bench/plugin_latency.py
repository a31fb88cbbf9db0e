#!/usr/bin/env python3
"""Latency and burst benchmark: nppnet against the Go reference bridge + host-local.

Both plugins are exec'd as a container runtime does: the CNI_* environment, the network
configuration on stdin, PATH=/usr/sbin:/usr/bin:/sbin:/bin (and CNI_PATH=/usr/lib/cni so the
reference bridge finds host-local). Rounds interleave the two (A B A B ..., the order flipped
every round) so drift of the machine hits both alike.

Part 1, latency: per round one ADD, one CHECK (the ADD's result as prevResult) and one DEL of
each plugin into a fresh network namespace, then one VERSION; median and p95 of each, and the
ratios nppnet / reference.
Part 2, burst: N parallel ADDs, then N parallel DELs (N = 16 and 64) per plugin, repeated
(order alternating); median wall time ratio, and the worst distinct-address count, errors and
leftovers (reservations, host veths) over the repeats.

Needs root. Everything it creates is named np2b-*/np2b* (netns, bridges, 10.202.240.0/20) and
removed at the end, also after Ctrl-C or a failure. Not a test: `python3 bench/plugin_latency.py
[--rounds N] [--plugin PATH] [--bursts 16,64] [--burst-repeats 3] [--reference-dir DIR]`.
`--node NODE --name CLUSTER` runs it inside that lab node instead, on the node's python3, against
the nppnet `nppctl install` put there and the reference plugins copied into the node (bench/innode.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path("/usr/lib/cni")
RUNTIME_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PREFIX = f"np2b-{os.getpid()}"
CALL_TIMEOUT = 30  # seconds; a plugin call that takes longer is reported as hung


@dataclass
class Plugin:
    """One plugin under test: how to exec it and where it keeps its state."""

    label: str
    exe: Path
    conf: dict
    bridge: str
    subnet: str
    data_dir: Path
    cni_path: str
    adds: list[float] = field(default_factory=list)
    dels: list[float] = field(default_factory=list)
    checks: list[float] = field(default_factory=list)
    versions: list[float] = field(default_factory=list)

    def env(self, command: str, container_id: str, netns: str) -> dict[str, str]:
        """The environment a runtime gives a plugin call."""
        return {
            "PATH": RUNTIME_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/var/run/netns/{netns}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.cni_path,
        }

    def call(
        self, command: str, container_id: str, netns: str, prev: dict | None = None
    ) -> tuple[float, subprocess.CompletedProcess]:
        """One exec; prev: the ADD's result, passed as prevResult (CHECK)."""
        env = self.env(command, container_id, netns)
        stdin = json.dumps(self.conf if prev is None else dict(self.conf, prevResult=prev)).encode()
        started = time.perf_counter()
        done = subprocess.run(
            [str(self.exe)], env=env, input=stdin, capture_output=True, timeout=CALL_TIMEOUT
        )
        return (time.perf_counter() - started) * 1000, done

    def spawn(self, command: str, container_id: str, netns: str) -> subprocess.Popen:
        env = self.env(command, container_id, netns)
        proc = subprocess.Popen(
            [str(self.exe)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        proc.stdin.write(json.dumps(self.conf).encode())
        proc.stdin.close()
        proc.stdin = None  # written and closed: communicate() must not touch it again
        return proc

    def reservations(self) -> int:
        """Address files in the plugin's data dir (both stores name one file per address)."""
        count = 0
        for _, _, files in os.walk(self.data_dir):
            count += sum(1 for f in files if f.count(".") == 3 and f.replace(".", "").isdigit())
        return count

    def host_veths(self) -> int:
        out = subprocess.run(
            ["ip", "-o", "link", "show", "master", self.bridge], capture_output=True, text=True
        )
        return len([line for line in out.stdout.splitlines() if line.strip()])


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed: {out.stderr.strip()}")
    return out


def netns_batch(verb: str, names: list[str]) -> None:
    """Add or delete many namespaces with one `ip -batch` (not timed)."""
    if names:
        sh(
            "ip",
            "-force",
            "-batch",
            "-",
            check=verb == "add",
            stdin="".join(f"netns {verb} {n}\n" for n in names),
        )


def address_of(result: bytes) -> str | None:
    try:
        return json.loads(result)["ips"][0]["address"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def error_of(done_stdout: bytes, stderr: bytes) -> str:
    try:
        obj = json.loads(done_stdout)
        return f"code {obj.get('code')}: {obj.get('msg')}"
    except ValueError:
        return (done_stdout or stderr).decode(errors="replace").strip()[-200:]


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, -(-95 * len(s) // 100) - 1))]  # nearest rank


def add_place_arguments(parser: argparse.ArgumentParser) -> None:
    """--reference-dir, and --node/--name: run the bench inside a lab node instead (bench/innode.py)."""
    parser.add_argument(
        "--reference-dir", type=Path, default=REFERENCE_DIR, help=f"reference plugins ({REFERENCE_DIR})"
    )
    parser.add_argument("--node", help="run inside this node of --name (its python3, its installed nppnet)")
    parser.add_argument("--name", default="kind", help="the cluster of --node (default kind)")


def run_in_node(args: argparse.Namespace, script: str) -> int:
    """This bench inside the lab node args.node (bench/innode.py), with the same options."""
    sys.path.insert(0, str(REPO))
    from bench.innode import run_in_node as run

    return run(args.name, args.node, script, sys.argv[1:], args.reference_dir)


def check_reference(reference_dir: Path) -> None:
    if not os.access(reference_dir / "bridge", os.X_OK):
        raise SystemExit(
            f"bench: no reference plugins in {reference_dir} (apt-get install containernetworking-plugins)"
        )


def print_place(nppnet: Path, reference_dir: Path) -> None:
    """Where the bench runs and which python runs the plugin."""
    sys.path.insert(0, str(REPO))
    from bench.innode import describe_python

    print(f"nppnet:    {nppnet} on {describe_python(nppnet)}\nreference: {reference_dir}/bridge + host-local")
    print(
        f"machine:   {os.cpu_count()} cores, kernel {os.uname().release}, {os.uname().nodename}, "
        f"bench on Python {sys.version.split()[0]}"
    )


def build_nppnet(out: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from nppctl.build.artifacts import build_plugins

    for path in build_plugins(out):
        if Path(path).name == "nppnet":
            return Path(path)
    raise SystemExit("bench: build_plugins wrote no nppnet")


def nppnet_conf(name: str, bridge: str, subnet: str, data_dir: Path, log_file: Path) -> dict:
    """nppnet's network configuration for a bench network."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "nppnet",
        "subnet": subnet,
        "bridge": bridge,
        "ipMasq": False,
        "dataDir": str(data_dir),
        "logFile": str(log_file),
    }


def reference_conf(name: str, bridge: str, subnet: str, data_dir: Path) -> dict:
    """The same network for the reference bridge + host-local (bridge holds the gateway, as nppnet's)."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": False,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)},
    }


def make_plugins(nppnet: Path, work: Path, reference_dir: Path = REFERENCE_DIR) -> tuple[Plugin, Plugin]:
    ours = Plugin(
        label="nppnet",
        exe=nppnet,
        conf=nppnet_conf("np2bench-n", "np2bN", "10.202.241.0/24", work / "nppnet-data", work / "nppnet.log"),
        bridge="np2bN",
        subnet="10.202.241.0/24",
        data_dir=work / "nppnet-data",
        cni_path=str(nppnet.parent),
    )
    reference = Plugin(
        label="reference",
        exe=reference_dir / "bridge",
        conf=reference_conf("np2bench-r", "np2bR", "10.202.242.0/24", work / "ref-data"),
        bridge="np2bR",
        subnet="10.202.242.0/24",
        data_dir=work / "ref-data",
        cni_path=str(reference_dir),
    )
    return ours, reference


def one_call(
    plugin: Plugin, command: str, cid: str, netns: str, record: bool, prev: dict | None = None
) -> bytes:
    ms, done = plugin.call(command, cid, netns, prev)
    if done.returncode != 0:
        raise SystemExit(f"bench: {plugin.label} {command} failed: {error_of(done.stdout, done.stderr)}")
    if record:
        {"ADD": plugin.adds, "DEL": plugin.dels, "CHECK": plugin.checks, "VERSION": plugin.versions}[
            command
        ].append(ms)
    return done.stdout


def latency_rounds(plugins: tuple[Plugin, Plugin], rounds: int, warmup: int = 3) -> None:
    for r in range(-warmup, rounds):
        order = plugins if r % 2 == 0 else plugins[::-1]
        names = {p.label: f"{PREFIX}-l{r + warmup}-{p.label[0]}" for p in order}
        netns_batch("add", list(names.values()))
        try:
            results = {}
            for p in order:
                cid = f"{PREFIX}-lat{r + warmup}{p.label[0]}"
                results[p.label] = json.loads(one_call(p, "ADD", cid, names[p.label], r >= 0))
            for p in order:
                cid = f"{PREFIX}-lat{r + warmup}{p.label[0]}"
                one_call(p, "CHECK", cid, names[p.label], r >= 0, results[p.label])
            for p in order:
                one_call(p, "DEL", f"{PREFIX}-lat{r + warmup}{p.label[0]}", names[p.label], r >= 0)
            for p in order:
                one_call(p, "VERSION", f"{PREFIX}-lat{r + warmup}{p.label[0]}", names[p.label], r >= 0)
        finally:
            netns_batch("del", list(names.values()))


def burst(plugin: Plugin, n: int) -> dict:
    names = [f"{PREFIX}-b{n}-{plugin.label[0]}{i}" for i in range(n)]
    netns_batch("add", names)
    procs: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        procs = [plugin.spawn("ADD", f"{PREFIX}-burst{n}{plugin.label[0]}{i}", names[i]) for i in range(n)]
        outs = [(p, *p.communicate(timeout=CALL_TIMEOUT * 4)) for p in procs]
        add_wall = (time.perf_counter() - started) * 1000
        addrs = [address_of(out) for p, out, _ in outs if p.returncode == 0]
        add_errors = [error_of(out, err) for p, out, err in outs if p.returncode != 0]
        live = plugin.reservations(), plugin.host_veths()
        started = time.perf_counter()
        procs = [plugin.spawn("DEL", f"{PREFIX}-burst{n}{plugin.label[0]}{i}", names[i]) for i in range(n)]
        outs = [(p, *p.communicate(timeout=CALL_TIMEOUT * 4)) for p in procs]
        del_wall = (time.perf_counter() - started) * 1000
        del_errors = [error_of(out, err) for p, out, err in outs if p.returncode != 0]
        return {
            "add_wall": add_wall,
            "del_wall": del_wall,
            "distinct": len({a for a in addrs if a}),
            "add_errors": add_errors,
            "del_errors": del_errors,
            "live": live,
            "left": (plugin.reservations(), plugin.host_veths()),
        }
    finally:
        for p in procs:  # hung calls (timeout): do not leave them behind
            if p.poll() is None:
                p.kill()
                p.wait()
        netns_batch("del", names)


def cleanup(plugins: tuple[Plugin, ...], work: Path) -> None:
    leftovers = sh("ip", "netns", "list", check=False).stdout.split()
    netns_batch("del", [n for n in leftovers if n.startswith(PREFIX)])
    for p in plugins:
        sh("ip", "link", "del", p.bridge, check=False)
        drop_firewall_rules(p.subnet, p.bridge)
    shutil.rmtree(work, ignore_errors=True)


def drop_firewall_rules(subnet: str, bridge: str) -> None:
    """Delete iptables rules naming the bench's subnet or bridge (nppnet's FORWARD/NAT rules)."""
    for table in ("filter", "nat"):
        listing = sh("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
        for rule in listing:
            words = shlex.split(rule)
            if words[:1] == ["-A"] and ({subnet, bridge, f"nppnet:{bridge}"} & set(words)):
                sh("iptables", "-w", "-t", table, "-D", *words[1:], check=False)
    # nppnet's own chains, once no network uses them: their jumps, then the chains
    chains = (("filter", "NPPNET-FORWARD", "FORWARD"), ("nat", "NPPNET-POSTROUTING", "POSTROUTING"))
    for table, chain, builtin in chains:
        listed = sh("iptables", "-w", "-t", table, "-S", chain, check=False).stdout.split("\n")
        if [line for line in listed if line.strip()] == [f"-N {chain}"]:
            sh("iptables", "-w", "-t", table, "-D", builtin, "-j", chain, check=False)
            sh("iptables", "-w", "-t", table, "-X", chain, check=False)


def report_latency(ours: Plugin, ref: Plugin) -> None:
    print(f"\nlatency: {len(ours.adds)} interleaved rounds, ms per call (exec to exit), median / p95")
    series = [("ADD", "adds"), ("DEL", "dels"), ("CHECK", "checks"), ("VERSION", "versions")]
    print(f"{'':10}" + "".join(f"{name:>16}" for name, _ in series))
    for p in (ours, ref):
        cells = [f"{median(getattr(p, a)):7.2f} /{p95(getattr(p, a)):6.2f}" for _, a in series]
        print(f"{p.label:10}" + "".join(f"{c:>16}" for c in cells))
    ratios = []
    for _, a in series:
        mine, theirs = getattr(ours, a), getattr(ref, a)
        ratios.append(f"{median(mine) / median(theirs):6.2f}x/{p95(mine) / p95(theirs):5.2f}x")
    print(f"{'ratio':10}" + "".join(f"{c:>16}" for c in ratios))


def combine(runs: list[dict]) -> dict:
    """Repeated bursts of one plugin: median wall times; the worst of distinct, errors, leftovers."""
    return {
        "add_wall": median([r["add_wall"] for r in runs]),
        "del_wall": median([r["del_wall"] for r in runs]),
        "distinct": min(r["distinct"] for r in runs),
        "add_errors": [e for r in runs for e in r["add_errors"]],
        "del_errors": [e for r in runs for e in r["del_errors"]],
        "live": min(r["live"] for r in runs),
        "left": max(r["left"] for r in runs),
    }


def report_burst(n: int, repeats: int, ours: dict, ref: dict, label: str = "nppnet") -> None:
    print(f"\nburst of {n}: {n} parallel ADDs, then {n} parallel DELs; median of {repeats} bursts each")
    print(
        f"{'':10}{'ADD wall ms':>12}{'DEL wall ms':>12}{'distinct':>10}{'errors':>8}  after ADD / after DEL"
    )
    for name, b in ((label, ours), ("reference", ref)):
        errors = len(b["add_errors"]) + len(b["del_errors"])
        print(
            f"{name:10}{b['add_wall']:12.1f}{b['del_wall']:12.1f}{b['distinct']:>10}{errors:>8}  "
            f"{b['live'][0]} reservations, {b['live'][1]} veths / "
            f"{b['left'][0]} reservations, {b['left'][1]} veths"
        )
        for e in (b["add_errors"] + b["del_errors"])[:3]:
            print(f"{'':10}error: {e}")
    print(
        f"{'ratio':10}{ours['add_wall'] / ref['add_wall']:11.2f}x{ours['del_wall'] / ref['del_wall']:11.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved latency rounds (default 40)")
    parser.add_argument("--plugin", type=Path, help="a built nppnet (default: build one now)")
    parser.add_argument("--bursts", default="16,64", help="burst sizes, comma separated (default 16,64)")
    parser.add_argument("--burst-repeats", type=int, default=3, help="bursts per size and plugin (default 3)")
    add_place_arguments(parser)
    args = parser.parse_args()
    if args.node:
        return run_in_node(args, Path(__file__).name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up when terminated
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, bridges)")
    check_reference(args.reference_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    plugins: tuple[Plugin, ...] = ()
    try:
        nppnet = args.plugin.resolve() if args.plugin else build_nppnet(work / "bin")
        plugins = make_plugins(nppnet, work, args.reference_dir)
        print_place(nppnet, args.reference_dir)
        latency_rounds(plugins, args.rounds)
        report_latency(*plugins)
        for n in (int(x) for x in args.bursts.split(",") if x.strip()):
            runs: dict[str, list[dict]] = {"nppnet": [], "reference": []}
            for k in range(args.burst_repeats):
                for p in plugins if k % 2 == 0 else plugins[::-1]:  # alternate which one goes first
                    runs[p.label].append(burst(p, n))
            report_burst(n, args.burst_repeats, combine(runs["nppnet"]), combine(runs["reference"]))
    except subprocess.TimeoutExpired as err:
        raise SystemExit(f"bench: a plugin call hung for over {err.timeout:g}s ({err.cmd})") from None
    finally:
        cleanup(plugins, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
