"""The node's own part of the pod network, as `nppctl install` sets it up (`setup` command) and the
keeper (keeper.py) keeps it: both call `make_right`.

A route to every other node's pod subnet via that node's address (stale ones pruned), IPv4
forwarding, br_netfilter with net.bridge.bridge-nf-call-iptables=1 (replies bridged straight back to
a pod must pass conntrack for Services); and where the node owns them (spec["make_bridge"] and
spec["masquerade"]: any plugin but nppnet, which makes its bridge and masquerade itself on ADD) cni0
with the subnet's gateway address and one MASQUERADE rule for pods leaving the cluster CIDR. Every
iptables call waits for the xtables lock (-w). `setup` also removes nppnet's chains when another
plugin comes (once: the keeper leaves a plugin's own chains alone), stale conflists, records the
installed state and writes the keeper's config.
Each step changes only what differs and reports what it changed, so a second run reports nothing.
"""

import ipaddress
import os
import shlex
import shutil

from .base import STATE, ip_json, read_json, run, write_json

MASQ_COMMENT = "nppctl pod masquerade"
KEEPER_CONF = "/etc/nppctl/keeper.json"  # what the keeper keeps: written by `setup` from install's spec
KEEPER_KEYS = ("bridge", "make_bridge", "gateway_cidr", "routes", "pod_subnet", "cluster_cidr", "masquerade")
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
NPPNET_CHAINS = (("filter", "NPPNET-FORWARD", "FORWARD"), ("nat", "NPPNET-POSTROUTING", "POSTROUTING"))


def bridge(spec, changes):
    """cni0 up with the gateway address where the node owns it (spec["make_bridge"]); either way an
    existing cni0 loses addresses of an earlier subnet (else their route would shadow another node's)."""
    name, gw, make = spec["bridge"], spec["gateway_cidr"], spec.get("make_bridge")
    links = ip_json("link", "show", "dev", name)
    if not links and not make:
        return
    if not links:
        run(["ip", "link", "add", name, "type", "bridge"])
        changes.append(f"created bridge {name}")
        links = ip_json("link", "show", "dev", name)
    if make and "UP" not in links[0].get("flags", []):
        run(["ip", "link", "set", name, "up"])
        changes.append(f"set {name} up")
    have = []
    for a in (ip_json("-4", "addr", "show", "dev", name) or [{}])[0].get("addr_info", []):
        have.append("{}/{}".format(a["local"], a["prefixlen"]))
    if make and gw not in have:
        run(["ip", "addr", "add", gw, "dev", name])
        changes.append(f"added {gw} to {name}")
    for old in have:
        if old != gw:
            run(["ip", "addr", "del", old, "dev", name])
            changes.append(f"removed old address {old} from {name}")


def routes(spec, changes):
    for r in spec.get("routes", []):
        now = [x for x in ip_json("-4", "route", "show", "exact", r["dst"]) if x.get("dst") == r["dst"]]
        if any(x.get("gateway") == r["via"] for x in now):
            continue
        run(["ip", "route", "replace", r["dst"], "via", r["via"]])
        changes.append("route {} via {}".format(r["dst"], r["via"]))
    prune = spec.get("prune")  # {"within": pod CIDR, "via": node addresses}: routes no node wants now
    if not prune:
        return
    within = ipaddress.ip_network(prune["within"])
    wanted = {(r["dst"], r["via"]) for r in spec.get("routes", [])}
    for x in ip_json("-4", "route", "show"):
        dst, via = x.get("dst"), x.get("gateway")
        if via not in prune["via"] or (dst, via) in wanted or "/" not in str(dst):
            continue
        if ipaddress.ip_network(dst).subnet_of(within):
            run(["ip", "route", "del", dst, "via", via])
            changes.append(f"removed stale route {dst} via {via}")


def masquerade(spec, changes):
    """One MASQUERADE rule for this node's pods leaving the cluster CIDR when the node owns it
    (spec["masquerade"]); every other rule of ours removed (all of them where the plugin owns it)."""
    subnet, cluster = spec["pod_subnet"], spec["cluster_cidr"]
    wanted = (subnet, cluster) if spec.get("masquerade") else None
    listed = run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"]).stdout.decode()
    have = set()
    for line in listed.splitlines():
        args = shlex.split(line)
        if MASQ_COMMENT not in args or args[:1] != ["-A"]:
            continue
        src, dst = args[args.index("-s") + 1], args[args.index("-d") + 1]
        if (src, dst) == wanted and wanted not in have:
            have.add(wanted)
            continue
        run(["iptables", "-w", "-t", "nat", "-D", *args[1:]])
        changes.append(f"removed {'stale ' if wanted else ''}masquerade of {src} leaving {dst}")
    if wanted and wanted not in have:
        rule = ["-s", subnet, "!", "-d", cluster, "-m", "comment", "--comment", MASQ_COMMENT]
        run(["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", *rule, "-j", "MASQUERADE"])
        changes.append(f"masquerade {subnet} leaving {cluster}")


