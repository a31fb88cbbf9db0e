"""The nppnet entry of a network configuration (a .conf, or one plugin of a conflist as the
runtime sends it: name and cniVersion merged in, prevResult when chained).

Keys: subnet (required without ipam; or the course's subnet_network "10.244" + subnet_node "1"),
gateway (default: first host), bridge (cni0), mtu, ipMasq (false), clusterCIDR, hairpinMode (true),
dataDir, logFile, ipam (an IPAM plugin to delegate to, as the reference bridge does: it then hands
out the addresses, and subnet and gateway come from its result).
Unknown keys are ignored; a value that cannot be used is error 7 naming its key.
"""

from .addr import IPv4, Subnet, parse_cidr, parse_ip
from .names import valid_id, valid_ifname
from .protocol import invalid as _invalid
from .protocol import log_file_of

DEFAULT_BRIDGE = "cni0"
DEFAULT_DATA_DIR = "/var/lib/cni/nppnet"
VALID_ATTACHMENTS = "cni.dev/valid-attachments"


class NetConf:
    __slots__ = (
        "name",
        "version",
        "subnet",
        "gateway",
        "bridge",
        "mtu",
        "ip_masq",
        "cluster_cidr",
        "data_dir",
        "log_file",
        "prev_result",
        "hairpin",
        "ipam",
    )

    def __init__(self, conf, version):
        self.version = version
        self.name = _name(conf)
        self.ipam = _ipam(conf)
        if self.ipam is None:
            self.subnet = _subnet(conf)
            self.gateway = _gateway(conf, self.subnet)
        else:  # known once the IPAM plugin answers (use_ipam_result)
            self.subnet = self.gateway = None
        self.bridge = _bridge(conf)
        self.mtu = _mtu(conf)
        self.ip_masq = _bool(conf, "ipMasq", False)
        self.hairpin = _bool(conf, "hairpinMode", True)
        self.cluster_cidr = _cidr(conf, "clusterCIDR")
        if self.cluster_cidr is None:
            self.cluster_cidr = self.subnet
        self.data_dir = _path(conf, "dataDir", DEFAULT_DATA_DIR)
        self.log_file = log_file_of(conf)
        _path(conf, "logFile", self.log_file)
        self.prev_result = conf.get("prevResult")

    def use_address(self, subnet, gateway):
        """Delegated IPAM: the subnet and gateway of the address its plugin handed out."""
        self.subnet = subnet
        self.gateway = gateway
        if self.cluster_cidr is None:
            self.cluster_cidr = subnet

    def store(self):
        """This network's own address store (ipam.Store; used as `with nc.store() as store:`)."""
        from .ipam import Store  # not loaded by a call that never reserves

        return Store(self.data_dir, self.name, self.subnet, self.gateway)


def _ipam(conf):
    """The ipam section (a dict with a plugin "type"), or None when there is none."""
    value = conf.get("ipam")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("ipam", f'{value!r} must be an object with a "type" (an IPAM plugin, say host-local)')
    kind = value.get("type")
    if not isinstance(kind, str) or not valid_id(kind):
        raise _invalid("ipam", f'type {kind!r} must name an IPAM plugin in CNI_PATH, like "host-local"')
    return value


def _name(conf):
    name = conf.get("name")
    if name is None:
        raise _invalid("name", "is missing (the network name)")
    if not valid_id(name):
        raise _invalid("name", f"{name!r} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return name


def _cidr(conf, key):
    value = conf.get(key)
    if value is None:
        return None
    try:
        return parse_cidr(value)
    except ValueError:
        raise _invalid(key, f"{value!r} is not an IPv4 CIDR like 10.244.1.0/24") from None


def _subnet(conf):
    if conf.get("subnet") is None and conf.get("subnet_network") is not None:
        return _course_subnet(conf)
    subnet = _cidr(conf, "subnet")
    if subnet is None:
        raise _invalid("subnet", "is missing (this node's pod subnet, e.g. 10.244.1.0/24)")
    if subnet.prefixlen > 30:
        raise _invalid(
            "subnet", f"{subnet} is too small: it needs a gateway and a pod address (/30 or larger)"
        )
    return subnet


def _course_subnet(conf):
    """The course's 09-nppnet.conf: subnet_network "10.244" + subnet_node "1" = 10.244.1.0/24."""
    network, node = conf.get("subnet_network"), conf.get("subnet_node")
    if isinstance(node, int) and not isinstance(node, bool):
        node = str(node)
    if not isinstance(network, str) or network.count(".") != 1:
        raise _invalid("subnet_network", f'{network!r} must be the first two octets, like "10.244"')
    if not isinstance(node, str):
        raise _invalid("subnet_node", f'{node!r} must be the node\'s third octet, like "1"')
    try:
        return Subnet(parse_ip(f"{network}.{node}.0"), 24)
    except ValueError:
        raise _invalid(
            "subnet_network", f"{network!r} with subnet_node {node!r} is not an IPv4 /24"
        ) from None


def _gateway(conf, subnet):
    value = conf.get("gateway")
    if value is None:
        return IPv4(subnet.network_address + 1)
    try:
        gateway = parse_ip(value)
    except ValueError:
        raise _invalid("gateway", f"{value!r} is not an IPv4 address") from None
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise _invalid("gateway", f"{gateway} is not a host address of subnet {subnet}")
    return gateway


def _bridge(conf):
    value = conf.get("bridge", DEFAULT_BRIDGE)
    if not valid_ifname(value):
        raise _invalid(
            "bridge", f"{value!r} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)"
        )
    return value


def _mtu(conf):
    value = conf.get("mtu")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65535:
        raise _invalid("mtu", f"{value!r} must be an integer from 68 to 65535")
    return value


def _bool(conf, key, default):
    value = conf.get(key, default)
    if not isinstance(value, bool):
        raise _invalid(key, f"{value!r} must be true or false")
    return value


def _path(conf, key, default):
    value = conf.get(key, default)
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value or value.rstrip("/") == "":
        raise _invalid(key, f"{value!r} must be an absolute path")
    return value


def valid_attachments(conf):
    """GC: the {containerID, ifname} pairs the runtime still uses, as a set of tuples. null (what
    libcni sends when no attachment is left: a nil Go slice) and a missing key mean none."""
    value = conf.get(VALID_ATTACHMENTS)
    if value is None:
        return set()
    if not isinstance(value, list):
        raise _invalid(VALID_ATTACHMENTS, "must be a list of {containerID, ifname}")
    pairs = set()
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("containerID"), str)
            or not isinstance(item.get("ifname"), str)
        ):
            raise _invalid(VALID_ATTACHMENTS, f'entry {item!r} is not {{"containerID": ..., "ifname": ...}}')
        pairs.add((item["containerID"], item["ifname"]))
    return pairs
