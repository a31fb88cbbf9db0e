"""A ClusterIP Service as iptables rules shaped as kube-proxy's iptables mode, for labs with no kube-proxy.

`service` with spec {"action": "add", "name", "cluster_ip", "port", "endpoints": [{"ip", "port"}],
"cluster_cidr" (default: the installed conflist's clusterCIDR)} writes, in the nat table (chain names
NPPCTL-*, so a real kube-proxy's KUBE-* never collide with them):

  PREROUTING, OUTPUT  -j NPPCTL-SERVICES                      (the "service portals")
  POSTROUTING         -j NPPCTL-POSTROUTING
  NPPCTL-SERVICES     -d CLUSTER_IP/32 -p tcp --dport PORT -j NPPCTL-SVC-<hash>
  NPPCTL-SVC-<hash>   ! -s CLUSTER_CIDR -d CLUSTER_IP/32 ... -j NPPCTL-MARK-MASQ   (from outside the pods)
                      -m statistic --mode random --probability 1/n -j NPPCTL-SEP-<hash>  (one per endpoint)
  NPPCTL-SEP-<hash>   -s ENDPOINT/32 -j NPPCTL-MARK-MASQ        (hairpin: a pod reaching itself)
                      -p tcp -j DNAT --to-destination ENDPOINT:PORT
  NPPCTL-MARK-MASQ    -j MARK --or-mark MASQ_MARK
  NPPCTL-POSTROUTING  unmarked: RETURN; clear the mark; MASQUERADE

The chains are written in one `iptables-restore --noflush` (a declared chain starts empty), the jumps
from the builtin chains added when missing. `action: "del"` removes the jumps and every NPPCTL- chain
of this module; both are idempotent.
"""

import base64
import hashlib
import shlex
import subprocess

from .base import AgentError, conf_files, load_conflist, run

PREFIX = "NPPCTL-"
SERVICES, POSTROUTING, MARK_MASQ = "NPPCTL-SERVICES", "NPPCTL-POSTROUTING", "NPPCTL-MARK-MASQ"
SVC, SEP = "NPPCTL-SVC-", "NPPCTL-SEP-"
OURS = (SERVICES, POSTROUTING, MARK_MASQ)
MASQ_MARK = "0x10000"  # kube-proxy uses 0x4000 (bit 14), its KUBE-MARK-DROP 0x8000: a bit of our own
JUMPS = (
    ("PREROUTING", SERVICES, "nppctl service portals"),
    ("OUTPUT", SERVICES, "nppctl service portals"),
    ("POSTROUTING", POSTROUTING, "nppctl postrouting rules"),
)


def chain_name(prefix, *parts):
    """prefix + 16 characters of base32(sha256(parts)): the way kube-proxy names its per-service chains."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def _q(text):
    return '"' + text.replace('"', "") + '"'


def restore_lines(spec):
    """The nat table's rules for spec's Service, as iptables-restore reads them."""
    name, cip, port = spec["name"], spec["cluster_ip"], int(spec["port"])
    endpoints = spec["endpoints"]
    svc = chain_name(SVC, name, "tcp")
    seps = [chain_name(SEP, name, "tcp", "{}:{}".format(ep["ip"], ep["port"])) for ep in endpoints]
    comment = _q(f"{name} cluster IP")
    lines = ["*nat"] + [f":{c} - [0:0]" for c in (SERVICES, POSTROUTING, MARK_MASQ, svc, *seps)]
    lines += [
        f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_MARK}",
        f"-A {POSTROUTING} -m comment --comment {_q('nppctl service traffic requiring SNAT')} -j MASQUERADE",
        f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_MARK}",
        f"-A {SERVICES} -d {cip}/32 -p tcp -m comment --comment {comment} -m tcp --dport {port} -j {svc}",
    ]
    if spec.get("cluster_cidr"):
        lines.append(
            f"-A {svc} ! -s {spec['cluster_cidr']} -d {cip}/32 -p tcp -m comment --comment {comment} "
            f"-m tcp --dport {port} -j {MARK_MASQ}"
        )
    for i, (ep, sep) in enumerate(zip(endpoints, seps)):
        target = "{}:{}".format(ep["ip"], ep["port"])
        left = len(seps) - i
        pick = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.11f} "
        lines.append(f"-A {svc} -m comment --comment {_q(f'{name} -> {target}')} {pick}-j {sep}")
        lines.append(f"-A {sep} -s {ep['ip']}/32 -m comment --comment {_q(name)} -j {MARK_MASQ}")
        lines.append(
            f"-A {sep} -p tcp -m comment --comment {_q(name)} -m tcp -j DNAT --to-destination {target}"
        )
    return lines + ["COMMIT"]


def installed_cluster_cidr():
    """The pod network the node's first conflist names (nppnet's clusterCIDR), as kube-proxy's
    --cluster-cidr; None when it names none (kube-proxy then writes no masquerade rule for it)."""
    files = conf_files()
    if not files:
        return None
    try:
        conf = load_conflist(files[0])
    except AgentError:
        return None
    for plugin in conf["plugins"]:
        if isinstance(plugin.get("clusterCIDR"), str):
            return plugin["clusterCIDR"]
    return None


def _jump(builtin, chain, comment):
    return [builtin, "-m", "comment", "--comment", comment, "-j", chain]


def _ours(chain):
    return chain in OURS or chain.startswith((SVC, SEP))


def remove():
    removed = 0
    for builtin, chain, comment in JUMPS:
        rule = _jump(builtin, chain, comment)
        while run(["iptables", "-w", "-t", "nat", "-D", *rule], check=False).returncode == 0:
            removed += 1
    listed = run(["iptables", "-w", "-t", "nat", "-S"]).stdout.decode().splitlines()
    chains = [w[1] for w in map(shlex.split, listed) if w[:1] == ["-N"] and len(w) > 1 and _ours(w[1])]
    for chain in chains:
        run(["iptables", "-w", "-t", "nat", "-F", chain])
    for chain in chains:
        run(["iptables", "-w", "-t", "nat", "-X", chain])
    return removed + len(chains)


def service(spec):
    action = spec.get("action", "add")
    if action == "del":
        return {"removed": remove()}
    if action != "add":
        raise AgentError(f"service action {action!r} unknown: add or del")
    remove()  # chains of an earlier Service (another endpoint, another IP) go first
    if "cluster_cidr" not in spec:
        spec = dict(spec, cluster_cidr=installed_cluster_cidr())
    lines = restore_lines(spec)
    try:
        p = subprocess.run(["iptables-restore", "-w", "--noflush"], input=("\n".join(lines) + "\n").encode(),
                           capture_output=True)
    except FileNotFoundError:
        raise AgentError("`iptables-restore` is not in this node (the lab needs iptables)") from None
    if p.returncode != 0:
        raise AgentError("iptables-restore failed: " + p.stderr.decode(errors="replace").strip())
    for builtin, chain, comment in JUMPS:
        rule = _jump(builtin, chain, comment)
        if run(["iptables", "-w", "-t", "nat", "-C", *rule], check=False).returncode != 0:
            run(["iptables", "-w", "-t", "nat", "-I", *rule])
    return {"rules": lines[1:-1]}
