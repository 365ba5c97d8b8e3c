"""Tell a client that just arrived where its gateway is now: ARP and NA.

Every AP's roaming interface has the same IPv4 gateway address and IPv6
link-local address, but its own MAC.  A client that roamed still has the
old AP's MAC for them; both messages below make it switch at once:

  gratuitous ARP reply: gateway IPv4 is-at our MAC, to the client's MAC;
  unsolicited Neighbour Advertisement, Override (and Router) flag set:
      target = our link-local, target link-layer option = our MAC,
      IPv6 ff02::1 at the client's MAC (RFC 6085), from our link-local.

Both are sent at once on the packet socket (upstream slept 100 ms first).

The frames differ from one client to the next only in the client's MAC (the
Ethernet destination, and the ARP target): they are built once per link
(gateway MAC and addresses) with two stand-in MACs, and each client's copy
is the template with its MAC written where the two differ: a few µs instead
of the ~0.5 ms that building them takes, on the path from a station's
association to its traffic flowing again.
"""

from __future__ import annotations

from functools import lru_cache

from sroamd.wire import arp, icmpv6
from sroamd.wire.icmpv6 import ALL_NODES, NdOptions


def arp_announcement(our_mac: bytes, gateway_ip: bytes, client_mac: bytes) -> bytes:
    return arp.gratuitous_reply(our_mac, gateway_ip, client_mac)


def na_announcement(our_mac: bytes, link_local: bytes, client_mac: bytes) -> bytes:
    message = icmpv6.build_na(link_local, NdOptions(target_lladdr=our_mac),
                              router=True, solicited=False, override=True)
    return icmpv6.build_frame(message, our_mac, client_mac, link_local, ALL_NODES)


def build_announcements(our_mac: bytes, gateway_ip: bytes | None, link_local: bytes | None,
                        client_mac: bytes) -> list[bytes]:
    """The frames to send to a client that arrived (those we have addresses for)."""
    frames = []
    if gateway_ip is not None:
        frames.append(arp_announcement(our_mac, gateway_ip, client_mac))
    if link_local is not None:
        frames.append(na_announcement(our_mac, link_local, client_mac))
    return frames


_STAND_INS = (b"\x02\x00\x00\x00\x00\x01", b"\xfd\xff\xff\xff\xff\xfe")  # differ in every byte


@lru_cache(maxsize=64)
def _templates(our_mac: bytes, gateway_ip: bytes | None,
               link_local: bytes | None) -> list[tuple[bytes, tuple[int, ...]]] | None:
    """Per frame: (frame for a stand-in client, offsets of the client's MAC
    in it); None if the frames do not differ in whole MACs only."""
    one = build_announcements(our_mac, gateway_ip, link_local, _STAND_INS[0])
    two = build_announcements(our_mac, gateway_ip, link_local, _STAND_INS[1])
    out = []
    for a, b in zip(one, two):
        if len(a) != len(b):
            return None
        differ = [i for i in range(len(a)) if a[i] != b[i]]
        starts = tuple(differ[::6])
        if len(differ) % 6 or any(differ[k:k + 6] != list(range(start, start + 6))
                                  or a[start:start + 6] != _STAND_INS[0]
                                  for k, start in zip(range(0, len(differ), 6), starts)):
            return None  # (a checksum over the MAC, say): build each time
        out.append((a, starts))
    return out


def announcements(our_mac: bytes, gateway_ip: bytes | None, link_local: bytes | None,
                  client_mac: bytes) -> list[bytes]:
    """The frames to send to a client that arrived (those we have addresses
    for), from the link's templates."""
    templates = _templates(our_mac, gateway_ip, link_local)
    if templates is None:
        return build_announcements(our_mac, gateway_ip, link_local, client_mac)
    frames = []
    for template, starts in templates:
        frame = bytearray(template)
        for start in starts:
            frame[start:start + 6] = client_mac
        frames.append(bytes(frame))
    return frames
