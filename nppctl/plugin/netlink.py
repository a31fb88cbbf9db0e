"""rtnetlink from the standard library: links, addresses and routes without spawning `ip`; and
nf_tables' rules of one chain (Netlink(NETLINK_NETFILTER).nft_rules), read without `iptables`.

One `Netlink` object is one NETLINK_ROUTE (or NETLINK_NETFILTER) socket in the network namespace
it was opened in (see netns.socket_in). Requests wait for the kernel's ACK; failures raise
NetlinkError carrying the errno and the kernel's extended-ACK message when it sends one.
"""

from _socket import SOCK_CLOEXEC, SOCK_RAW, socket
from _struct import calcsize, pack, unpack_from

from . import fs

AF_NETLINK = 16
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BRPORT_MODE = 4  # the bridge port's hairpin mode (u8)
IFALIASZ = 256
VETH_INFO_PEER = 1
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1
AF_INET = 2
NFNL_SUBSYS_NFTABLES, NFT_MSG_GETRULE = 10, 7
NFTA_RULE_TABLE, NFTA_RULE_CHAIN = 1, 2

_HDR = "=IHHII"
_HDR_LEN = calcsize(_HDR)
_IFINFO = "=BxHiII"
_IFADDR = "=BBBBI"
_RTMSG = "=BBBBBBBBI"


class NetlinkError(OSError):
    """A request the kernel refused: .errno, and the kernel's message in str()."""


def _attr(kind, payload):
    size = 4 + len(payload)
    return pack("=HH", size, kind) + payload + b"\0" * (-size & 3)


def _name(text):
    return text.encode() + b"\0"


def _u32(value):
    return pack("=I", value)


def _attrs(data, offset=0):
    """{type: payload} of a run of rtattrs (nested flag bits dropped)."""
    found = {}
    end = len(data)
    while offset + 4 <= end:
        size, kind = unpack_from("=HH", data, offset)
        if size < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    return found


def _text(payload):
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


