"""nppnet: CNI bridge plugin. cmd_add / cmd_del / cmd_check / cmd_status / cmd_gc.

ADD: bridge up with the gateway address (its firewall rules verified, restored when missing), an
address reserved under the store's lock, a veth pair created in one netlink request (host end up
on the bridge, peer named CNI_IFNAME up inside CNI_NETNS), then address and default route inside
the namespace.

Each command imports what it needs when it runs (a VERSION loads none of it, a DEL no firewall
or namespace code): every module a call imports is start-up time it pays.
"""

from . import fs, jsonio, protocol
from .errors import INTERNAL, IO_FAILURE, PLUGIN_NOT_AVAILABLE, CNIError

# DATA_DIR/.pins/<network>/<containerID> (holds the ifname): an nppnet before this one bind-mounted a
# namespace given as /proc/PID/ns/net at /var/run/netns/<containerID>, which kept it (and the pod's
# veth) alive after its owner died. ADD never pins now; DEL and GC remove the pins left from then.
PIN_DIR = ".pins"


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
    rules = firewall.wanted_rules(nc.bridge, nc.subnet, nc.cluster_cidr, nc.ip_masq, nc.name)
    firewall.enable_forwarding()
    if created or not firewall.in_place(rules):  # verified on every ADD: rules vanish (a flush)
        try:
            firewall.ensure(nc.data_dir, nc.bridge, rules)
        except (firewall.FirewallError, OSError) as err:
            raise _fail(f"firewall rules for bridge {nc.bridge}", err) from None
    return bridge


# -- ADD ----------------------------------------------------------------------------------------


def cmd_add(call, conf, version):
    """Check the name is free in the sandbox, get an address (own store or the ipam plugin), then
    attach. A failure undoes what this call made, in reverse; an undo that fails too is added to
    the error's details, never reported instead of it."""
    from . import netns
    from .config import NetConf
    from .netlink import Netlink

    nc = NetConf(conf, version)
    prev = _prev_result(nc)
    ns_fd = netns.open_netns(call.netns)
    undo = []
    try:
        with Netlink() as host, netns.socket_in(ns_fd, Netlink) as inner:
            try:  # undone inside: the undo steps use these sockets
                if inner.link(call.ifname) is not None:
                    raise CNIError(
                        INTERNAL,
                        f"{call.ifname} already exists in {call.netns}: ADD refuses an interface name "
                        "that is taken (DEL the attachment first)",
                    )
                ip, routes, dns = _get_address(call, conf, nc, undo)
                result = _attach(host, inner, call, nc, ns_fd, ip, routes, undo)
            except Exception as err:
                raise _undone(err, undo) from None
            except BaseException:
                _undone(None, undo)
                raise
    finally:
        fs.close(ns_fd)
    return _with_prev(prev, result, dns)


def _prev_result(nc):
    """ADD: a prevResult to pass through (None when first in the chain); 7 when it is no result."""
    from .protocol import invalid

    prev = nc.prev_result
    if prev is None:
        return None
    if not isinstance(prev, dict):
        raise invalid("prevResult", "must be a result object")
    for key in ("interfaces", "ips", "routes"):
        value = prev.get(key, [])
        if not (isinstance(value, list) and all(isinstance(x, dict) for x in value)):
            raise invalid("prevResult", f"{key} must be a list of objects")
    return prev


def _with_prev(prev, result, dns):
    """Our result appended to what earlier plugins of the chain reported (their entries first, our
    ips' interface indexes shifted past theirs)."""
    if dns:
        result["dns"] = dns
    if prev is None:
        return result
    interfaces = list(prev.get("interfaces") or ())
    shift = len(interfaces)
    ips = list(prev.get("ips") or ())
    ips += [dict(ip, interface=ip["interface"] + shift) for ip in result["ips"]]
    merged = dict(prev, cniVersion=result["cniVersion"])
    merged["interfaces"] = interfaces + result["interfaces"]
    merged["ips"] = ips
    merged["routes"] = list(prev.get("routes") or ()) + result["routes"]
    merged["dns"] = prev.get("dns") or result.get("dns") or {}
    return merged


def _undone(err, undo):
    """Run the undo steps (last first); the error to raise, carrying the failed undos."""
    notes = []
    for what, step in reversed(undo):
        try:
            step()
        except Exception as failed:  # noqa: BLE001 - reported with the cause, never instead of it
            notes.append(f"undoing ({what}) failed too: {failed}")
    if err is None:
        return None
    if not isinstance(err, CNIError):
        err = CNIError(INTERNAL, f"{type(err).__name__}: {err}")
    if notes:
        err.details = "; ".join([err.details] + notes if err.details else notes)
    return err


def _get_address(call, conf, nc, undo):
    """(ip, routes, dns): from the own store, or from the ipam plugin (SPEC section 4)."""
    from .addr import IPv4

    if nc.ipam is not None:
        return _delegated_address(call, conf, nc, undo)
    with nc.store() as store:
        fresh = store.find(call.container_id, call.ifname) is None
        ip = IPv4(int(store.reserve(call.container_id, call.ifname)))
    if fresh:
        undo.append(("releasing " + str(ip), lambda: _release(nc, call.container_id, call.ifname)))
    return ip, [(IPv4(0), 0, nc.gateway)], None


