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
about 0.1 ms) and looks for the jumps, for each wanted rule's comment and for a rule of this
network that is not wanted any more (an old subnet, ipMasq turned off, a narrower clusterCIDR);
only when one is missing or one is stale (or the kernel's nf_tables does not hold iptables' rules:
the legacy backend) does ADD run ensure(), which spawns iptables under a lock. ensure() deletes
the rules of this network that are not wanted any more and the rules of the bridge from before
rules named their network; other networks' rules on the same bridge stay.

Every network of the host changes the same two chains, so ensure() and remove() take one
host-wide lock (LOCK, /run/nppnet/firewall.lock) around their save and restore, whatever the
network's dataDir. And a restore never declares nppnet's chains (`:NPPNET-FORWARD - [0:0]`): under
--noflush, declaring a chain that exists flushes it (iptables-nft 1.8.9), which wiped another
network's rules when its ADD had just made the chain. A missing chain is made with `-N` inside the
restore instead, which leaves an existing chain as it is and fails the whole restore when the chain
appeared since the save (something outside nppnet made it): then ensure() saves and restores once
more.
"""

import fcntl
from binascii import crc32
from posix import O_NOFOLLOW

from . import fs

FILTER_CHAIN = "NPPNET-FORWARD"
NAT_CHAIN = "NPPNET-POSTROUTING"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
LOCK = "/run/nppnet/firewall.lock"  # host-wide: every network's save and restore take turns
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


def in_place(rules):
    """True when nf_tables holds the jumps to nppnet's chains, every wanted rule (found by its
    comment) and no rule of this network that is not wanted; False when one is missing, one is
    stale, or the rules cannot be read so (then ensure() decides)."""
    from .netlink import Netlink, NetlinkError

    network = rules["network"].encode()
    bare = network.split(b" ", 1)[0] + b"\0"  # the bridge's comment from before rules named a network
    try:
        with Netlink(NETFILTER) as nft:
            for table, chain, builtin, _ in CHAINS:
                held = nft.nft_rules(table, chain)
                if bare in held or _foreign_marks(held, network, rules["marks"].get(table, ())):
                    return False  # a stale rule of this network (a table with no wanted rule too)
                if not rules[table]:
                    continue
                if chain.encode() + b"\0" not in nft.nft_rules(table, builtin):
                    return False
                if any(mark not in held for mark in rules["marks"][table]):
                    return False
    except (NetlinkError, OSError):
        return False
    return True


def _foreign_marks(held, network, marks):
    """True when held (raw nf_tables rules) carries a comment starting with network that is not
    one of marks: a rule of this network that is not wanted any more."""
    at = held.find(network)
    while at >= 0:
        end = held.find(b"\0", at)
        if held[at : end if end >= 0 else len(held)] not in marks:
            return True
        at = held.find(network, at + len(network))
    return False


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


def _stale(lines, chain, tag, network, want):
    """The lines of chain that carry this network's comment (or the bridge's bare one, from before
    comments named a network) and are not wanted; without network: every rule of the bridge."""
    return [
        line
        for line in lines
        if line.startswith(f"-A {chain} ")
        and _owned(line, tag)
        and (network is None or f'--comment "{network}' in line or f'--comment "{tag}"' in line)
        and line not in want
    ]


def restore_script(saved, bridge, rules):
    """The iptables-restore --noflush input that turns `saved` into `saved` + rules of bridge,
    less the rules of this network (rules["network"]) that are not wanted and the bridge's rules
    from before comments named a network. Without rules["network"]: every rule of the bridge goes.
    A missing chain is made with -N, never declared (":CHAIN"): --noflush empties a declared
    chain that exists by then. A table with no wanted rule gets no chain and no jump."""
    tag = _tag(bridge)
    network = rules.get("network")
    script = []
    for table, chain, builtin, jump in CHAINS:
        chains, lines = saved.get(table, (set(), []))
        want = rules[table]
        changes = []
        if want and chain not in chains:
            changes.append(f"-N {chain}")
        if want and f"-A {builtin} -j {chain}" not in lines:
            changes.append(f"{jump} -j {chain}")
        changes += ["-D" + line[2:] for line in _stale(lines, chain, tag, network, want)]
        changes += [line for line in want if line not in lines]
        if changes:
            script += ["*" + table] + changes + ["COMMIT"]
    return "\n".join(script) + "\n" if script else ""


def _locked(fallback=None):
    """The host-wide lock's descriptor, held (LOCK_EX) until closed; where /run cannot hold it (a
    read-only /run), fallback (a folder) holds the lock instead when given."""
    try:
        fs.makedirs(fs.dirname(LOCK), 0o700)
        lock = fs.open(LOCK, fs.O_RDWR | fs.O_CREAT | fs.O_CLOEXEC | O_NOFOLLOW, 0o600)
    except OSError:
        if fallback is None:
            raise
        fs.makedirs(fallback)
        lock = fs.open(fs.join(fallback, "lock"), fs.O_RDWR | fs.O_CREAT | fs.O_CLOEXEC | O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    except BaseException:
        fs.close(lock)
        raise
    return lock


def ensure(data_dir, bridge, rules):
    """Put rules in place and this network's unwanted ones away; FirewallError on failure.
    Every network's ADD takes turns under the host-wide LOCK (not one per dataDir: every network
    changes the same chains; DATA_DIR/.firewall holds it only where /run cannot), and
    iptables-restore waits for the xtables lock. A restore that fails (a chain or rule changed by
    something else since the save) is tried once more on a fresh save."""
    lock = _locked(fs.join(data_dir, ".firewall"))  # a network (store) name never starts with "."
    try:
        for attempt in (1, 2):
            script = restore_script(save(), bridge, rules)
            if not script:
                return
            try:
                _run([_tool("iptables-restore"), "-w", "--noflush"], script.encode())
                return
            except FirewallError:
                if attempt == 2:
                    raise
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


def save():
    """{table: (set of chain names, list of rule lines)}: iptables-save now."""
    return _parse_save(_run([_tool("iptables-save")]))


def remove(bridge):
    """Delete this bridge's rules, of every network on it (tests and uninstall); chains and
    jumps stay."""
    lock = _locked()
    try:
        script = restore_script(save(), bridge, {"filter": [], "nat": []})
        if script:
            _run([_tool("iptables-restore"), "-w", "--noflush"], script.encode())
    finally:
        fs.close(lock)


def missing(rules, saved=None):
    """The wanted rules (and jumps to nppnet's chains) iptables does not hold now (CHECK)."""
    saved = save() if saved is None else saved
    gone = []
    for table, chain, builtin, _ in CHAINS:
        lines = saved.get(table, (set(), []))[1]
        if rules[table] and f"-A {builtin} -j {chain}" not in lines:
            gone.append(f"-A {builtin} -j {chain}")
        gone += [line for line in rules[table] if line not in lines]
    return gone


def unwanted(bridge, rules, saved=None):
    """The rules of this network (and the bridge's from before comments named a network) that
    iptables holds and rules does not want (CHECK); ensure() removes them."""
    saved = save() if saved is None else saved
    tag = _tag(bridge)
    return [
        line
        for table, chain, _, _ in CHAINS
        for line in _stale(saved.get(table, (set(), []))[1], chain, tag, rules["network"], rules[table])
    ]