def nppnet_chains_removed(changes):
    """nppnet's chains (plugin/firewall.py) and the jumps to them gone, where another plugin is
    installed now: its pods are not nppnet's, and an old subnet's rules would accept them."""
    for table, chain, builtin in NPPNET_CHAINS:
        if run(["iptables", "-w", "-t", table, "-S", chain], check=False).returncode != 0:
            continue  # no such chain
        while run(["iptables", "-w", "-t", table, "-D", builtin, "-j", chain], check=False).returncode == 0:
            pass
        run(["iptables", "-w", "-t", table, "-F", chain])
        run(["iptables", "-w", "-t", table, "-X", chain])
        changes.append(f"removed nppnet's chain {chain} ({table}) and its jumps")


def _switch_on(path, change, changes):
    """A /proc/sys flag set to 1 (CHANGE reported when this call set it); False when it is 0 and
    cannot be written (a read-only /proc/sys)."""
    with open(path) as f:
        if f.read().strip() == "1":
            return True
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        return False
    changes.append(change)
    return True


def forwarding(changes, warnings):
    if not _switch_on("/proc/sys/net/ipv4/ip_forward", "enabled IPv4 forwarding", changes):
        warnings.append("IPv4 forwarding is off and /proc/sys is read-only: pods cannot reach other nodes")


def bridge_netfilter(changes, warnings):
    """br_netfilter loaded (modprobe when the node has the host's modules) and bridged IPv4 passing
    iptables; one warning with the reason where the node cannot have it."""
    why = None
    if not os.path.exists(BRIDGE_NF):
        modules = "/lib/modules/" + os.uname().release
        if not os.path.isdir(modules):
            why = f"the br_netfilter module is not loaded and this node has no {modules} to load it from"
        elif not shutil.which("modprobe"):
            why = "the br_netfilter module is not loaded and this node has no modprobe (kmod)"
        else:
            p = run(["modprobe", "br_netfilter"], check=False)
            if p.returncode == 0 and os.path.exists(BRIDGE_NF):
                changes.append("loaded br_netfilter")
            else:
                err = p.stderr.decode(errors="replace").strip().splitlines()
                why = "`modprobe br_netfilter` failed: " + (err[-1] if err else f"exit {p.returncode}")
    if why is None:
        if _switch_on(BRIDGE_NF, "set net.bridge.bridge-nf-call-iptables=1", changes):
            return
        why = "net.bridge.bridge-nf-call-iptables is 0 and /proc/sys is read-only in this node"
    warnings.append(
        f"{why}: replies bridged straight back to a pod skip conntrack, so a pod reaching a pod on its "
        "own node through a Service fails (on the host: `modprobe br_netfilter`, then recreate the node)"
    )


def make_right(spec, changes, warnings):
    """The node's own part made right (see the module docstring); the keeper calls it too."""
    if spec.get("bridge"):
        bridge(spec, changes)
    routes(spec, changes)
    if spec.get("pod_subnet"):
        if shutil.which("iptables"):
            masquerade(spec, changes)
        else:
            warnings.append("no iptables in this node: pod traffic leaving the cluster is not masqueraded")
        forwarding(changes, warnings)
        bridge_netfilter(changes, warnings)


def keeper_config(spec):
    """The keeper's config after this setup: the spec's keys it keeps (a node only rerouted keeps the
    rest of what it had)."""
    if spec.get("keeper"):
        return {k: spec[k] for k in KEEPER_KEYS if k in spec}
    conf = read_json(KEEPER_CONF)
    if isinstance(conf, dict) and "routes" in spec:
        return dict(conf, routes=spec["routes"])
    return conf


def plugin_answers(spec):
    """AgentError unless the new plugin executable for spec["version_of"] answers CNI VERSION here, in the
    node, where the runtime will run it (the file still beside its place). Run before any file replaces
    another: a refused plugin leaves the node as it was. An unchanged plugin answered when it came."""
    pending = {old: new for new, old in spec.get("rename", [])}
    path = spec.get("version_of")
    if path not in pending:
        return
    from .base import AgentError
    from .cniversion import ask_version

    why = ask_version(pending[path])
    if why:
        for new in pending.values():
            if os.path.lexists(new):
                os.unlink(new)
        name = os.path.basename(path)
        raise AgentError(f"{name} is not a CNI plugin when run in this node: {why}; nothing in the node "
                         "was changed")


def setup(spec):
    changes, warnings = [], []
    plugin_answers(spec)
    for new, old in spec.get("rename", []):  # a file written beside its place, replaced whole
        os.replace(new, old)
    make_right(spec, changes, warnings)
    if spec.get("make_bridge") and spec.get("pod_subnet") and shutil.which("iptables"):
        # another plugin than nppnet installed now: nppnet's leftovers go, once (the keeper does not
        # fight a plugin that makes chains of those names itself)
        nppnet_chains_removed(changes)
    for path in spec.get("remove", []):
        if os.path.exists(path):
            os.unlink(path)
            changes.append(f"removed {path}")
    if spec.get("state") and read_json(STATE) != spec["state"]:
        write_json(STATE, spec["state"])
    conf = keeper_config(spec)
    if conf is not None and read_json(KEEPER_CONF) != conf:
        write_json(KEEPER_CONF, conf)
    return {"changes": changes, "warnings": warnings}
