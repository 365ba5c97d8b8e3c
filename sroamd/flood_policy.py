"""Who may flood, and which flooded data are accepted: decisions only, no I/O.

The flooding port is the way into every node's store, and the store drives
routes, kicks and leases.  sroamd.flood asks this module two questions and
carries out the answers (DESIGN.md 7):

Admission: may this TCP connection become a flooding session?
  Refused, in this order (the first reason that applies is counted):
    roaming_interface  it arrived on the client side: its local address is an
                       address of a roaming interface (every AP's roaming
                       interface carries the shared gateway address), or an
                       IPv6 link-local address whose scope is a roaming
                       interface;
    client_prefix      its source lies in a served prefix (an address a client
                       may hold), except the first /64 of the IPv6 prefix,
                       which is never handed out (infrastructure addresses,
                       e.g. a peer at 2001:db8:4444::1234 for
                       2001:db8:4444::/48);
    roaming_subnet     its source lies on a roaming interface's subnet;
    not_allowed        flood_allow is set and the source is in none of its
                       prefixes (the configured -F peers are always allowed);
    too_many           MAX_INBOUND_SESSIONS accepted sessions are open already
                       (a configured peer is admitted past the limit).
  Outgoing sessions (to -F peers) are ours and are not checked.

Data: may this Update enter the store?
  Refused (dropped, counted, not relayed; the session goes on):
    kind        a key kind other than 0 (IPv4 lease), 1 (IPv6 lease),
                2 (association);
    key_length  a key not of its kind's length (5, 9, 7 bytes, kind included);
    value       a lease value that is not a MAC (6 bytes; 00:00:00:00:00:00 is
                the declined marker) nor empty (released); an association
                value that is not a node id (8 bytes) nor empty (given up);
    prefix      a node with prefixes refuses lease keys outside them (an IPv4
                key outside its IPv4 prefix, an IPv6 /64 outside its IPv6
                prefix, any key of a family it has no prefix for); a node with
                no prefix at all (a pure relay) takes any well-formed key;
    store_full  a new key while the store holds max_data data (known keys
                still merge).
  Clamped: a remaining time above max_time (see max_time_for) is cut down to
  it, and the datum goes on with that time.

C sroamd relays anything it is sent; refusing here is deliberate.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Iterable

from sroamd.config import DEFAULT_LEASE_TIME
from sroamd.leases import reserved_lease_keys
from sroamd.roaming import ASSOCIATION_TIME
from sroamd.store import ASSOCIATION, IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# -- sessions ----------------------------------------------------------------

MAX_INBOUND_SESSIONS = 64
# From one source address (configured peers excepted): a peer has one or two
# sessions to us; a host holding dozens (idle, handshaked) would lock every
# later peer out of a hub.
MAX_INBOUND_PER_SOURCE = 8

SESSION_REFUSALS = ("roaming_interface", "client_prefix", "roaming_subnet",
                    "not_allowed", "too_many", "too_many_from_source")


def parse_host(host: str) -> Address:
    """A socket address's host as an address: the %scope dropped, and an
    IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class RoamingView:
    """The roaming interfaces as the kernel has them at accept time."""
    indexes: frozenset[int] = frozenset()
    addresses: frozenset[Address] = frozenset()
    networks: tuple[Network, ...] = ()  # the subnets of those addresses


class Admission:
    def __init__(self, served: Iterable[Network] = (), gateway: Address | None = None,
                 allow: Iterable[Network] = (), peers: Iterable[Address] = (),
                 max_inbound: int = MAX_INBOUND_SESSIONS):
        self.served = tuple(served)
        # Inside the served prefixes but never a client's: the first /64 of
        # an IPv6 prefix (leases.py never hands it out).
        self.infrastructure = tuple(
            ipaddress.ip_network((n.network_address, 64)) for n in self.served if n.version == 6)
        self.gateway = gateway
        self.allow = tuple(allow)
        self.peers = frozenset(peers)
        self.max_inbound = max_inbound

    @classmethod
    def from_config(cls, config, peers: Iterable[tuple[str, int]] = ()) -> "Admission":
        """From a Config; peers: more configured peers (host, port)."""
        addresses = []
        for host, _port in [*config.peers, *peers]:
            try:
                addresses.append(parse_host(host))
            except ValueError:
                pass  # a name, not an address: it cannot match a source
        return cls(served=[p for p in (config.ipv4_prefix, config.ipv6_prefix) if p is not None],
                   gateway=config.gateway, allow=config.flood_allow, peers=addresses)

    def check(self, local: Address, local_scope: int, remote: Address, remote_scope: int,
              roaming: RoamingView, inbound: int, from_remote: int = 0) -> str | None:
        """Why a connection to local from remote must be refused, or None to
        accept it.  The scopes are the interface indexes of link-local
        addresses (0 otherwise); inbound: accepted sessions open now, of
        which from_remote from the same address."""
        if (local == self.gateway or local in roaming.addresses
                or (_link_local(local) and local_scope in roaming.indexes)
                or (_link_local(remote) and remote_scope in roaming.indexes)):
            return "roaming_interface"
        if _within(remote, self.served) and not _within(remote, self.infrastructure):
            return "client_prefix"
        if _within(remote, roaming.networks):
            return "roaming_subnet"
        configured = remote in self.peers
        if self.allow and not configured and not _within(remote, self.allow):
            return "not_allowed"
        if inbound >= self.max_inbound and not configured:
            return "too_many"
        if from_remote >= MAX_INBOUND_PER_SOURCE and not configured:
            return "too_many_from_source"
        return None

    def peers_in_served_prefixes(self) -> list[Address]:
        """Configured peers that the client-side rule will refuse when they
        connect to us (our own connections to them are not affected)."""
        return sorted((p for p in self.peers if _within(p, self.served)
                       and not _within(p, self.infrastructure)), key=str)


