"""Router Advertisements, sans-IO: each client gets its own /64 by unicast RA.

  RS received (an Ethernet frame) -> the client's MAC is the frame's source
      (so an RS sent from :: during DAD, which carries no source link-layer
      option, is answered too); its IPv6 lease is created or extended and an
      RA goes back: prefix information (on-link, autonomous, valid = the
      lease's remaining time, preferred = 2/3 of it), RDNSS (lifetime in
      seconds), source link-layer option = the interface MAC.  IPv6
      destination: the RS's source, or ff02::1 if that was ::; Ethernet
      destination: the client's MAC (RFC 6085) in both cases.
  refresh schedule -> every served client gets a fresh unsolicited RA (its
      lease extended) every REFRESH_INTERVAL, well before its lifetimes end
      (upstream never refreshes, so a client staying longer than the prefix
      lifetime lost its address).  One heap of deadlines, no task per client.
  renumbering -> a served client whose /64 went to another client (a
      conflict lost) gets an RA with the old prefix at valid and preferred
      lifetime 0 and its new /64.  (RFC 4862 5.5.3 e: a host keeps an
      address whose remaining valid lifetime is under two hours when an
      unauthenticated RA says 0, so the old address stays valid but
      deprecated: new connections use the new /64 at once.)
  stop for good -> an RA with router lifetime 0 (multicast, and unicast to
      each served client).  Not on a restart: the clients would drop their
      default route for nothing.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from sroamd.config import Config
from sroamd.leases import IPV6_LEASE_TIME, Leases
from sroamd.store import IPV6_LEASE, Datum
from sroamd.wire import icmpv6
from sroamd.wire.icmpv6 import (ALL_NODES, MAX_ROUTER_LIFETIME, ND_HOP_LIMIT, UNSPECIFIED,
                                Icmpv6FormatError, NdOptions, PrefixInfo)

log = logging.getLogger("sroamd.ra")

# A third of the lease: the client hears from us twice more before even its
# preferred lifetime (2/3) would end.
REFRESH_INTERVAL = IPV6_LEASE_TIME // 3


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What RAs need to know about a roaming interface."""
    name: str
    mac: bytes
    link_local: bytes | None  # our router address on the link


@dataclass(frozen=True, slots=True)
class RsOutcome:
    mac: bytes | None
    frame: bytes | None  # the RA to send on the interface the RS came in on
    dropped: str | None = None


