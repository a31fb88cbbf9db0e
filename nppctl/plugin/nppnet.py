"""nppnet: CNI bridge plugin. cmd_add / cmd_del / cmd_check / cmd_status / cmd_gc.

ADD: bridge up with the gateway address (and the firewall rules once), an address reserved under
the store's lock, a veth pair created in one netlink request (host end up on the bridge, peer
named CNI_IFNAME up inside CNI_NETNS), then address and default route inside the namespace.

Each command imports what it needs when it runs (a VERSION loads none of it, a DEL no firewall
or namespace code): every module a call imports is start-up time it pays.
"""

from . import fs, protocol
from .errors import CONTAINER_UNKNOWN, INTERNAL, IO_FAILURE, PLUGIN_NOT_AVAILABLE, CNIError

# DATA_DIR/.pins/<network>/<containerID> (holds the ifname): this plugin made /var/run/netns/<containerID>
PIN_DIR = ".pins"


def _store(nc):
    from .ipam import Store

    return Store(nc.data_dir, nc.name, nc.subnet, nc.gateway)


def _host_mac():
    raw = bytearray(fs.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02  # unicast, locally administered
    return bytes(raw)


def _fail(what, err):
    return CNIError(INTERNAL, f"{what}: {err}")


# -- the bridge ---------------------------------------------------------------------------------


def ensure_bridge(host, nc):
    """The bridge Link, created if missing, up, holding the gateway; firewall rules in place."""
    from . import firewall
    from .addr import mac_for_ip
    from .netlink import NetlinkError

    bridge = host.link(nc.bridge)
    created = False
    if bridge is None:
        try:
            host.add_bridge(nc.bridge, mac_for_ip(nc.gateway), nc.mtu)
            created = True
        except NetlinkError as err:
            if err.errno != 17:  # a parallel ADD made it first: fine
                raise _fail(f"bridge {nc.bridge}", err) from None
        bridge = host.link(nc.bridge)
        if bridge is None:
            raise CNIError(INTERNAL, f"bridge {nc.bridge} vanished right after its creation")
    if bridge.kind != "bridge":
        raise CNIError(
            INTERNAL,
            'link {} exists and is a {}, not a bridge: choose another "bridge" name'.format(
                nc.bridge, bridge.kind or "non-bridge link"
            ),
        )
    if not bridge.up:
        host.set_up(bridge.index)
    host.add_addr(bridge.index, nc.gateway, nc.subnet.prefixlen, nc.subnet.broadcast_address)
    rules = firewall.wanted_rules(nc.bridge, nc.subnet, nc.cluster_cidr, nc.ip_masq)
    if created or not firewall.in_place(nc.data_dir, nc.bridge, rules):
        try:
            firewall.ensure(nc.data_dir, nc.bridge, rules)
        except (firewall.FirewallError, OSError) as err:
            raise _fail(f"firewall rules for bridge {nc.bridge}", err) from None
    return bridge


# -- ADD ----------------------------------------------------------------------------------------


def cmd_add(call, conf, version):
    from . import netns
    from .addr import IPv4
    from .config import NetConf

    nc = NetConf(conf, version)
    ns_fd = netns.open_netns(call.netns)
    try:
        with _store(nc) as store:
            fresh = store.find(call.container_id, call.ifname) is None
            ip = store.reserve(call.container_id, call.ifname)
        try:
            return _attach(call, nc, ns_fd, IPv4(int(ip)))
        except BaseException:
            if fresh:
                with _store(nc) as store:
                    store.release(call.container_id, call.ifname)
            raise
    finally:
        fs.close(ns_fd)


def _attach(call, nc, ns_fd, ip):
    from . import netns
    from .addr import mac_text
    from .names import veth_name
    from .netlink import Netlink, NetlinkError
    from .protocol import shape_result

    veth = veth_name(call.container_id, call.ifname)
    with Netlink() as host:
        try:
            bridge = ensure_bridge(host, nc)
        except NetlinkError as err:
            raise _fail(f"bridge {nc.bridge}", err) from None
        with netns.socket_in(ns_fd, Netlink) as inner:
            existing = host.link(veth)
            peer = inner.link(call.ifname) if existing is not None else None
            if existing is not None and (
                peer is None or existing.peer_index != peer.index or existing.master != bridge.index
            ):
                host.delete_link(veth)  # half-made by a killed call, or not this pod's: start over
                existing = None
            created = existing is None
            host_mac = existing.mac if existing is not None else _host_mac()
            try:
                if created:
                    _create_veth(host, nc, bridge, veth, host_mac, call.ifname, ip, ns_fd)
                    peer = inner.link(call.ifname)
                    if peer is None:
                        raise CNIError(INTERNAL, f"{call.ifname} did not appear in {call.netns}")
                if not peer.up:
                    inner.set_up(peer.index)
                inner.add_addr(peer.index, ip, nc.subnet.prefixlen, nc.subnet.broadcast_address)
                inner.add_default_route(nc.gateway, peer.index)
            except NetlinkError as err:
                if created:
                    host.delete_link(veth)
                raise _fail(f"configuring {call.ifname} in {call.netns}", err) from None
            except BaseException:
                if created:
                    host.delete_link(veth)
                raise
    _pin(nc, call)
    mtu = peer.mtu
    interfaces = [
        {"name": nc.bridge, "mac": mac_text(bridge.mac), "mtu": bridge.mtu},
        {"name": veth, "mac": mac_text(host_mac), "mtu": mtu},
        {"name": call.ifname, "mac": mac_text(peer.mac), "mtu": mtu, "sandbox": call.netns},
    ]
    ips = [{"address": f"{ip}/{nc.subnet.prefixlen}", "gateway": str(nc.gateway), "interface": 2}]
    routes = [{"dst": "0.0.0.0/0", "gw": str(nc.gateway)}]
    return shape_result(nc.version, interfaces, ips, routes)


def _create_veth(host, nc, bridge, veth, host_mac, ifname, ip, ns_fd):
    from .addr import mac_for_ip
    from .netlink import NetlinkError

    try:
        host.add_veth(veth, host_mac, bridge.index, ifname, mac_for_ip(ip), ns_fd, nc.mtu)
    except NetlinkError as err:
        if err.errno == 17:
            raise CNIError(
                INTERNAL,
                f"cannot create {ifname}: an interface of that name exists in the namespace "
                f"or {veth} exists on the host",
            ) from None
        raise


def _pin_marker(nc, container_id):
    return fs.join(nc.data_dir, PIN_DIR, nc.name, container_id)


def _pin(nc, call):
    """/var/run/netns/<containerID> for `ip netns` when the namespace lives elsewhere (say
    /proc/PID/ns/net); best effort, never fails ADD. The marker is written before the mount, so a
    call killed in between leaves something DEL and GC act on."""
    from . import netns

    if netns.lives_in_run_dir(call.netns):
        return
    marker = _pin_marker(nc, call.container_id)
    if fs.exists(marker):
        return  # pinned by an earlier ADD of this container
    try:
        fs.makedirs(fs.dirname(marker))
        with open(marker, "w") as f:
            f.write(call.ifname)
        if netns.pin(call.netns, call.container_id):
            return
    except OSError:
        pass
    try:  # not ours to remove later
        fs.unlink(marker)
    except OSError:
        pass


def _unpin(nc, container_id, ifname=None):
    marker = _pin_marker(nc, container_id)
    try:
        with open(marker) as f:
            owner = f.read()
    except OSError:
        return
    if ifname is None or owner == ifname:
        from . import netns

        netns.unpin(container_id)
        try:
            fs.unlink(marker)
        except OSError:
            pass


# -- DEL ----------------------------------------------------------------------------------------


def cmd_del(call, conf, version):
    from .config import NetConf
    from .names import veth_name
    from .netlink import Netlink, NetlinkError

    nc = NetConf(conf, version)
    try:
        with Netlink() as host:
            host.delete_link(veth_name(call.container_id, call.ifname))
    except NetlinkError as err:
        raise _fail("deleting the host veth", err) from None
    with _store(nc) as store:
        store.release(call.container_id, call.ifname)
    _unpin(nc, call.container_id, call.ifname)
    return None


# -- CHECK --------------------------------------------------------------------------------------


def cmd_check(call, conf, version):
    from . import netns
    from .addr import IPv4
    from .config import NetConf
    from .names import veth_name
    from .netlink import Netlink, NetlinkError

    nc = NetConf(conf, version)
    with _store(nc) as store:
        ip = store.find(call.container_id, call.ifname)
    if ip is None:
        raise CNIError(CONTAINER_UNKNOWN, f"no address reserved for {call.container_id}/{call.ifname}")
    ip = IPv4(int(ip))
    address = f"{ip}/{nc.subnet.prefixlen}"
    _check_prev_result(nc, call, address)
    veth = veth_name(call.container_id, call.ifname)
    ns_fd = netns.open_netns(call.netns)
    try:
        with Netlink() as host, netns.socket_in(ns_fd, Netlink) as inner:
            bridge = host.link(nc.bridge)
            link = host.link(veth)
            if bridge is None or link is None or link.master != bridge.index:
                raise CNIError(INTERNAL, f"host veth {veth} is missing or not on bridge {nc.bridge}")
            peer = inner.link(call.ifname)
            if peer is None or not peer.up:
                raise CNIError(INTERNAL, f"{call.ifname} is missing or down in {call.netns}")
            have = {(a.ip, a.prefixlen) for a in inner.addrs(peer.index)}
            if (ip, nc.subnet.prefixlen) not in have:
                raise CNIError(
                    INTERNAL,
                    "{} in {} lacks its address {} (has {})".format(
                        call.ifname,
                        call.netns,
                        address,
                        ", ".join(f"{IPv4(a)}/{n}" for a, n in have) or "none",
                    ),
                )
            if not any(
                r.dst_len == 0 and r.gateway == nc.gateway and r.oif == peer.index for r in inner.routes()
            ):
                raise CNIError(
                    INTERNAL, f"no default route via {nc.gateway} on {call.ifname} in {call.netns}"
                )
    except NetlinkError as err:
        raise _fail("CHECK", err) from None
    finally:
        fs.close(ns_fd)
    return None


def _check_prev_result(nc, call, address):
    if not nc.prev_result:
        return
    listed = [ip.get("address") for ip in nc.prev_result.get("ips", []) if isinstance(ip, dict)]
    if address not in listed:
        raise CNIError(
            INTERNAL,
            "prevResult lists {} for {}/{} but the reservation is {}".format(
                ", ".join(map(str, listed)) or "no address", call.container_id, call.ifname, address
            ),
        )


# -- STATUS and GC ------------------------------------------------------------------------------


def cmd_status(call, conf, version):
    from .config import NetConf

    nc = NetConf(conf, version)
    try:
        with _store(nc) as store:
            if not store.writable():
                raise CNIError(
                    PLUGIN_NOT_AVAILABLE,
                    f"dataDir {nc.data_dir} is not writable: ADD cannot reserve addresses",
                )
            if store.free_count() == 0:
                raise CNIError(
                    PLUGIN_NOT_AVAILABLE,
                    f"subnet {nc.subnet} is exhausted: ADD cannot get an address until pods are deleted",
                )
    except CNIError as err:
        if err.code == IO_FAILURE:
            raise CNIError(PLUGIN_NOT_AVAILABLE, err.msg) from None
        raise
    return None


def cmd_gc(call, conf, version):
    from .config import NetConf, valid_attachments
    from .names import is_veth_name, veth_name
    from .netlink import Netlink, NetlinkError

    nc = NetConf(conf, version)
    keep = valid_attachments(conf)
    released = set()
    with _store(nc) as store:
        for _, cid, ifname in store.reservations():
            if (cid, ifname) not in keep:
                store.release(cid, ifname)
                released.add((cid, ifname))
    keep_veths = {veth_name(c, i) for c, i in keep}
    gone_veths = {veth_name(c, i) for c, i in released}
    try:
        with Netlink() as host:
            bridge = host.link(nc.bridge)
            for link in host.links():
                ours = link.name in gone_veths or (bridge is not None and link.master == bridge.index)
                if ours and is_veth_name(link.name) and link.name not in keep_veths:
                    host.delete_link(link.name)
    except NetlinkError as err:
        raise _fail("GC", err) from None
    _gc_pins(nc, {c for c, _ in keep})
    return None


def _gc_pins(nc, keep_ids):
    try:
        names = fs.listdir(fs.join(nc.data_dir, PIN_DIR, nc.name))
    except OSError:
        return
    for cid in names:
        if cid not in keep_ids:
            _unpin(nc, cid)


COMMANDS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}


def main():
    protocol.main(COMMANDS)


if __name__ == "__main__":
    main()
