"""iptables rules that let a bridge's pods talk on a Docker host, and masquerade their traffic.

Docker sets the FORWARD policy to DROP with bridge netfilter on, which drops traffic between
pods on any other bridge. nppnet keeps its own chains:
  filter NPPNET-FORWARD      -d SUBNET -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
                             -s SUBNET -j ACCEPT
                             -s CLUSTER_CIDR -d SUBNET -j ACCEPT   (other nodes' pods; when wider)
  nat    NPPNET-POSTROUTING  -s SUBNET ! -d CLUSTER_CIDR -j MASQUERADE   (ipMasq only)
as narrow as the reference `firewall` plugin's (replies toward pods, what pods send), with the
pod network's own traffic on top. NPPNET-FORWARD is jumped from the END of FORWARD, so whatever
comes first (kube-proxy's INVALID drop, a policy engine, DOCKER-USER) sees pod traffic before
nppnet accepts it; NPPNET-POSTROUTING from the top of POSTROUTING, as masquerading plugins do.
Every rule carries the comment "nppnet:BRIDGE NETWORK:RULE" (NETWORK and RULE: crc32 digests of
the network's name and of the rule), so a rule names its bridge and network and is found by its
comment alone. One `iptables-save` and one `iptables-restore -w --noflush` do it all.

Rules vanish (a reboot, `iptables -F`, an `iptables-restore` without --noflush), so every ADD
verifies them: in_place() reads the four chains through nf_tables' netlink (no process spawned:
about 0.1 ms) and looks for the jumps and for each wanted rule's comment; only when one is missing
(or the kernel's nf_tables does not hold iptables' rules: the legacy backend) does ADD run
ensure(), which spawns iptables under a lock. ensure() deletes the rules of this network that are
not wanted any more (an old subnet, ipMasq turned off) and the rules of the bridge from before
rules named their network; other networks' rules on the same bridge stay.
"""

import fcntl
from binascii import crc32

from . import fs

FILTER_CHAIN = "NPPNET-FORWARD"
NAT_CHAIN = "NPPNET-POSTROUTING"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_SEARCH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin")
CHAINS = (  # table, nppnet's chain, the built-in chain jumping to it, how the jump is added
    ("filter", FILTER_CHAIN, "FORWARD", "-A FORWARD"),
    ("nat", NAT_CHAIN, "POSTROUTING", "-I POSTROUTING 1"),
)


class FirewallError(Exception):
    pass


def _digest(text):
    return f"{crc32(text.encode('utf-8', 'surrogateescape')):08x}"