def _release(nc, container_id, ifname):
    with nc.store() as store:
        store.release(container_id, ifname)


def _delegated_address(call, conf, nc, undo):
    from . import delegate
    from .addr import IPv4

    kind = nc.ipam["type"]
    raw = jsonio.dumps(conf).encode()
    delegate.find(kind, call.path)  # a plugin that is not there: error 7, nothing to undo
    # the spec: a delegated plugin that fails ADD is called again with DEL (undo runs it then too)
    undo.append((f"IPAM plugin {kind} DEL", lambda: delegate.run(kind, "DEL", raw, call.path)))
    answer = delegate.run(kind, "ADD", raw, call.path)
    ip, subnet, gateway, routes = _ipam_answer(kind, answer)
    nc.use_address(subnet, gateway)
    dns = answer.get("dns") if isinstance(answer.get("dns"), dict) else None
    return ip, routes or [(IPv4(0), 0, gateway)], dns


def _ipam_answer(kind, answer):
    """(ip, subnet, gateway, [(dst, dst_len, gw)]) from an IPAM result: its first IPv4 address;
    gateway as it says, else the subnet's first host; routes without gw go via the gateway."""
    from .addr import IPv4, parse_cidr, parse_ip

    def bad(why):
        return CNIError(INTERNAL, f"IPAM plugin {kind} answered {why}: {_json_text(answer)[:300]}")

    entries = answer.get("ips") if isinstance(answer, dict) else None
    found = None
    for entry in entries if isinstance(entries, list) else ():
        address = entry.get("address") if isinstance(entry, dict) else None
        if isinstance(address, str) and ":" not in address:
            found = entry
            break
    if found is None:
        raise bad("no IPv4 address")
    try:
        subnet = parse_cidr(found["address"])
        ip = parse_ip(found["address"].split("/")[0])
        gateway = parse_ip(found["gateway"]) if found.get("gateway") else IPv4(subnet.network_address + 1)
        routes = []
        for route in answer.get("routes") or ():
            dst = route.get("dst") if isinstance(route, dict) else None
            if isinstance(dst, str) and ":" in dst:
                continue  # IPv6: nppnet is IPv4 only
            net = parse_cidr(dst)
            routes.append(
                (net.network_address, net.prefixlen, parse_ip(route["gw"]) if route.get("gw") else gateway)
            )
    except (ValueError, TypeError, AttributeError):
        raise bad("an address, gateway or route that is not IPv4") from None
    if ip == gateway or subnet.prefixlen > 30:
        raise bad(f"{found['address']} with gateway {gateway}: no room for both on one bridge")
    return ip, subnet, gateway, routes


def _json_text(value):
    try:
        return jsonio.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _alias(nc, call):
    """The host veth's ifalias: which network and attachment it serves (GC reads it back)."""
    text = f"nppnet:{nc.name}:{call.container_id}:{call.ifname}"
    return text if len(text.encode("utf-8", "surrogateescape")) < 256 else ""


def owner_of(alias):
    """(network, containerID, ifname) from a host veth's ifalias, or None for other links."""
    parts = alias.split(":", 3)
    return tuple(parts[1:]) if len(parts) == 4 and parts[0] == "nppnet" else None


def _attach(host, inner, call, nc, ns_fd, ip, routes, undo):
    from .addr import mac_text
    from .names import veth_name
    from .netlink import NetlinkError

    veth = veth_name(call.container_id, call.ifname)
    try:
        bridge = ensure_bridge(host, nc)
    except NetlinkError as err:
        raise _fail(f"bridge {nc.bridge}", err) from None
    try:
        if host.link(veth) is not None:
            host.delete_link(veth)  # left by a killed call (its peer is not CNI_IFNAME): start over
        host_mac = _host_mac()
        _create_veth(host, nc, bridge, veth, host_mac, call.ifname, ip, ns_fd)
        undo.append((f"deleting {veth}", lambda: host.delete_link(veth)))
        host.set_bridge_port(veth, _alias(nc, call), nc.hairpin)
        peer = inner.link(call.ifname)
        if peer is None:
            raise CNIError(INTERNAL, f"{call.ifname} did not appear in {call.netns}")
        inner.set_up(peer.index)
        inner.add_addr(peer.index, ip, nc.subnet.prefixlen, nc.subnet.broadcast_address)
        for dst, dst_len, gw in routes:
            _add_route(inner, call, dst, dst_len, gw, peer.index)
    except NetlinkError as err:
        raise _fail(f"configuring {call.ifname} in {call.netns}", err) from None
    mtu = peer.mtu
    interfaces = [
        {"name": nc.bridge, "mac": mac_text(bridge.mac), "mtu": bridge.mtu},
        {"name": veth, "mac": mac_text(host_mac), "mtu": mtu},
        {"name": call.ifname, "mac": mac_text(peer.mac), "mtu": mtu, "sandbox": call.netns},
    ]
    ips = [{"address": f"{ip}/{nc.subnet.prefixlen}", "gateway": str(nc.gateway), "interface": 2}]
    listed = [{"dst": f"{dst}/{dst_len}", "gw": str(gw)} for dst, dst_len, gw in routes]
    from .protocol import shape_result

    return shape_result(nc.version, interfaces, ips, listed)


