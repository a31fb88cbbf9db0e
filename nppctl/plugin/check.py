"""CHECK: the attachment as prevResult describes it, compared with what exists.

prevResult is required (as the reference bridge requires it) and must be a result: a malformed
one is error 7. Compared: the container interface (name, sandbox, MAC, up, paired with the host
veth on the bridge), the host veth's MAC when listed (not the bridge's: see _compare), every
address listed for the container interface, every route listed, the reservation (own store, or
the ipam plugin's CHECK) and the firewall rules. Error 3 only when nothing of the attachment exists.
"""

from . import fs
from .addr import IPv4, mac_text, parse_cidr, parse_ip
from .errors import CONTAINER_UNKNOWN, INTERNAL, CNIError
from .protocol import invalid


class Expected:
    """What prevResult says about this attachment (ValueError-free: malformed input is 7)."""

    __slots__ = ("interface", "host_macs", "addresses", "routes")

    def __init__(self, prev, call):
        if prev is None:
            raise invalid(
                "prevResult", "is missing: CHECK needs the result of the ADD (Required prevResult missing)"
            )
        if not isinstance(prev, dict):
            raise invalid("prevResult", "must be a result object")
        interfaces = _list(prev, "interfaces")
        ips = _list(prev, "ips")
        routes = _list(prev, "routes")
        self.interface = None
        self.host_macs = {}
        for index, entry in enumerate(interfaces):
            name, sandbox, mac = entry.get("name"), entry.get("sandbox"), entry.get("mac")
            if not isinstance(name, str) or not isinstance(sandbox, (str, type(None))):
                raise invalid("prevResult", f"interface {entry!r} needs a name (and a sandbox path or none)")
            if mac is not None and not isinstance(mac, str):
                raise invalid("prevResult", f"interface {name}: mac {mac!r} is not a string")
            if name == call.ifname and sandbox == call.netns:
                self.interface = (index, mac.lower() if mac else None)
            elif not sandbox and mac:
                self.host_macs[name] = mac.lower()
        if self.interface is None:
            raise invalid("prevResult", f"lists no interface {call.ifname} in sandbox {call.netns}")
        self.addresses = []
        for entry in ips:
            where = entry.get("interface")
            if where is not None and (isinstance(where, bool) or not isinstance(where, int)):
                raise invalid("prevResult", f"ips entry {entry!r}: interface must be an index")
            address = entry.get("address")
            if not isinstance(address, str):
                raise invalid("prevResult", f"ips entry {entry!r} has no address")
            if ":" in address or (where is not None and where != self.interface[0]):
                continue  # IPv6, or another plugin's interface
            self.addresses.append(_cidr_host(address))
        self.routes = []
        for entry in routes:
            dst, gw = entry.get("dst"), entry.get("gw")
            if not isinstance(dst, str) or not isinstance(gw, (str, type(None))):
                raise invalid("prevResult", f"route {entry!r} needs a dst (and a gw string or none)")
            if ":" in dst:
                continue
            net = _parse(parse_cidr, dst)
            self.routes.append(
                (int(net.network_address), net.prefixlen, _parse(parse_ip, gw) if gw else None)
            )


def _list(prev, key):
    if key not in prev:
        return []
    value = prev[key]  # null included: a Go result never holds one (its lists are omitempty)
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise invalid("prevResult", f"{key} must be a list of objects, not {value!r}")
    return value


def _parse(parse, text):
    try:
        return parse(text)
    except ValueError:
        raise invalid("prevResult", f"{text!r} is not an IPv4 address or CIDR") from None


def _cidr_host(text):
    net = _parse(parse_cidr, text)
    return _parse(parse_ip, text.split("/")[0]), net.prefixlen


def check(call, conf, version):
    from . import netns
    from .config import NetConf
    from .names import veth_name
    from .netlink import Netlink, NetlinkError

    nc = NetConf(conf, version)
    want = Expected(nc.prev_result, call)
    veth = veth_name(call.container_id, call.ifname)
    try:
        with Netlink() as host:
            link = host.link(veth)
            reserved = _reservation(call, conf, nc, want, strict=link is not None)
            if link is None and not reserved:
                raise CNIError(
                    CONTAINER_UNKNOWN, f"no attachment {call.container_id}/{call.ifname} in network {nc.name}"
                )
            ns_fd = netns.open_netns(call.netns)
            try:
                with netns.socket_in(ns_fd, Netlink) as inner:
                    _compare(host, inner, call, nc, want, veth, link)
            finally:
                fs.close(ns_fd)
    except NetlinkError as err:
        raise CNIError(INTERNAL, f"CHECK: {err}") from None
    if not reserved:
        raise CNIError(
            INTERNAL, f"{call.container_id}/{call.ifname} has its interfaces but no address reservation"
        )
    _check_firewall(nc)
    return None