def wanted_rules(bridge, subnet, cluster_cidr, ip_masq, network=""):
    """{table: [rule lines as iptables-save prints them]} of one network on one bridge, with
    "subnet", "network" (the comment's network part) and "marks" ({table: [comments as bytes]})."""
    net = _digest(network)
    rules = {"subnet": str(subnet), "network": f"{_tag(bridge)} {net}:", "filter": [], "nat": [], "marks": {}}
    wanted = [
        ("filter", FILTER_CHAIN, f"-d {subnet}", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("filter", FILTER_CHAIN, f"-s {subnet}", "-j ACCEPT"),
    ]
    if cluster_cidr != subnet:
        wanted.append(("filter", FILTER_CHAIN, f"-s {cluster_cidr} -d {subnet}", "-j ACCEPT"))
    if ip_masq:
        wanted.append(("nat", NAT_CHAIN, f"-s {subnet} ! -d {cluster_cidr}", "-j MASQUERADE"))
    for table, chain, match, action in wanted:
        comment = f"{_tag(bridge)} {net}:{_digest(match + ' ' + action)}"
        rules[table].append(f'-A {chain} {match} -m comment --comment "{comment}" {action}')
        rules["marks"].setdefault(table, []).append(comment.encode())
    return rules


def _tag(bridge):
    """The rule comment naming the bridge, in characters iptables-save prints as they are."""
    if bridge.isascii() and all(c.isalnum() or c in "_.-" for c in bridge):
        return "nppnet:" + bridge
    return f"nppnet:{crc32(bridge.encode('utf-8', 'surrogateescape')):08x}"


def _dir(data_dir):
    return fs.join(data_dir, ".firewall")  # a network (store) name never starts with "."


def in_place(rules):
    """True when nf_tables holds the jumps to nppnet's chains and every wanted rule (found by its
    comment); False when one is missing or the rules cannot be read so (then ensure() decides)."""
    from .netlink import Netlink, NetlinkError

    try:
        with Netlink(NETFILTER) as nft:
            for table, chain, builtin, _ in CHAINS:
                if not rules[table]:
                    continue
                if chain.encode() + b"\0" not in nft.nft_rules(table, builtin):
                    return False
                held = nft.nft_rules(table, chain)
                if any(mark not in held for mark in rules["marks"][table]):
                    return False
    except (NetlinkError, OSError):
        return False
    return True


NETFILTER = 12  # NETLINK_NETFILTER


def _tool(name):
    """iptables-save/-restore from PATH's absolute entries (an empty or relative entry would
    resolve against the runtime's working directory), then the usual sbin directories."""
    for d in fs.getenv("PATH", "").split(":") + list(_SEARCH):
        if not d.startswith("/"):
            continue
        path = fs.join(d, name)
        if fs.access(path, fs.X_OK):
            return path
    raise FirewallError(f"{name} not found (install iptables)")


def _run(argv, stdin=None):
    import subprocess  # only here: it costs milliseconds to import

    done = subprocess.run(argv, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise FirewallError(
            "{} failed: {}".format(" ".join(argv), done.stderr.decode("utf-8", "replace").strip())
        )
    return done.stdout.decode("utf-8", "replace")


def _parse_save(text):
    """{table: (set of chain names, list of rule lines)} from iptables-save output."""
    tables, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = (set(), [])
        elif table and line.startswith(":"):
            tables[table][0].add(line[1:].split(" ", 1)[0])
        elif table and line.startswith("-A "):
            tables[table][1].append(line.strip())
    return tables


def _owned(line, tag):
    """True for a rule line whose comment names the bridge of tag (both comment forms)."""
    return f'--comment "{tag}"' in line or f'--comment "{tag} ' in line


def restore_script(saved, bridge, rules):
    """The iptables-restore --noflush input that turns `saved` into `saved` + rules of bridge,
    less the rules of this network (rules["network"]) that are not wanted and the bridge's rules
    from before comments named a network. Without rules["network"]: every rule of the bridge goes."""
    tag = _tag(bridge)
    network = rules.get("network")
    script = []
    for table, chain, builtin, jump in CHAINS:
        chains, lines = saved.get(table, (set(), []))
        want = rules[table]
        changes = []
        if chain not in chains:
            changes.append(f":{chain} - [0:0]")  # declared only when missing: --noflush empties existing ones
        if f"-A {builtin} -j {chain}" not in lines:
            changes.append(f"{jump} -j {chain}")
        changes += [
            "-D" + line[2:]
            for line in lines
            if line.startswith(f"-A {chain} ")
            and _owned(line, tag)
            and (network is None or f'--comment "{network}' in line or f'--comment "{tag}"' in line)
            and line not in want
        ]
        changes += [line for line in want if line not in lines]
        if changes:
            script += ["*" + table] + changes + ["COMMIT"]
    return "\n".join(script) + "\n" if script else ""


def ensure(data_dir, bridge, rules):
    """Put rules (and net.ipv4.ip_forward=1) in place; FirewallError on failure. Parallel ADDs
    take turns (a lock in DATA_DIR/.firewall), and iptables-restore waits for the xtables lock."""
    fs.makedirs(_dir(data_dir))
    lock = fs.open(fs.join(_dir(data_dir), "lock"), fs.O_RDWR | fs.O_CREAT | fs.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = _parse_save(_run([_tool("iptables-save")]))
        script = restore_script(saved, bridge, rules)
        if script:
            _run([_tool("iptables-restore"), "-w", "--noflush"], script.encode())
    finally:
        fs.close(lock)


def enable_forwarding():
    """net.ipv4.ip_forward=1 (one read when it is on already)."""
    try:
        with open(IP_FORWARD, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    except OSError:
        pass  # a read-only /proc/sys: pods on this bridge still reach each other


def remove(bridge):
    """Delete this bridge's rules, of every network on it (tests and uninstall); chains and
    jumps stay."""
    saved = _parse_save(_run([_tool("iptables-save")]))
    script = restore_script(saved, bridge, {"filter": [], "nat": []})
    lines = [x for x in script.splitlines() if not x.startswith(("-I ", "-A ", ":"))]
    if any(x.startswith("-D") for x in lines):
        _run([_tool("iptables-restore"), "-w", "--noflush"], ("\n".join(lines) + "\n").encode())


def missing(rules):
    """The wanted rules (and jumps to nppnet's chains) iptables does not hold now (CHECK)."""
    saved = _parse_save(_run([_tool("iptables-save")]))
    gone = []
    for table, chain, builtin, _ in CHAINS:
        lines = saved.get(table, (set(), []))[1]
        if rules[table] and f"-A {builtin} -j {chain}" not in lines:
            gone.append(f"-A {builtin} -j {chain}")
        gone += [line for line in rules[table] if line not in lines]
    return gone
