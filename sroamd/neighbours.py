"""Tell a client that just arrived where its gateway is now: ARP and NA.

Every AP's roaming interface has the same IPv4 gateway address and IPv6
link-local address, but its own MAC.  A client that roamed still has the
old AP's MAC for them; both messages below make it switch at once:

  gratuitous ARP reply: gateway IPv4 is-at our MAC, to the client's MAC;
  unsolicited Neighbour Advertisement, Override (and Router) flag set:
      target = our link-local, target link-layer option = our MAC,
      IPv6 ff02::1 at the client's MAC (RFC 6085), from our link-local.

Both are sent at once on the packet socket (upstream slept 100 ms first).
"""

from __future__ import annotations

import functools

from sroamd.wire import arp, icmpv6
from sroamd.wire.icmpv6 import ALL_NODES, NdOptions


def arp_announcement(our_mac: bytes, gateway_ip: bytes, client_mac: bytes) -> bytes:
    return arp.gratuitous_reply(our_mac, gateway_ip, client_mac)


def na_announcement(our_mac: bytes, link_local: bytes, client_mac: bytes) -> bytes:
    return icmpv6.ethernet_frame(_na_packet(our_mac, link_local), our_mac, client_mac)


@functools.lru_cache(maxsize=16)
def _na_packet(our_mac: bytes, link_local: bytes) -> bytes:
    """The NA's IPv6 packet: the same for every client of an interface (to
    ff02::1), so built once; only the Ethernet destination differs."""
    message = icmpv6.build_na(link_local, NdOptions(target_lladdr=our_mac),
                              router=True, solicited=False, override=True)
    return icmpv6.build_packet(message, link_local, ALL_NODES)


def announcements(our_mac: bytes, gateway_ip: bytes | None, link_local: bytes | None,
                  client_mac: bytes) -> list[bytes]:
    """The frames to send to a client that arrived (those we have addresses for)."""
    frames = []
    if gateway_ip is not None:
        frames.append(arp_announcement(our_mac, gateway_ip, client_mac))
    if link_local is not None:
        frames.append(na_announcement(our_mac, link_local, client_mac))
    return frames