def _link_local(address: Address) -> bool:
    return address.version == 6 and address.is_link_local


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


# -- data --------------------------------------------------------------------

DATA_REFUSALS = ("kind", "key_length", "value", "prefix", "reserved", "store_full")

# The longest lifetime any node gives a datum is the DHCP lease time or an
# association's ASSOCIATION_TIME (5400 s; IPv6 leases live 3600 s, declined
# addresses 600 s).  Twice that leaves room for a peer
# configured with a lease time up to twice ours, and still makes a datum sent
# with 0xFFFFFFFF (136 years) expire within hours.  Every node should use the
# same lease_time: a lease longer than twice ours reaches the nodes behind us
# cut short.
LONGEST_LIFETIME_FLOOR = ASSOCIATION_TIME
MAX_TIME_FACTOR = 2

# Store bound when max_data is not configured.  A datum costs about 350 bytes
# here (dict entry, Datum, key and value, expiry calendar entry; bench/flood.py).
RELAY_MAX_DATA = 250_000  # a node with no prefix: a relay, usually a bigger box
MIN_MAX_DATA = 16_384
MAX_DEFAULT_DATA = 1_000_000
IPV6_LEASES_CAP = 16_384  # /64s counted from an IPv6 prefix, at most
ASSOCIATIONS_PER_LEASE = 2  # MACs come and go (address randomisation)

LEASE_VALUE_LENGTHS = (0, 6)  # released marker, a MAC (or the declined marker 00:..:00)
ASSOCIATION_VALUE_LENGTHS = (0, 8)  # given up, a node id


def max_time_for(lease_time: int) -> int:
    return MAX_TIME_FACTOR * max(lease_time, LONGEST_LIFETIME_FLOOR)


def default_max_data(ipv4_prefix: IPv4Network | None, ipv6_prefix: IPv6Network | None) -> int:
    """The store bound for a node's prefixes: every IPv4 address, up to
    IPV6_LEASES_CAP /64s, and ASSOCIATIONS_PER_LEASE associations for each
    of the larger of the two, between MIN_MAX_DATA and MAX_DEFAULT_DATA;
    RELAY_MAX_DATA for a node with no prefix.  (A /24 and a /48: 49,408.)"""
    if ipv4_prefix is None and ipv6_prefix is None:
        return RELAY_MAX_DATA
    v4 = ipv4_prefix.num_addresses if ipv4_prefix is not None else 0
    v6 = min(1 << (64 - ipv6_prefix.prefixlen), IPV6_LEASES_CAP) if ipv6_prefix is not None else 0
    wanted = v4 + v6 + ASSOCIATIONS_PER_LEASE * max(v4, v6)
    return max(MIN_MAX_DATA, min(MAX_DEFAULT_DATA, wanted))


class DataPolicy:
    def __init__(self, ipv4_prefix: IPv4Network | None = None,
                 ipv6_prefix: IPv6Network | None = None,
                 max_time: int | None = None, max_data: int | None = None,
                 gateway: IPv4Address | None = None):
        self.max_time = max_time if max_time is not None else max_time_for(DEFAULT_LEASE_TIME)
        self.max_data = (max_data if max_data is not None
                         else default_max_data(ipv4_prefix, ipv6_prefix))
        self.relay = ipv4_prefix is None and ipv6_prefix is None
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._v4 = self._v6 = None  # (shift, network bits) for the prefix tests
        if ipv4_prefix is not None:
            self._v4 = (32 - ipv4_prefix.prefixlen,
                        int(ipv4_prefix.network_address) >> (32 - ipv4_prefix.prefixlen))
        if ipv6_prefix is not None:
            shift = 64 - ipv6_prefix.prefixlen  # of the /64 number (upper 64 bits)
            self._v6 = (shift, (int(ipv6_prefix.network_address) >> 64) >> shift)
        self.reserved = reserved_lease_keys(ipv4_prefix, ipv6_prefix, gateway)

    @classmethod
    def from_config(cls, config) -> "DataPolicy":
        return cls(config.ipv4_prefix, config.ipv6_prefix,
                   max_time=max_time_for(config.lease_time), max_data=config.max_data,
                   gateway=config.gateway)

    def check(self, key: bytes, value: bytes, remaining: int, store) -> tuple[str | None, int]:
        """(why the update must be refused or None, the remaining time to use).

        store: anything with get(key) and len() (the Store), for the bound."""
        kind = key[0] if key else -1
        expected = KEY_LENGTHS.get(kind)
        if expected is None:
            return "kind", remaining
        if len(key) != expected:
            return "key_length", remaining
        if kind == ASSOCIATION:
            if len(value) not in ASSOCIATION_VALUE_LENGTHS:
                return "value", remaining
        else:
            if len(value) not in LEASE_VALUE_LENGTHS:
                return "value", remaining
            if not self.relay and not self._in_prefix(kind, key):
                return "prefix", remaining
            if key in self.reserved:
                return "reserved", remaining
        if remaining > self.max_time:
            remaining = self.max_time
        if remaining > 0 and len(store) >= self.max_data and store.get(key) is None:
            return "store_full", remaining
        return None, remaining

    def _in_prefix(self, kind: int, key: bytes) -> bool:
        bounds = self._v4 if kind == IPV4_LEASE else self._v6 if kind == IPV6_LEASE else None
        if bounds is None:
            return False
        shift, network = bounds
        return int.from_bytes(key[1:], "big") >> shift == network
