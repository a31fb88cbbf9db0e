"""Where the card's pods live, made before its checks run and undone after them.

In the throwaway sandbox on the host (launch.py starts the engine under `unshare --mount --net
--pid --uts --ipc --cgroup --fork --mount-proc`): enter_sandbox() makes its private mounts. Inside a lab node:
isolated() gives the config a network, bridge, store and subnet of the card's own, and
remove_isolated() takes them away. make_bridge() makes a --bridge first.

Standard library only, Python 3.9 syntax: this runs wherever the card runs.
"""

import json
import os
import re

from nppctl.conformance.node import NETNS_DIR, ip_json, run

# where CNI plugins write: fresh tmpfs in the sandbox (everything else is the host's, read-only)
SANDBOX_DIRS = ("/tmp", "/run", "/var/lib/cni", "/var/cache", "/var/log", "/dev/shm", "/etc/cni")
OWN_FS = ("/proc", "/sys")  # the sandbox's own proc (unshare --mount-proc) and sysfs
STAGE = "/run/nppctl-conformance"  # inside the sandbox's own /run


_ESCAPED = re.compile(rb"\\(040|011|012|134)")  # what the kernel's seq_path escapes


def unescape_mount_point(field):
    """A mountinfo path field (bytes) as os.fsdecode gives the path: the kernel escapes only space,
    tab, newline and backslash (\\040 \\011 \\012 \\134); every other byte, UTF-8 or not, is the
    name's own (surrogateescape keeps undecodable ones, so the path reaches `mount` unchanged)."""
    return os.fsdecode(_ESCAPED.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def _mount_points():
    """(mount point, fs type) of every mount in this namespace, parents first."""
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index(b"-") + 1]
            found.append((unescape_mount_point(fields[4]), os.fsdecode(fstype)))
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
        run(["mount", "-t", "overlay", "nppctl-conformance", "-o",
              f"lowerdir={d},upperdir={upper}/u,workdir={upper}/w", d], check=True)
        d = os.path.join(d, *reversed(missing))
        os.makedirs(d)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755", "nppctl-conformance", d], check=True)


def _read_only(point):
    run(["mount", "-o", "remount,bind,ro", point], check=True)


def enter_sandbox(spec):
    """In fresh mount, network, PID, UTS, IPC and cgroup namespaces (launch.py's unshare, /proc mounted
    anew): every mount of the host read-only (files bind-mounted too), fresh tmpfs where plugins
    write (SANDBOX_DIRS), /proc/sys read-only but for the namespace's own /proc/sys/net, a read-only
    sysfs of this network namespace, no namespace file of the host left mounted; the plugin dirs
    bound in read-only from before, lo up, forwarding on (as on a kind node)."""
    run(["mount", "--make-rprivate", "/"], check=True)
    dirs = [spec["plugin_dir"]] + [d for d in spec["cni_path"] if d != spec["plugin_dir"]]
    fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs]
    mounts = _mount_points()
    for point, fstype in reversed(mounts):  # bind-mounted namespaces of the host: a way out
        if fstype == "nsfs":
            run(["umount", "-l", point])
    for point, fstype in mounts:  # directories and files (a file bind mount: /etc/hosts in a container)
        if fstype != "nsfs" and not any(_under(point, top) for top in OWN_FS) and os.path.lexists(point):
            _read_only(point)
    run(["mount", "-t", "tmpfs", "-o", "mode=0700", "nppctl-conformance", "/run"], check=True)
    os.makedirs(STAGE)
    for d in SANDBOX_DIRS:
        if d != "/run" and not os.path.islink(d):
            _writable_dir(d, STAGE)
    run(["mount", "-t", "sysfs", "-o", "ro", "sysfs", "/sys"], check=True)
    run(["mount", "--bind", "/proc/sys", "/proc/sys"], check=True)
    run(["mount", "--bind", "/proc/sys/net", "/proc/sys/net"], check=True)
    _read_only("/proc/sys")
    bound = []
    for i, fd in enumerate(fds):
        target = os.path.join(STAGE, "path", str(i))
        os.makedirs(target)
        run(["mount", "--bind", f"/proc/{os.getpid()}/fd/{fd}", target], check=True)
        _read_only(target)
        os.close(fd)
        bound.append(target)
    os.makedirs(NETNS_DIR, exist_ok=True)
    run(["ip", "link", "set", "lo", "up"], check=True)
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
    run(["ip", "link", "del", own["bridge"]])
    _drop_rules(own["subnet"])


