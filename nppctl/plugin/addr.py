"""IPv4 addresses and subnets as plain ints: the `ipaddress` module costs 3 ms at start-up.

`IPv4` and `Subnet` offer the few attributes the IPAM store reads from ipaddress objects
(int(address), type(address)(int), subnet.network_address, subnet.num_addresses).
"""

from _socket import inet_aton, inet_ntoa


class IPv4(int):
    """An IPv4 address that is an int and prints dotted."""

    __slots__ = ()

    def __str__(self):
        return inet_ntoa(self.to_bytes(4, "big"))

    __repr__ = __str__

    @property
    def packed(self):
        return self.to_bytes(4, "big")


def parse_ip(text):
    """'10.244.1.5' -> IPv4; ValueError for anything that is not four decimal octets."""
    parts = text.split(".") if isinstance(text, str) else ()
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and len(p) <= 3 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    value = 0
    for part in parts:
        octet = int(part)
        if octet > 255:
            raise ValueError(f"not an IPv4 address: {text!r}")
        value = value << 8 | octet
    return IPv4(value)


class Subnet:
    """An IPv4 network (host bits cleared)."""

    __slots__ = ("network_address", "prefixlen", "num_addresses")

    def __init__(self, network, prefixlen):
        size = 1 << (32 - prefixlen)
        self.network_address = IPv4(network & ~(size - 1) & 0xFFFFFFFF)
        self.prefixlen = prefixlen
        self.num_addresses = size

    @property
    def broadcast_address(self):
        return IPv4(self.network_address + self.num_addresses - 1)

    @property
    def netmask(self):
        return IPv4((0xFFFFFFFF << (32 - self.prefixlen)) & 0xFFFFFFFF)

    def __contains__(self, ip):
        return self.network_address <= ip < self.network_address + self.num_addresses

    def __eq__(self, other):
        return isinstance(other, Subnet) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __str__(self):
        return f"{self.network_address}/{self.prefixlen}"

    __repr__ = __str__


def parse_cidr(text):
    """'10.244.1.0/24' -> Subnet (host bits may be set: they are cleared); ValueError otherwise."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise ValueError(f"not an IPv4 CIDR: {text!r}")
    ip, _, bits = text.partition("/")
    if not (bits.isdigit() and bits.isascii() and len(bits) <= 2 and int(bits) <= 32):
        raise ValueError(f"not an IPv4 CIDR: {text!r}")
    return Subnet(parse_ip(ip), int(bits))


def mac_text(raw):
    return ":".join(f"{b:02x}" for b in raw)


def mac_for_ip(ip):
    """The 0a:58:<IPv4> MAC kubenet-style plugins use: unique per address, stable across ADDs."""
    return b"\x0a\x58" + ip.to_bytes(4, "big")


__all__ = ["IPv4", "Subnet", "parse_ip", "parse_cidr", "inet_aton", "mac_text", "mac_for_ip"]
