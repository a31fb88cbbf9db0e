"""ICMP echo from the standard library: run inside a pod's network namespace (no `ping` needed).

`python3 icmp.py DST [TRIES] [WAIT]` sends up to TRIES echo requests over a raw socket (root), one
per WAIT seconds, stops at the first matching reply and prints one JSON line:
{"ok": true, "rtt_ms": 0.08} or {"ok": false, "error": "..."}; exit 0 when a reply came.
Stdlib only, Python 3.9 syntax: the card ships this file's source into sandboxes and nodes.
"""

import json
import os
import select
import socket
import struct
import sys
import time


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(dst, tries=3, wait=1.0):
    """(ok, rtt_ms or error text) for an ICMP echo to dst (IPv4)."""
    ident = os.getpid() & 0xFFFF
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as err:
        return False, f"cannot open a raw ICMP socket: {err.strerror}"
    with sock:
        for seq in range(1, tries + 1):
            body = struct.pack("!d", time.time()) + b"nppctl-conformance"
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + body), ident, seq) + body
            sent = time.monotonic()
            try:
                sock.sendto(packet, (dst, 0))
            except OSError as err:
                last = f"send to {dst}: {err.strerror}"
                time.sleep(wait)
                continue
            last = f"no echo reply from {dst} in {tries} tries"
            deadline = sent + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    break
                data, addr = sock.recvfrom(2048)
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if kind == 0 and rid == ident and rseq == seq and addr[0] == dst:
                    return True, round((time.monotonic() - sent) * 1000, 3)
    return False, last


def main(argv):
    tries = int(argv[2]) if len(argv) > 2 else 3
    wait = float(argv[3]) if len(argv) > 3 else 1.0
    ok, value = echo(argv[1], tries, wait)
    print(json.dumps({"ok": True, "rtt_ms": value} if ok else {"ok": False, "error": value}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