def _drop_rules(subnet):
    """Every iptables rule naming an address of SUBNET (or the card's network name in a comment), and the
    CNI-* chains those rules jump to (a reference plugin's ipMasq makes one per pod)."""
    import ipaddress
    import shlex

    net = ipaddress.ip_network(subnet)

    def ours(fields):
        for field in fields:
            if "nppctl-card-" in field:
                return True
            try:
                if ipaddress.ip_network(field, strict=False).subnet_of(net):
                    return True
            except (ValueError, TypeError):
                pass
        return False

    saved = run(["iptables-save"]).stdout.decode(errors="replace")
    table, chains = None, []
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            fields = shlex.split(line)
            if ours(fields):
                run(["iptables", "-w", "-t", table, "-D", *fields[1:]])
                if "-j" in fields and fields[fields.index("-j") + 1].startswith("CNI-"):
                    chains.append((table, fields[fields.index("-j") + 1]))
    for table, chain in chains:
        run(["iptables", "-w", "-t", table, "-F", chain])
        run(["iptables", "-w", "-t", table, "-X", chain])


# One card at a time in a node, and what an earlier one left behind goes first: a card killed mid-way
# (Ctrl-C on the host kills its work in the node, or the engine died) ran no clean-up, and the next
# would collide on its pod names. flock: a dead card's lock is released with its process.
CARD_LOCK = "/run/nppctl-card.lock"
BRIDGE_PREFIX = "npptbr"  # launch.py names the card's bridge in a node npptbr<pid>


def hold_node(own, prefix, scratch_root):
    """Wait for the node's card lock (held until this process ends), then sweep() what earlier cards
    left. Returns what was removed."""
    import fcntl

    fd = os.open(CARD_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # fd stays open: the lock lasts as long as the card
    return sweep(prefix, own["subnet"], scratch_root, keep=own["data_dir"])


def sweep(prefix, subnet, scratch_root, keep=None):
    """Remove earlier cards' pods (netns PREFIX-*), bridges (npptbr*), iptables rules naming SUBNET and
    scratch folders in SCRATCH_ROOT (but the one holding KEEP). Returns what was removed."""
    import shutil

    gone = []
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        names = []
    for name in names:
        if name.startswith(prefix + "-"):
            run(["ip", "netns", "del", name])
            gone.append(f"netns {name}")
    for link in ip_json("link", "show"):
        name = link.get("ifname", "")
        if name.startswith(BRIDGE_PREFIX):
            run(["ip", "link", "del", name])
            gone.append(f"link {name}")
    _drop_rules(subnet)
    try:
        folders = sorted(os.listdir(scratch_root))
    except OSError:
        folders = []
    for folder in folders:
        path = os.path.join(scratch_root, folder)
        if keep is None or not (keep + "/").startswith(path + "/"):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(f"folder {path}")
    return gone


def make_bridge(bridge):
    """The bridge with that address, up; True when this call created it (removed at the end)."""
    name, address = bridge["name"], bridge["address"]
    created = not ip_json("link", "show", "dev", name)
    if created:
        run(["ip", "link", "add", name, "type", "bridge"], check=True)
    run(["ip", "addr", "replace", address, "dev", name], check=True)
    run(["ip", "link", "set", name, "up"], check=True)
    return created