class Link:
    """One interface as RTM_GETLINK reports it."""

    __slots__ = ("index", "name", "flags", "mtu", "master", "mac", "kind", "peer_index", "alias")

    def __init__(self, body):
        _, _, self.index, self.flags, _ = unpack_from(_IFINFO, body, 0)
        attrs = _attrs(body, 16)
        self.name = _text(attrs.get(IFLA_IFNAME, b""))
        self.mtu = unpack_from("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        self.master = unpack_from("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
        self.peer_index = unpack_from("=I", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else 0
        self.mac = attrs.get(IFLA_ADDRESS, b"")
        self.alias = _text(attrs.get(IFLA_IFALIAS, b""))
        info = _attrs(attrs.get(IFLA_LINKINFO, b""))
        self.kind = _text(info.get(IFLA_INFO_KIND, b""))

    @property
    def up(self):
        return bool(self.flags & IFF_UP)


class Addr:
    __slots__ = ("index", "ip", "prefixlen")

    def __init__(self, body):
        family, self.prefixlen, _, _, self.index = unpack_from(_IFADDR, body, 0)
        attrs = _attrs(body, 8)
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS) or b""
        self.ip = int.from_bytes(raw, "big") if family == AF_INET and len(raw) == 4 else None


class Route:
    __slots__ = ("dst", "dst_len", "gateway", "oif", "table")

    def __init__(self, body):
        family, self.dst_len, _, _, table, _, _, _, _ = unpack_from(_RTMSG, body, 0)
        attrs = _attrs(body, 12)
        self.table = unpack_from("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table
        self.dst = int.from_bytes(attrs.get(RTA_DST, b"\0\0\0\0"), "big")
        gw = attrs.get(RTA_GATEWAY)
        self.gateway = int.from_bytes(gw, "big") if gw and len(gw) == 4 else None
        self.oif = unpack_from("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0


class Netlink:
    """A NETLINK_ROUTE socket (or another netlink protocol's); use as a context manager or call close()."""

    def __init__(self, protocol=NETLINK_ROUTE):
        self.sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:  # old kernels: plain errno without a message
            pass
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    # -- transport -----------------------------------------------------------------------------

    def _send(self, kind, flags, body):
        self.seq += 1
        self.sock.sendto(pack(_HDR, _HDR_LEN + len(body), kind, flags, self.seq, 0) + body, (0, 0))
        return self.seq

    def _replies(self, seq):
        """Yield (type, flags, body) of the replies to seq until the kernel is done."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HDR_LEN <= len(data):
                size, kind, flags, mseq, _ = unpack_from(_HDR, data, offset)
                if size < _HDR_LEN:
                    return
                body = data[offset + _HDR_LEN : offset + size]
                offset += (size + 3) & ~3
                if mseq != seq:
                    continue
                yield kind, flags, body
                if kind in (NLMSG_ERROR, NLMSG_DONE):
                    return

    @staticmethod
    def _error(flags, body, what):
        code = -unpack_from("=i", body, 0)[0]
        message = fs.strerror(code)
        if flags & NLM_F_ACK_TLVS:
            echoed = unpack_from("=I", body, 4)[0] if len(body) >= 8 else 0
            # the request is echoed whole unless the kernel capped it to its header
            skip = 4 + (_HDR_LEN if flags & 0x100 else echoed)
            extra = _attrs(body, skip).get(NLMSGERR_ATTR_MSG)
            if extra:
                message = f"{message} ({_text(extra)})"
        return NetlinkError(code, f"{what}: {message}")

    def request(self, kind, body, what, flags=0):
        """Send one request and wait for its ACK; NetlinkError on refusal."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body)
        for rkind, rflags, rbody in self._replies(seq):
            if rkind == NLMSG_ERROR and unpack_from("=i", rbody, 0)[0] != 0:
                raise self._error(rflags, rbody, what)

    def query(self, kind, body, what, dump=False):
        """Bodies of the kernel's answers to a GET (a dump when dump=True)."""
        seq = self._send(kind, NLM_F_REQUEST | (NLM_F_DUMP if dump else 0), body)
        found = []
        for rkind, rflags, rbody in self._replies(seq):
            if rkind == NLMSG_ERROR:
                if unpack_from("=i", rbody, 0)[0] != 0:
                    raise self._error(rflags, rbody, what)
            elif rkind != NLMSG_DONE:
                found.append(rbody)
                if not dump:  # a plain GET has exactly one answer and no DONE
                    break
        return found

    # -- links ---------------------------------------------------------------------------------

    def link(self, name):
        """The Link called name, or None."""
        try:
            bodies = self.query(
                RTM_GETLINK,
                pack(_IFINFO, 0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)),
                f"get link {name}",
            )
        except NetlinkError as err:
            if err.errno in (19, 22):  # ENODEV; EINVAL for names the kernel cannot hold
                return None
            raise
        return Link(bodies[0]) if bodies else None

    def links(self):
        return [
            Link(b) for b in self.query(RTM_GETLINK, pack(_IFINFO, 0, 0, 0, 0, 0), "list links", dump=True)
        ]

    def add_bridge(self, name, mac, mtu=None):
        attrs = _attr(IFLA_IFNAME, _name(name)) + _attr(IFLA_ADDRESS, mac)
        if mtu:
            attrs += _attr(IFLA_MTU, _u32(mtu))
        attrs += _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge"))
        self.request(
            RTM_NEWLINK,
            pack(_IFINFO, 0, 0, 0, IFF_UP, IFF_UP) + attrs,
            f"create bridge {name}",
            NLM_F_CREATE | NLM_F_EXCL,
        )

    def add_veth(self, name, mac, master, peer_name, peer_mac, peer_netns_fd, mtu=None):
        """A veth pair: `name` up on bridge index `master`; its peer (still down: the kernel refuses
        to bring it up before the pair is joined) inside the netns of the fd."""
        mtu_attr = _attr(IFLA_MTU, _u32(mtu)) if mtu else b""
        peer = (
            pack(_IFINFO, 0, 0, 0, 0, 0)
            + _attr(IFLA_IFNAME, _name(peer_name))
            + _attr(IFLA_ADDRESS, peer_mac)
            + mtu_attr
            + _attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
        )
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
        attrs = (
            _attr(IFLA_IFNAME, _name(name))
            + _attr(IFLA_ADDRESS, mac)
            + mtu_attr
            + _attr(IFLA_MASTER, _u32(master))
            + _attr(IFLA_LINKINFO, info)
        )
        self.request(
            RTM_NEWLINK,
            pack(_IFINFO, 0, 0, 0, IFF_UP, IFF_UP) + attrs,
            f"create veth {name} (peer {peer_name})",
            NLM_F_CREATE | NLM_F_EXCL,
        )

    def set_bridge_port(self, name, alias, hairpin):
        """Label link `name` (its ifalias) and set its bridge port's hairpin mode, in one request
        (what `ip link set NAME alias A type bridge_slave hairpin on` sends)."""
        port = _attr(IFLA_BRPORT_MODE, pack("=B", 1 if hairpin else 0))
        info = _attr(IFLA_INFO_SLAVE_KIND, b"bridge") + _attr(IFLA_INFO_SLAVE_DATA, port)
        attrs = _attr(IFLA_IFNAME, _name(name)) + _attr(IFLA_LINKINFO, info)
        if alias:
            attrs += _attr(IFLA_IFALIAS, alias.encode())
        self.request(RTM_NEWLINK, pack(_IFINFO, 0, 0, 0, 0, 0) + attrs, f"set bridge port {name}")

    def set_up(self, index):
        self.request(RTM_SETLINK, pack(_IFINFO, 0, 0, index, IFF_UP, IFF_UP), f"set link {index} up")

    def delete_link(self, name):
        """Delete the link called name; False when there was none."""
        try:
            self.request(
                RTM_DELLINK,
                pack(_IFINFO, 0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)),
                f"delete link {name}",
            )
        except NetlinkError as err:
            if err.errno in (19, 22):
                return False
            raise
        return True

    # -- addresses and routes ------------------------------------------------------------------

    def add_addr(self, index, ip, prefixlen, broadcast=None):
        """Add ip/prefixlen to link index; False when it is already there."""
        raw = ip.to_bytes(4, "big")
        attrs = _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        if broadcast is not None:
            attrs += _attr(IFA_BROADCAST, broadcast.to_bytes(4, "big"))
        try:
            self.request(
                RTM_NEWADDR,
                pack(_IFADDR, AF_INET, prefixlen, 0, 0, index) + attrs,
                f"add address to link {index}",
                NLM_F_CREATE | NLM_F_EXCL,
            )
        except NetlinkError as err:
            if err.errno == 17:  # EEXIST
                return False
            raise
        return True

    def addrs(self, index=None):
        body = pack(_IFADDR, AF_INET, 0, 0, 0, 0)
        found = [Addr(b) for b in self.query(RTM_GETADDR, body, "list addresses", dump=True)]
        return [a for a in found if a.ip is not None and (index is None or a.index == index)]

    def add_route(self, dst, dst_len, gateway, oif):
        """Add dst/dst_len via gateway (None: on-link) out of oif; NetlinkError (errno 17) when a
        route to that destination exists already: it is not this call's to report as its own."""
        scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        body = pack(_RTMSG, AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        if dst_len:
            body += _attr(RTA_DST, dst.to_bytes(4, "big"))
        if gateway is not None:
            body += _attr(RTA_GATEWAY, gateway.to_bytes(4, "big"))
        body += _attr(RTA_OIF, _u32(oif))
        self.request(RTM_NEWROUTE, body, "add route", NLM_F_CREATE | NLM_F_EXCL)

    def routes(self):
        body = pack(_RTMSG, AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        return [Route(b) for b in self.query(RTM_GETROUTE, body, "list routes", dump=True)]

    # -- nf_tables (a NETLINK_NETFILTER socket) --------------------------------------------------

    def nft_rules(self, table, chain):
        """The raw netlink messages of every rule of the IPv4 nf_tables chain (iptables-nft's
        tables are named as iptables', "filter", "nat"), as one bytes; b"" when it has none or
        the chain does not exist."""
        body = pack("=BBH", AF_INET, 0, 0) + _attr(NFTA_RULE_TABLE, _name(table))
        body += _attr(NFTA_RULE_CHAIN, _name(chain))
        kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
        try:
            return b"".join(self.query(kind, body, f"list rules of {table} {chain}", dump=True))
        except NetlinkError as err:
            if err.errno == 2:  # ENOENT: no such table or chain
                return b""
            raise
