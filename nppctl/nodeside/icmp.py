"""ICMP echo from Python: kind's node image has no `ping`, so the agent sends the echo requests itself.

A raw socket (root, CAP_NET_RAW) made in the node's namespace or, for a pod, inside the pod's network
namespace (the socket stays there after the thread switches back). One request per target; the reply
must come from the target with our identifier and sequence number.
"""

import os
import select
import socket
import struct
import time

CLONE_NEWNET = 0x40000000
ECHO_REQUEST, ECHO_REPLY = 8, 0


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _setns(fd):
    if hasattr(os, "setns"):  # 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in(netns, sock_type, proto=0):
    """An IPv4 socket made in this namespace, or in the network namespace at path `netns`: the thread
    switches there, makes it and switches back; the socket stays in the namespace it was made in."""
    if netns is None:
        return socket.socket(socket.AF_INET, sock_type, proto)
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(netns, os.O_RDONLY)
        try:
            _setns(there)
            try:
                return socket.socket(socket.AF_INET, sock_type, proto)
            finally:
                _setns(here)
        finally:
            os.close(there)
    finally:
        os.close(here)


def raw_socket(netns=None):
    """A raw ICMP socket in this namespace, or in the network namespace at path `netns`."""
    return socket_in(netns, socket.SOCK_RAW, socket.IPPROTO_ICMP)


def echo(sock, address, seq, timeout):
    """One echo request to address; the round trip in ms, or None when no reply came in time."""
    ident = os.getpid() & 0xFFFF
    payload = struct.pack("!d", time.monotonic()) + b"nppctl-check"
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", ECHO_REQUEST, 0, _checksum(header + payload), ident, seq) + payload
    started = time.monotonic()
    sock.sendto(packet, (address, 0))
    deadline = started + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        data, (src, _) = sock.recvfrom(2048)
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if kind == ECHO_REPLY and src == address and r_ident == ident and r_seq == seq:
            return (time.monotonic() - started) * 1000.0


def ping(targets, netns=None, timeout=2.0):
    """[{"address", "ok", "rtt_ms", "detail"}] for each target address, from the node or from netns."""
    try:
        sock = raw_socket(netns)
    except OSError as err:
        where = netns or "the node"
        return [{"address": a, "ok": False, "rtt_ms": None, "detail": f"no ICMP socket in {where}: {err}"}
                for a in targets]
    out = []
    with sock:
        for seq, address in enumerate(targets, start=1):
            try:
                rtt = echo(sock, address, seq, timeout)
                detail = "" if rtt is not None else f"no reply from {address} in {timeout:g}s"
            except OSError as err:
                rtt, detail = None, f"{address}: {err.strerror or err}"
            out.append({"address": address, "ok": rtt is not None, "rtt_ms": rtt, "detail": detail})
    return out
