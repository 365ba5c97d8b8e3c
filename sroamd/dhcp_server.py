"""The DHCPv4 server, sans-IO: a message in (bytes), a reply out (bytes + where to).

RFC 2131 server behaviour on the leases in the replicated store:

  DISCOVER  -> OFFER: the client's lease, else the requested address if
               free, else a random free one; held OFFER_TIME seconds.
  REQUEST   -> ACK (lease extended to config.lease_time) or NAK:
     selecting (server id present): ours -> the requested address;
               another server's -> dropped, the client chose it;
     init-reboot (requested address, no ciaddr): confirm it;
     renewing / rebinding (ciaddr): extend it.
     A REQUEST for an address that is free is granted (any AP may have
     restarted; the store is the truth), one held by another client or a
     client holding another address gets NAK.
  INFORM    -> ACK with router and DNS, no lease.
  RELEASE   -> the lease ends (flooded as released); no reply.
  DECLINE   -> the address is held out of use (flooded); no reply.

Every AP answers with the same server identifier (the shared gateway
address, or the interface's own address), so a client renews at any AP.

Replies (RFC 2131 4.1): giaddr set -> the relay, port 67, through the IP
stack; NAK -> broadcast; ciaddr set -> unicast to ciaddr; broadcast flag ->
broadcast; else unicast to yiaddr at chaddr.  The adapter sends all but the
relay case as Ethernet frames, so no ARP entry is needed for a client that
has no address yet.

Who is served (the adapter, client_service.py, receives whole frames):

  src_mac   the frame's Ethernet source.  A message that did not come
            through a relay (giaddr 0) must carry it as chaddr: one that
            names another MAC is dropped ("chaddr_mismatch").  A relayed
            message comes from the relay's MAC, its chaddr is the client.
  admit     the adapter's say on the client (station or not, room left),
            asked once the message is known valid and before any lease is
            touched: a reason to drop it, or None.
  offers    at most max_offers offers are outstanding at once to clients
            that hold no lease (each holds an address for OFFER_TIME
            seconds): past that, a DISCOVER from a client without a lease is
            dropped ("too_many_offers"), so a flood of DISCOVERs with random
            MACs cannot take the whole pool.  Default: a quarter of the IPv4
            pool, between 16 and 256.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from sroamd.config import Config
from sroamd.leases import DECLINE_HOLD, OFFER_TIME, Leases, ipv4_text
from sroamd.loglimit import LogLimiter
from sroamd.wire import dhcp
from sroamd.wire.dhcp import (ACK, DECLINE, DISCOVER, INFORM, NAK, OFFER, RELEASE, REQUEST,
                              ZERO4, DhcpFormatError, DhcpMessage)
from sroamd.wire.ip import BROADCAST_MAC

log = logging.getLogger("sroamd.dhcp")

HOST_NETMASK = b"\xff\xff\xff\xff"
# A DECLINE holds an address out of use for DECLINE_HOLD seconds.  A client
# finds an address in use by someone else rarely, once or twice; one that
# REQUESTs and DECLINEs in a loop would hold the whole pool out of use
# (attack review: a /24 gone for 10 minutes).  So at most this many DECLINEs
# of a client count within DECLINE_HOLD; later ones are refused (counted).
MAX_DECLINES_PER_CLIENT = 2
DECLINE_MEMORY = 4096  # clients whose recent DECLINEs are remembered
LIMITED_BROADCAST = b"\xff\xff\xff\xff"
# Upstream renews after 1600 s and rebinds after 1700 s of an 1800 s lease;
# the same shares of any lease time, capped at those values.
T1_CAP, T2_CAP = 1600, 1700
MIN_OFFERS, MAX_OFFERS = 16, 256  # bounds of the default max_offers

# admit(mac, relayed, message_type) -> a reason to drop the message, or None.
Admit = Callable[[bytes, bool, int], "str | None"]


def default_max_offers(config: Config) -> int:
    """A quarter of the IPv4 pool, between MIN_OFFERS and MAX_OFFERS."""
    pool = config.ipv4_prefix.num_addresses - 3 if config.ipv4_prefix is not None else 0
    return max(MIN_OFFERS, min(MAX_OFFERS, pool // 4))


def renewal_times(lease_time: int) -> tuple[int, int]:
    """(T1, T2) for a lease time: upstream's 1600/1700 s for 1800 s."""
    return min(T1_CAP, lease_time * 8 // 9), min(T2_CAP, lease_time * 17 // 18)


@dataclass(frozen=True, slots=True)
class DhcpReply:
    payload: bytes  # the DHCP message (UDP payload)
    message_type: int
    ip_dst: bytes  # 4 bytes
    port: int  # 68, or 67 to a relay
    mac_dst: bytes | None  # Ethernet destination; None: through the IP stack (relay)
    yiaddr: bytes


@dataclass(frozen=True, slots=True)
class DhcpOutcome:
    mac: bytes | None  # the client (None when dropped before we knew it)
    relayed: bool  # came through a relay: the client is not on our link
    reply: DhcpReply | None
    dropped: str | None = None  # why nothing was done, if so
    kind: int | None = None  # the message type (None: dropped before it was known)


class DhcpServer:
    def __init__(self, config: Config, leases: Leases, max_offers: int | None = None):
        self.config = config
        self.leases = leases
        self.lease_time = config.lease_time
        self.t1, self.t2 = renewal_times(config.lease_time)
        self.dns = [a.packed for a in config.dns_v4]
        self.received: Counter[str] = Counter()  # by message type name
        self.sent: Counter[str] = Counter()  # by message type name
        self.dropped: Counter[str] = Counter()  # by reason
        self.events: Counter[str] = Counter()  # releases, declines, refused ones
        self.max_offers = max_offers if max_offers is not None else default_max_offers(config)
        # Clients holding an offer and no lease -> when the offer lapses, oldest first.
        self._offers: dict[bytes, float] = {}
        # Clients -> times of their recent DECLINEs (oldest client first).
        self._declines: dict[bytes, list[float]] = {}
        self._drop_log = LogLimiter(log)

    def handle(self, data: bytes, server_ip: bytes | None, src_mac: bytes | None = None,
               admit: Admit | None = None) -> DhcpOutcome:
        """One message received on a roaming interface whose server address
        (gateway, else the interface's IPv4 address) is server_ip, in a frame
        from src_mac (None: not known, not checked)."""
        try:
            message = dhcp.parse(data)
        except DhcpFormatError as e:
            log.debug("malformed DHCP message: %s", e)
            return self._drop(None, False, "malformed")
        relayed = message.giaddr != ZERO4
        if message.op != dhcp.BOOTREQUEST:
            return self._drop(None, relayed, "not_request")
        if message.htype != dhcp.HTYPE_ETHERNET or message.hlen != 6:
            return self._drop(None, relayed, "not_ethernet")
        mac = message.mac
        kind = message.message_type
        if kind is None:
            return self._drop(mac, relayed, "bootp")  # plain BOOTP: not served
        self.received[dhcp.MESSAGE_TYPE_NAMES.get(kind, str(kind))] += 1
        if src_mac is not None and not relayed and mac != src_mac:
            self._drop_log.log(logging.WARNING, "DHCP message from %s names another client, "
                               "%s: dropped", _mac(src_mac), _mac(mac))
            return self._drop(mac, relayed, "chaddr_mismatch", kind)
        if admit is not None:
            reason = admit(mac, relayed, kind)
            if reason is not None:
                return self._drop(mac, relayed, reason, kind)
        if server_ip is None:
            return self._drop(mac, relayed, "no_server_address", kind)
        server_id = message.options.get(dhcp.OPT_SERVER_ID)
        if server_id is not None and server_id != server_ip:
            # Selecting another server (or releasing/declining its lease).
            return self._drop(mac, relayed, "other_server", kind)
        if kind == DISCOVER:
            return self._discover(message, mac, relayed, server_ip)
        if kind == REQUEST:
            return self._request(message, mac, relayed, server_ip)
        if kind == INFORM:
            return self._reply(message, mac, relayed, server_ip, ACK, ZERO4, lease=False)
        if kind == RELEASE:
            self._offers.pop(mac, None)
            if self.leases.release_ipv4(mac, message.ciaddr):
                self.events["released"] += 1
                log.info("%s released %s", _mac(mac), ipv4_text(message.ciaddr))
            else:
                self.events["release_refused"] += 1
            return DhcpOutcome(mac, relayed, None, kind=kind)
        if kind == DECLINE:
            address = message.options.get(dhcp.OPT_REQUESTED_ADDRESS)
            if not self._may_decline(mac):
                self.events["decline_limited"] += 1
                self._drop_log.log(logging.WARNING, "%s declined more than %d addresses "
                                   "in %d s: ignored", _mac(mac), MAX_DECLINES_PER_CLIENT,
                                   DECLINE_HOLD)
            elif address is not None and self.leases.decline_ipv4(mac, address):
                self._declines.setdefault(mac, []).append(self.leases.store.clock())
                self.events["declined"] += 1
                log.warning("%s declined %s (in use by someone else?): held out of use",
                            _mac(mac), ipv4_text(address))
            else:
                self.events["decline_refused"] += 1
            return DhcpOutcome(mac, relayed, None, kind=kind)
        return self._drop(mac, relayed, "unexpected_type", kind)

    def _discover(self, message: DhcpMessage, mac: bytes, relayed: bool,
                  server_ip: bytes) -> DhcpOutcome:
        requested = message.options.get(dhcp.OPT_REQUESTED_ADDRESS)
        new_offer = not self.leases.ipv4_leases(mac)
        if new_offer and not self._offer_room(mac):
            self._drop_log.log(logging.WARNING, "%d offers outstanding: not offering to %s",
                               len(self._offers), _mac(mac))
            return self._drop(mac, relayed, "too_many_offers", DISCOVER)
        datum = self.leases.ipv4_lease(mac, requested, OFFER_TIME)
        if datum is None and not self.leases.allocation_allowed:
            # Not synced yet: no new address (no reply; the client retries).
            return self._drop(mac, relayed, "not_synced", DISCOVER)
        if datum is None:
            log.warning("no free IPv4 address to offer %s", _mac(mac))
            return self._drop(mac, relayed, "pool_exhausted", DISCOVER)
        if new_offer:
            self._offers.pop(mac, None)  # (re-inserted: the newest last)
            self._offers[mac] = self.leases.store.clock() + OFFER_TIME
        return self._reply(message, mac, relayed, server_ip, OFFER, datum.key[1:])

    def _may_decline(self, mac: bytes) -> bool:
        """Whether a DECLINE of mac may hold an address out of use now."""
        now = self.leases.store.clock()
        recent = [t for t in self._declines.pop(mac, ()) if t > now - DECLINE_HOLD]
        if recent:
            self._declines[mac] = recent  # (re-inserted: the most recent last)
            if len(self._declines) > DECLINE_MEMORY:
                del self._declines[next(iter(self._declines))]
        return len(recent) < MAX_DECLINES_PER_CLIENT

    def _offer_room(self, mac: bytes) -> bool:
        """Whether mac may be made a new offer: lapsed offers are forgotten
        first (oldest first, as they were made)."""
        now = self.leases.store.clock()
        offers = self._offers
        while offers:
            first = next(iter(offers))
            if offers[first] > now:
                break
            del offers[first]
        return mac in offers or len(offers) < self.max_offers

    def offers_outstanding(self) -> int:
        self._offer_room(b"")
        return len(self._offers)

    def _request(self, message: DhcpMessage, mac: bytes, relayed: bool,
                 server_ip: bytes) -> DhcpOutcome:
        requested = message.options.get(dhcp.OPT_REQUESTED_ADDRESS)
        ciaddr = message.ciaddr if message.ciaddr != ZERO4 else None
        if dhcp.OPT_SERVER_ID in message.options or ciaddr is None:
            # Selecting (server id: ours, checked above) or init-reboot.
            address = requested or ciaddr
        else:
            # Renewing (unicast) or rebinding (broadcast).
            address = ciaddr
        if address is None:
            return self._drop(mac, relayed, "request_without_address", REQUEST)
        own = self.leases.ipv4_leases(mac)
        if own and all(d.key[1:] != address for d in own):
            datum = None  # the client is to use the address it holds
        else:
            datum = self.leases.claim_ipv4(mac, address, self.lease_time)
        if datum is None and not own and self.leases.claim_deferred(mac, address):
            # Not synced yet, and this would be a new lease: no reply (the
            # client retries), no NAK (the address may well be its own).
            return self._drop(mac, relayed, "not_synced", REQUEST)
        if datum is None:
            log.info("NAK %s for %s", _mac(mac), ipv4_text(address))
            return self._reply(message, mac, relayed, server_ip, NAK, ZERO4)
        self._offers.pop(mac, None)  # a lease now, no longer an offer
        for other in own:
            # Offers made at the same time by several APs before the store
            # converged: the client took this one, the others go back.
            if other is not datum:
                self.leases.release_ipv4(mac, other.key[1:])
        return self._reply(message, mac, relayed, server_ip, ACK, address)

    def _reply(self, request: DhcpMessage, mac: bytes, relayed: bool, server_ip: bytes,
               kind: int, yiaddr: bytes, lease: bool = True) -> DhcpOutcome:
        options: dict[int, object] = {dhcp.OPT_MESSAGE_TYPE: kind, dhcp.OPT_SERVER_ID: server_ip}
        if kind != NAK:
            if lease:
                options[dhcp.OPT_LEASE_TIME] = self.lease_time
                options[dhcp.OPT_RENEWAL_TIME] = self.t1
                options[dhcp.OPT_REBINDING_TIME] = self.t2
                options[dhcp.OPT_SUBNET_MASK] = HOST_NETMASK
            options[dhcp.OPT_ROUTER] = [server_ip]
            if self.dns:
                options[dhcp.OPT_DNS] = self.dns
        flags = request.flags
        if kind == NAK and relayed:
            flags |= dhcp.FLAG_BROADCAST  # RFC 2131 4.3.2: the relay broadcasts it
        reply = DhcpMessage(
            op=dhcp.BOOTREPLY, xid=request.xid, flags=flags,
            ciaddr=request.ciaddr if kind == ACK else ZERO4, yiaddr=yiaddr,
            giaddr=request.giaddr, chaddr=request.chaddr, options=options)
        payload = dhcp.build(reply)
        ip_dst, port, mac_dst = self._destination(request, kind, yiaddr, mac)
        name = dhcp.MESSAGE_TYPE_NAMES[kind]
        self.sent[name] += 1
        return DhcpOutcome(mac, relayed, DhcpReply(payload, kind, ip_dst, port, mac_dst, yiaddr),
                           kind=request.message_type)

    @staticmethod
    def _destination(request: DhcpMessage, kind: int, yiaddr: bytes,
                     mac: bytes) -> tuple[bytes, int, bytes | None]:
        if request.giaddr != ZERO4:
            return request.giaddr, dhcp.SERVER_PORT, None
        if kind == NAK:
            return LIMITED_BROADCAST, dhcp.CLIENT_PORT, BROADCAST_MAC
        if request.ciaddr != ZERO4:
            return request.ciaddr, dhcp.CLIENT_PORT, mac
        if request.broadcast or yiaddr == ZERO4:
            return LIMITED_BROADCAST, dhcp.CLIENT_PORT, BROADCAST_MAC
        return yiaddr, dhcp.CLIENT_PORT, mac

    def _drop(self, mac: bytes | None, relayed: bool, reason: str,
              kind: int | None = None) -> DhcpOutcome:
        self.dropped[reason] += 1
        return DhcpOutcome(mac, relayed, None, reason, kind)

    def count_drop(self, reason: str) -> None:
        """A message the adapter dropped before it got here (e.g. a bad frame)."""
        self.dropped[reason] += 1

    def status(self) -> dict:
        return {"received": dict(self.received), "sent": dict(self.sent),
                "dropped": dict(self.dropped), "events": dict(self.events),
                "offers_outstanding": self.offers_outstanding(), "max_offers": self.max_offers}


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