def _reservation(call, conf, nc, want, strict):
    """True when the attachment's address is reserved (and is one prevResult lists). Not strict
    (the host veth is gone too): an IPAM plugin's failed CHECK means there is nothing left."""
    if nc.ipam is not None:
        from . import delegate, jsonio

        try:
            delegate.run(nc.ipam["type"], "CHECK", jsonio.dumps(conf).encode(), call.path)
        except CNIError:
            if not strict:
                return False
            raise
        if want.addresses:
            net = parse_cidr("{}/{}".format(*want.addresses[0]))
            nc.use_address(net, IPv4(net.network_address + 1))
        return True
    with nc.store() as store:
        ip = store.find(call.container_id, call.ifname)
    if ip is None:
        return False
    if (IPv4(int(ip)), nc.subnet.prefixlen) not in want.addresses:
        raise CNIError(
            INTERNAL,
            "prevResult lists {} for {}/{} but the reservation is {}/{}".format(
                ", ".join(f"{a}/{n}" for a, n in want.addresses) or "no address",
                call.container_id,
                call.ifname,
                IPv4(int(ip)),
                nc.subnet.prefixlen,
            ),
        )
    return True


def _compare(host, inner, call, nc, want, veth, link):
    bridge = host.link(nc.bridge)
    if bridge is None or link is None or link.master != bridge.index:
        raise CNIError(INTERNAL, f"host veth {veth} is missing or not on bridge {nc.bridge}")
    # the host veth's MAC, not the bridge's: a bridge made without a fixed address (by whoever made
    # it before nppnet) takes its lowest port's MAC, so it changes as pods come and go
    listed = want.host_macs.get(veth)
    if listed and listed != mac_text(link.mac):
        raise CNIError(INTERNAL, f"{veth} has MAC {mac_text(link.mac)}, prevResult lists {listed}")
    peer = inner.link(call.ifname)
    if peer is None or not peer.up:
        raise CNIError(INTERNAL, f"{call.ifname} is missing or down in {call.netns}")
    if link.peer_index != peer.index:
        raise CNIError(INTERNAL, f"{call.ifname} in {call.netns} is not the peer of {veth}")
    mac = want.interface[1]
    if mac and mac != mac_text(peer.mac):
        raise CNIError(
            INTERNAL, f"{call.ifname} in {call.netns} has MAC {mac_text(peer.mac)}, prevResult lists {mac}"
        )
    have = {(a.ip, a.prefixlen) for a in inner.addrs(peer.index)}
    for ip, prefixlen in want.addresses:
        if (ip, prefixlen) not in have:
            raise CNIError(
                INTERNAL,
                "{} in {} lacks its address {}/{} (has {})".format(
                    call.ifname,
                    call.netns,
                    ip,
                    prefixlen,
                    ", ".join(f"{IPv4(a)}/{n}" for a, n in sorted(have)) or "none",
                ),
            )
    routes = [(r.dst, r.dst_len, r.gateway) for r in inner.routes() if r.table == 254]
    for dst, dst_len, gw in want.routes:
        if not any(d == dst and n == dst_len and (gw is None or g == gw) for d, n, g in routes):
            via = f" via {gw}" if gw is not None else ""
            raise CNIError(INTERNAL, f"no route to {IPv4(dst)}/{dst_len}{via} in {call.netns}")


def _check_firewall(nc):
    if nc.subnet is None:
        return
    from . import firewall

    rules = firewall.wanted_rules(nc.bridge, nc.subnet, nc.cluster_cidr, nc.ip_masq, nc.name)
    if firewall.in_place(rules):  # read through nf_tables' netlink, as ADD does: no process spawned
        return
    try:  # something is missing or stale (or nf_tables cannot tell): iptables-save names what
        saved = firewall.save()
    except firewall.FirewallError as err:
        raise CNIError(INTERNAL, f"CHECK cannot read the firewall rules: {err}") from None
    missing, stale = firewall.missing(rules, saved), firewall.unwanted(nc.bridge, rules, saved)
    found = ["firewall rules missing: " + "; ".join(missing)] if missing else []
    if stale:
        found.append("stale firewall rules (the next ADD removes them): " + "; ".join(stale))
    if found:
        raise CNIError(INTERNAL, ". ".join(found))
