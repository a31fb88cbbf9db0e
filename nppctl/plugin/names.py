"""Names the kernel and the CNI spec accept, and the host-side veth name of an attachment."""

from binascii import crc32, crc_hqx

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
VETH_PREFIX = "veth"
VETH_LEN = 15  # "veth" + 11 hex digits: longer than the reference plugin's random veth names


def _byte_length(text):
    """Bytes of text as the environment carried it; None for a lone surrogate no byte gives."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None


def valid_ifname(name):
    """A Linux interface name: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'."""
    return (
        isinstance(name, str)
        and 0 < (_byte_length(name) or 0) <= 15
        and name not in (".", "..")
        and not any(c in "/:" or c.isspace() or ord(c) < 32 for c in name)
    )


def valid_id(text):
    """The spec's container ID and network name syntax: [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    return (
        isinstance(text, str) and text[:1].isalnum() and text.isascii() and all(c in _ID_CHARS for c in text)
    )


def veth_name(container_id, ifname):
    """Host end of the attachment's veth: 'veth' + 11 hex digits derived from ID and ifname."""
    key = (f"{container_id}/{ifname}").encode("utf-8", "surrogateescape")
    return f"{VETH_PREFIX}{crc32(key):08x}{crc_hqx(key, 0) & 0xFFF:03x}"


def is_veth_name(name):
    return (
        len(name) == VETH_LEN
        and name.startswith(VETH_PREFIX)
        and all(c in "0123456789abcdef" for c in name[4:])
    )