def _add_route(inner, call, dst, dst_len, gw, oif):
    """A route ADD reports must be one it installed: one that exists already is an error."""
    from .netlink import NetlinkError

    try:
        inner.add_route(dst, dst_len, gw, oif)
    except NetlinkError as err:
        if err.errno == 17:
            raise CNIError(
                INTERNAL,
                f"a route to {dst}/{dst_len} exists already in {call.netns}: nppnet cannot install "
                f"its own via {gw} (remove it, or chain nppnet before what made it)",
            ) from None
        raise


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
    """Host veth (its peer goes with it), reservation (own store or the ipam plugin's DEL), pin.
    Each step runs even when an earlier one failed; the failures are reported together."""
    from .config import NetConf
    from .names import veth_name
    from .netlink import Netlink

    nc = NetConf(conf, version)
    problems = []

    def veth():
        with Netlink() as host:
            host.delete_link(veth_name(call.container_id, call.ifname))

    _attempt(problems, "deleting the host veth", veth)
    if nc.ipam is not None:
        from . import delegate

        raw = jsonio.dumps(conf).encode()
        _attempt(problems, "IPAM DEL", lambda: delegate.run(nc.ipam["type"], "DEL", raw, call.path))
    else:
        _attempt(problems, "releasing the address", lambda: _release(nc, call.container_id, call.ifname))
    _unpin(nc, call.container_id, call.ifname)
    _report(problems, "DEL")
    return None


def _attempt(problems, what, step):
    try:
        step()
    except CNIError as err:
        problems.append((what, err))
    except OSError as err:  # NetlinkError included
        problems.append((what, _fail(what, err)))


def _report(problems, command):
    """Nothing when every step worked; the one error, or all of them in one (code 100 unless
    they share one code)."""
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0][1]
    codes = {err.code for _, err in problems}
    code = codes.pop() if len(codes) == 1 else INTERNAL
    raise CNIError(
        code,
        f"{command} did what it could; failed: " + "; ".join(f"{what}: {err.msg}" for what, err in problems),
        "; ".join(err.details for _, err in problems if err.details),
    )


# -- CHECK --------------------------------------------------------------------------------------


def cmd_check(call, conf, version):
    from .check import check

    return check(call, conf, version)


# -- STATUS and GC ------------------------------------------------------------------------------


def cmd_status(call, conf, version):
    from .config import NetConf

    nc = NetConf(conf, version)
    if nc.ipam is not None:
        from . import delegate

        kind = nc.ipam["type"]
        if delegate.supports(kind, "1.1.0", call.path):
            delegate.run(kind, "STATUS", jsonio.dumps(conf).encode(), call.path)
        return None
    try:
        with nc.store() as store:
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
    """Remove every attachment of THIS network the runtime no longer lists: reservations (own
    store, or the ipam plugin's GC when it has one), host veths whose ifalias names this network,
    pins. Goes on after a failure and reports what it could not remove."""
    from .config import NetConf, valid_attachments
    from .names import is_veth_name, veth_name
    from .netlink import Netlink

    nc = NetConf(conf, version)
    keep = valid_attachments(conf)
    problems = []
    released = set()
    if nc.ipam is None:

        def store():
            with nc.store() as s:
                for _, cid, ifname in s.reservations():
                    if (cid, ifname) in keep:
                        continue
                    try:
                        s.release(cid, ifname)
                        released.add((cid, ifname))
                    except CNIError as err:
                        problems.append((f"releasing {cid}/{ifname}", err))

        _attempt(problems, "reading the reservations", store)
    else:
        from . import delegate

        kind = nc.ipam["type"]

        def ipam_gc():
            if delegate.supports(kind, "1.1.0", call.path):
                delegate.run(kind, "GC", jsonio.dumps(conf).encode(), call.path)

        _attempt(problems, f"IPAM plugin {kind} GC", ipam_gc)
    gone_veths = {veth_name(c, i) for c, i in released}

    def links():
        with Netlink() as host:
            for link in host.links():
                owner = owner_of(link.alias)
                if owner is not None:
                    stale = owner[0] == nc.name and owner[1:] not in keep
                else:  # made before veths carried an ifalias: only what this GC released
                    stale = link.name in gone_veths and is_veth_name(link.name)
                if stale:
                    _attempt(problems, f"deleting {link.name}", lambda name=link.name: host.delete_link(name))

    _attempt(problems, "listing links", links)
    _gc_pins(nc, {c for c, _ in keep})
    _report(problems, "GC")
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