class RouterAdvertiser:
    def __init__(self, config: Config, leases: Leases,
                 refresh_interval: float = REFRESH_INTERVAL):
        self.leases = leases
        self.store = leases.store
        self.clock = leases.store.clock
        self.dns = [a.packed for a in config.dns_v6]
        self.refresh_interval = refresh_interval
        self.clients: dict[bytes, tuple[str, float]] = {}  # MAC -> (ifname, deadline)
        self._heap: list[tuple[float, bytes]] = []
        self.received = 0
        self.sent: Counter[str] = Counter()  # solicited, unsolicited, final
        self.dropped: Counter[str] = Counter()

    # -- solicitations -----------------------------------------------------

    def handle_rs(self, data: bytes, link: LinkInfo) -> RsOutcome:
        try:
            frame = icmpv6.parse_frame(data)
        except Icmpv6FormatError as e:
            log.debug("malformed RS on %s: %s", link.name, e)
            return self._drop(None, "malformed")
        mac = frame.eth_src
        if frame.type != icmpv6.ROUTER_SOLICITATION:
            return self._drop(mac, "not_rs")
        self.received += 1
        # RFC 4861 6.1.1 validity checks.
        if frame.hop_limit != ND_HOP_LIMIT:
            return self._drop(mac, "bad_hop_limit")
        if frame.code != 0:
            return self._drop(mac, "bad_code")
        if not frame.checksum_ok:
            return self._drop(mac, "bad_checksum")
        if mac[0] & 1:
            return self._drop(mac, "multicast_source")
        options = icmpv6.options_of(frame.body)
        if frame.ip_src == UNSPECIFIED and options.source_lladdr is not None:
            return self._drop(mac, "unspecified_with_lladdr")
        if link.link_local is None:
            return self._drop(mac, "no_link_local")
        datum = self.leases.ipv6_lease(mac)
        if datum is None:
            if not self.leases.allocation_allowed:
                # Not synced yet: no new /64 (no reply; the client asks again).
                return self._drop(mac, "not_synced")
            return self._drop(mac, "no_prefix")
        ip_dst = ALL_NODES if frame.ip_src == UNSPECIFIED else frame.ip_src
        if mac in self.clients:
            self._schedule(mac, self.clients[mac][0])
        self.sent["solicited"] += 1
        return RsOutcome(mac, self.advertisement(datum, link, mac, ip_dst))

    def advertisement(self, lease: Datum | None, link: LinkInfo, mac: bytes,
                      ip_dst: bytes = ALL_NODES, withdrawn: list[bytes] = ()) -> bytes:
        """The RA frame that gives the client its /64 (lease) for its remaining
        time, and withdraws the /64s in withdrawn (8 bytes each: lifetimes 0)."""
        prefixes = [PrefixInfo(prefix64 + bytes(8), 64, 0, 0) for prefix64 in withdrawn]
        if lease is not None:
            valid = self.store.remaining(lease)
            prefixes.append(PrefixInfo(lease.key[1:] + bytes(8), 64, valid, valid * 2 // 3))
            options = NdOptions(source_lladdr=link.mac, prefixes=prefixes,
                                rdnss_lifetime=valid, rdnss=self.dns)
            router_lifetime = min(valid, MAX_ROUTER_LIFETIME)
        else:  # (no /64 to give now: still the router)
            options = NdOptions(source_lladdr=link.mac, prefixes=prefixes)
            router_lifetime = min(IPV6_LEASE_TIME, MAX_ROUTER_LIFETIME)
        return icmpv6.build_frame(icmpv6.build_ra(router_lifetime, options),
                                  link.mac, mac, link.link_local, ip_dst)

    def renumbering(self, lease: Datum | None, link: LinkInfo | None, mac: bytes,
                    lost: list[bytes]) -> bytes | None:
        """The RA for a client whose /64s in lost went to another client:
        those at lifetime 0, and its new /64 (lease; None if it has none yet).
        None if the link is not usable now."""
        if link is None or link.link_local is None:
            return None
        self.sent["renumbering"] += 1
        return self.advertisement(lease, link, mac, withdrawn=lost)

    # -- the refresh schedule ----------------------------------------------

    def track(self, ifname: str, mac: bytes) -> None:
        """The client is served on ifname: keep its RA fresh from now on."""
        self._schedule(mac, ifname)

    def untrack(self, mac: bytes) -> None:
        self.clients.pop(mac, None)  # its heap entry goes stale

    def _schedule(self, mac: bytes, ifname: str) -> None:
        deadline = self.clock() + self.refresh_interval
        self.clients[mac] = (ifname, deadline)
        heapq.heappush(self._heap, (deadline, mac))
        if len(self._heap) > 2 * len(self.clients) + 64:
            self._heap = [(d, m) for m, (_, d) in self.clients.items()]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, mac = self._heap[0]
            entry = self.clients.get(mac)
            if entry is not None and entry[1] == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def unsolicited(self, mac: bytes, link: LinkInfo | None) -> bytes | None:
        """A fresh RA for a served client (lease extended), or None if it has
        no IPv6 lease (it never asked) or the link is not usable now."""
        datum = self.store.lease_of(mac, IPV6_LEASE)
        if datum is None or link is None or link.link_local is None:
            return None
        self.store.extend(datum.key, IPV6_LEASE_TIME)
        self.sent["unsolicited"] += 1
        return self.advertisement(datum, link, mac)

    def refresh_due(self, link_of: Callable[[str], LinkInfo | None]) -> list[tuple[str, bytes]]:
        """(ifname, frame) of the RAs due now; their next ones are scheduled."""
        now = self.clock()
        out = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                break
            _, mac = heapq.heappop(self._heap)
            ifname = self.clients[mac][0]
            self._schedule(mac, ifname)
            frame = self.unsolicited(mac, link_of(ifname))
            if frame is not None:
                out.append((ifname, frame))
        return out

    # -- stop for good ----------------------------------------------------

    def final(self, links: list[LinkInfo]) -> list[tuple[str, bytes]]:
        """RAs with router lifetime 0: to all nodes on each link, and to each
        client (a stop for good only, never a restart)."""
        out = []
        by_name = {}  # name -> (link, its RA's IPv6 packet: the same for every client)
        for link in links:
            if link.link_local is None:
                continue
            message = icmpv6.build_ra(0, NdOptions(source_lladdr=link.mac))
            packet = icmpv6.build_packet(message, link.link_local, ALL_NODES)
            by_name[link.name] = (link, packet)
            out.append((link.name, icmpv6.ethernet_frame(
                packet, link.mac, icmpv6.multicast_mac(ALL_NODES))))
        for mac, (ifname, _) in self.clients.items():
            if ifname in by_name:
                link, packet = by_name[ifname]
                out.append((ifname, icmpv6.ethernet_frame(packet, link.mac, mac)))
        self.sent["final"] += len(out)
        return out

    def _drop(self, mac: bytes | None, reason: str) -> RsOutcome:
        self.dropped[reason] += 1
        return RsOutcome(mac, None, reason)

    def status(self) -> dict:
        return {"received": self.received, "sent": dict(self.sent),
                "dropped": dict(self.dropped), "clients": len(self.clients)}
