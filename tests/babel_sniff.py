#!/usr/bin/env python3
"""What the routers say to each other: Babel packets on the rig's bridges.

Run in the namespace that holds the bridges (netlab's "sw"):

    babel_sniff.py OUT [-v]

A packet socket sees every frame as it enters a bridge port (frames the
bridge sends out are skipped, so each packet is seen once, unicast ones
too).  For each Babel packet (UDP port 6696) one line goes to OUT:

    <time.monotonic()> <sender link-local> <TLV> [<TLV> ...]

with the TLVs that matter for a route move (RFC 8966; AE 4 is RFC 9229's
v4-via-v6): U<prefix>:<metric>:<seqno> an update (metric 65535: a
retraction), R<prefix> a route request (R* for all), S<prefix>:<seqno> a
seqno request.  Hellos and IHUs are counted as H; -v adds each packet's
bytes (raw:HEX).  A diagnostic tool, for
bench/roam.py --sniff: prefix compression and router ids are decoded, sub-
TLVs skipped.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
BABEL_PORT = 6696


def _prefix(ae: int, plen: int, omitted: int, data: bytes, defaults: dict) -> tuple[str, int]:
    """The prefix of an Update TLV, and the number of bytes it took."""
    if ae == 0:
        return "*", 0
    size = 4 if ae in (1, 4) else (16 if ae == 2 else 8)
    want = (plen + 7) // 8
    if ae == 3:  # link-local: fe80::/64 + 8 bytes
        raw = bytes.fromhex("fe80000000000000") + data[:8]
        return str(ipaddress.IPv6Address(raw)), 8
    taken = max(0, want - omitted)
    base = defaults.get(1 if ae == 4 else ae, bytes(size))
    raw = (base[:omitted] + data[:taken] + bytes(size))[:size]
    if ae in (1, 4):
        return f"{ipaddress.IPv4Address(raw)}/{plen}", taken
    return f"{ipaddress.IPv6Network((raw, plen), strict=False)}", taken


def parse_babel(body: bytes) -> list[str]:
    if len(body) < 4 or body[0] != 42 or body[1] != 2:
        return []
    end = 4 + int.from_bytes(body[2:4], "big")
    out, i, defaults, hellos = [], 4, {}, 0
    while i < min(end, len(body)):
        kind = body[i]
        if kind == 0:
            i += 1
            continue
        length = body[i + 1]
        tlv = body[i + 2:i + 2 + length]
        i += 2 + length
        if kind in (4, 5):
            hellos += 1
        elif kind == 8 and len(tlv) >= 10:
            ae, flags, plen, omitted = tlv[0], tlv[1], tlv[2], tlv[3]
            seqno = int.from_bytes(tlv[6:8], "big")
            metric = int.from_bytes(tlv[8:10], "big")
            prefix, taken = _prefix(ae, plen, omitted, tlv[10:], defaults)
            if flags & 0x80 and ae in (1, 2, 4):
                size = 4 if ae != 2 else 16
                base = defaults.get(1 if ae == 4 else ae, bytes(size))
                defaults[1 if ae == 4 else ae] = (base[:omitted] + tlv[10:10 + taken]
                                                  + bytes(size))[:size]
            out.append(f"U{prefix}:{metric}:{seqno}")
        elif kind == 9 and len(tlv) >= 2:
            ae, plen = tlv[0], tlv[1]
            prefix, _ = _prefix(ae, plen, 0, tlv[2:], {})
            out.append(f"R{prefix}")
        elif kind == 10 and len(tlv) >= 14:
            ae, plen = tlv[0], tlv[1]
            seqno = int.from_bytes(tlv[2:4], "big")
            prefix, _ = _prefix(ae, plen, 0, tlv[14:], {})
            out.append(f"S{prefix}:{seqno}")
    if hellos:
        out.append("H")
    if "-v" in sys.argv:
        out.append("raw:" + body[:end].hex())
    return out


def main() -> None:
    out = open(sys.argv[1], "a", buffering=1)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    while True:
        frame, addr = sock.recvfrom(65535)
        at = time.monotonic()
        if addr[2] == PACKET_OUTGOING or len(frame) < 62:
            continue
        if frame[12:14] != b"\x86\xdd" or frame[20] != 17:  # IPv6, UDP
            continue
        if int.from_bytes(frame[56:58], "big") != BABEL_PORT:
            continue
        source = str(ipaddress.IPv6Address(frame[22:38]))
        tlvs = parse_babel(frame[62:])
        if tlvs:
            out.write(f"{at:.6f} {source} {' '.join(tlvs)}\n")


if __name__ == "__main__":
    main()
