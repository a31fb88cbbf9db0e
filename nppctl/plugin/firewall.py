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
Every rule carries the comment nppnet:BRIDGE. One `iptables-save` and one
`iptables-restore --noflush` do it all.

Spawning iptables costs milliseconds, so ADD calls ensure() only when the bridge was just
created or the marker DATA_DIR/.firewall/<bridge>.<subnet>.stamp (boot ID + the rules) does not match:
rules do not survive a reboot, and the boot ID changes with it. A rule of the bridge the config no
longer asks for is deleted when it names this network's subnet: two networks sharing one bridge keep
each other's rules.
"""

import fcntl
from binascii import crc32

from . import fs

FILTER_CHAIN = "NPPNET-FORWARD"
NAT_CHAIN = "NPPNET-POSTROUTING"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_SEARCH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin")


class FirewallError(Exception):
    pass


def wanted_rules(bridge, subnet, cluster_cidr, ip_masq):
    """{table: [rule lines as iptables-save prints them]} for one bridge."""
    tag = f'-m comment --comment "{_tag(bridge)}"'
    rules = {
        "subnet": str(subnet),  # the rules' scope: networks sharing a bridge keep each other's
        "filter": [
            f"-A {FILTER_CHAIN} -d {subnet} {tag} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {FILTER_CHAIN} -s {subnet} {tag} -j ACCEPT",
        ],
        "nat": [],
    }
    if cluster_cidr != subnet:
        rules["filter"].append(f"-A {FILTER_CHAIN} -s {cluster_cidr} -d {subnet} {tag} -j ACCEPT")
    if ip_masq:
        rules["nat"].append(f"-A {NAT_CHAIN} -s {subnet} ! -d {cluster_cidr} {tag} -j MASQUERADE")
    return rules


def _tag(bridge):
    """The rule comment naming the bridge, in characters iptables-save prints as they are."""
    if bridge.isascii() and all(c.isalnum() or c in "_.-" for c in bridge):
        return "nppnet:" + bridge
    return f"nppnet:{crc32(bridge.encode('utf-8', 'surrogateescape')):08x}"


def _dir(data_dir):
    return fs.join(data_dir, ".firewall")  # a network (store) name never starts with "."


def _marker(data_dir, bridge, rules):
    """DATA_DIR/.firewall/<bridge>.<subnet>.stamp: one per network of the bridge."""
    return fs.join(_dir(data_dir), "{}.{}.stamp".format(bridge, rules["subnet"].replace("/", "_")))


def _boot_id():
    try:
        with open(BOOT_ID, "rb") as f:
            return f.read().strip().decode()
    except OSError:
        return "unknown"


def _stamp(rules):
    return "{}\n{}\n".format(_boot_id(), "\n".join(rules["filter"] + rules["nat"]))


def in_place(data_dir, bridge, rules):
    """True when the marker says these rules were set up since this boot (no process spawned)."""
    try:
        with open(_marker(data_dir, bridge, rules)) as f:
            return f.read() == _stamp(rules)
    except OSError:
        return False


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


def restore_script(saved, bridge, rules):
    """The iptables-restore --noflush input that turns `saved` into `saved` + rules of bridge."""
    tag = f'--comment "{_tag(bridge)}" '
    scope = rules.get("subnet")  # None: every rule of the bridge (remove)
    script = []
    for table, chain, builtin, jump in (
        ("filter", FILTER_CHAIN, "FORWARD", "-A FORWARD"),
        ("nat", NAT_CHAIN, "POSTROUTING", "-I POSTROUTING 1"),
    ):
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
            and tag in line + " "
            and (scope is None or f" {scope} " in line)
            and line not in want
        ]
        changes += [line for line in want if line not in lines]
        if changes:
            script += ["*" + table] + changes + ["COMMIT"]
    return "\n".join(script) + "\n" if script else ""


def ensure(data_dir, bridge, rules):
    """Put rules (and net.ipv4.ip_forward=1) in place once per boot; FirewallError on failure."""
    fs.makedirs(_dir(data_dir))
    lock = fs.open(fs.join(_dir(data_dir), "lock"), fs.O_RDWR | fs.O_CREAT | fs.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _enable_forwarding()
        saved = _parse_save(_run([_tool("iptables-save")]))
        script = restore_script(saved, bridge, rules)
        if script:
            _run([_tool("iptables-restore"), "--noflush"], script.encode())
        tmp = _marker(data_dir, bridge, rules) + ".tmp"
        with open(tmp, "w") as f:
            f.write(_stamp(rules))
        fs.replace(tmp, _marker(data_dir, bridge, rules))
    finally:
        fs.close(lock)


def _enable_forwarding():
    try:
        with open(IP_FORWARD, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    except OSError:
        pass  # a read-only /proc/sys: pods on this bridge still reach each other


def remove(data_dir, bridge):
    """Delete this bridge's rules and markers, of every network on it (tests and uninstall);
    chains and jumps stay."""
    saved = _parse_save(_run([_tool("iptables-save")]))
    script = restore_script(saved, bridge, {"filter": [], "nat": []})
    lines = [x for x in script.splitlines() if not x.startswith(("-I ", "-A ", ":"))]
    if any(x.startswith("-D") for x in lines):
        _run([_tool("iptables-restore"), "--noflush"], ("\n".join(lines) + "\n").encode())
    try:
        names = fs.listdir(_dir(data_dir))
    except OSError:
        return
    for name in names:
        if name.startswith(bridge + ".") and name.endswith(".stamp"):
            try:
                fs.unlink(fs.join(_dir(data_dir), name))
            except OSError:
                pass


def missing(rules):
    """The wanted rules (and jumps to nppnet's chains) iptables does not hold now (CHECK)."""
    saved = _parse_save(_run([_tool("iptables-save")]))
    gone = []
    for table, chain, builtin in (("filter", FILTER_CHAIN, "FORWARD"), ("nat", NAT_CHAIN, "POSTROUTING")):
        lines = saved.get(table, (set(), []))[1]
        if rules[table] and f"-A {builtin} -j {chain}" not in lines:
            gone.append(f"-A {builtin} -j {chain}")
        gone += [line for line in rules[table] if line not in lines]
    return gone
