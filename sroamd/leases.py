"""Address allocation on top of the replicated store.

A lease is a store datum: IPv4 address or IPv6 /64 -> client MAC, so every
AP sees every lease and any AP renews any client.  Allocation picks a random
free address (a random free /64 for IPv6); "free" is decided from the store
alone, so all APs agree up to flooding delay.

Two more values a lease key can hold, each flooded like any change of value
(Store.put bumps the seqno, and a newer seqno replaces the datum everywhere):

  RELEASED (empty value): the client gave the address back (DHCPRELEASE).
      Kept live for as long as the released lease would still have lived, so
      that every node still holding the old lease (including one that
      reconnects later and gets our full dump) learns the newer seqno before
      its own copy would have expired anyway.  A lifetime of 0 would not
      work: a node ignores an expired update for a datum it has live (store
      merge rules), so the release would never travel.  An empty value is
      not a MAC, so Store.leases_of no longer finds the lease, and C
      sroamd (which only reads 6-byte values) ignores it too.  The address
      is free at once.
  DECLINED (00:00:00:00:00:00): a client found the address in use
      (DHCPDECLINE).  The datum is held for DECLINE_HOLD seconds; as a live
      datum whose value is no client's MAC it keeps the whole domain from
      handing the address out until then.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Iterable

from sroamd.config import Config
from sroamd.store import IPV4_LEASE, IPV6_LEASE, Datum, Store, ipv4_lease_key, ipv6_lease_key

OFFER_TIME = 10  # seconds an offered address is held before the REQUEST (upstream)
IPV6_LEASE_TIME = 3600  # seconds, as upstream; refreshed by RAs while served
DECLINE_HOLD = 600  # seconds a declined address stays out of use
RELEASE_MIN_TIME = 60  # seconds a release marker lives at least
# An address whose lease ended less than this ago is not given to another
# client: remaining times travel in whole seconds and age in transit, so
# another node may still see that lease live for a moment.
REUSE_GRACE = 10
RANDOM_TRIES = 32  # random picks before a scan (upstream tries 32)
MAX_SCAN = 1 << 16  # candidates a scan looks at, at most

RELEASED = b""
DECLINED = bytes(6)


class Leases:
    def __init__(self, store: Store, config: Config, rng: random.Random | None = None):
        self.store = store
        self.rng = rng or random.SystemRandom()
        self.v4_first = self.v4_last = None
        self.reserved_v4: set[bytes] = set()
        if config.ipv4_prefix is not None:
            net = config.ipv4_prefix
            self.v4_first = int(net.network_address) + 1  # not the network address
            self.v4_last = int(net.broadcast_address) - 1  # nor the broadcast address
            if config.gateway is not None:
                self.reserved_v4.add(config.gateway.packed)
        self.v6_base = self.v6_bits = None
        if config.ipv6_prefix is not None:
            net = config.ipv6_prefix
            self.v6_base = int(net.network_address) >> 64
            self.v6_bits = 64 - net.prefixlen

    # -- addresses ---------------------------------------------------------

    def reserve_ipv4(self, addresses: Iterable[bytes]) -> None:
        """Addresses never handed out besides network/broadcast/gateway (the
        roaming interfaces' own addresses)."""
        self.reserved_v4.update(addresses)

    def usable_ipv4(self, address: bytes) -> bool:
        if self.v4_first is None or len(address) != 4:
            return False
        value = int.from_bytes(address, "big")
        return self.v4_first <= value <= self.v4_last and address not in self.reserved_v4

    def usable_ipv6(self, prefix64: bytes) -> bool:
        if self.v6_base is None or len(prefix64) != 8:
            return False
        return int.from_bytes(prefix64, "big") >> self.v6_bits == self.v6_base >> self.v6_bits

    def holder(self, key: bytes) -> bytes | None:
        """The value of the live datum for key (a MAC, RELEASED, DECLINED), or None."""
        datum = self.store.live(key)
        return None if datum is None else datum.value

    def _free_for(self, key: bytes, mac: bytes) -> bool:
        datum = self.store.get(key)
        if datum is None or datum.value == mac:
            return True
        now = self.store.clock()
        if datum.expires > now:
            return datum.value == RELEASED
        return datum.expires + REUSE_GRACE <= now

    # -- IPv4 --------------------------------------------------------------

    def ipv4_leases(self, mac: bytes) -> list[Datum]:
        return self.store.leases_of(mac, IPV4_LEASE)

    def ipv4_lease(self, mac: bytes, requested: bytes | None, lifetime: float) -> Datum | None:
        """The client's lease, extended to at least lifetime; else a new one:
        the requested address if usable and free, else a random free one.
        None when the prefix has no free address (or there is no IPv4 prefix)."""
        leases = self.ipv4_leases(mac)
        for datum in leases:
            if datum.key[1:] == requested:
                self.store.extend(datum.key, lifetime)
                return datum
        if leases:
            self.store.extend(leases[0].key, lifetime)
            return leases[0]
        if requested is not None and self.usable_ipv4(requested):
            key = ipv4_lease_key(requested)
            if self._free_for(key, mac):
                return self.store.put(key, mac, lifetime)
        key = self._pick_ipv4(mac)
        if key is None:
            return None
        return self.store.put(key, mac, lifetime)

    def claim_ipv4(self, mac: bytes, address: bytes, lifetime: float) -> Datum | None:
        """Give address to mac for lifetime (extending its lease); None if the
        address is not usable or someone else holds it (or it is declined)."""
        if not self.usable_ipv4(address):
            return None
        key = ipv4_lease_key(address)
        if not self._free_for(key, mac):
            return None
        datum = self.store.get(key)
        if datum is not None and datum.value == mac:
            self.store.extend(key, lifetime)
            return datum
        return self.store.put(key, mac, lifetime)

    def release_ipv4(self, mac: bytes, address: bytes) -> bool:
        """DHCPRELEASE: end mac's lease of address; False if it is not mac's."""
        return self._give_up(ipv4_lease_key(address), mac)

    def decline_ipv4(self, mac: bytes, address: bytes) -> bool:
        """DHCPDECLINE: hold address out of use; only its holder may decline it."""
        key = ipv4_lease_key(address)
        datum = self.store.live(key)
        if datum is None or datum.value != mac:
            return False
        self.store.put(key, DECLINED, DECLINE_HOLD)
        return True

    def _pick_ipv4(self, mac: bytes) -> bytes | None:
        if self.v4_first is None:
            return None
        first, last = self.v4_first, self.v4_last

        def key_of(value: int) -> bytes | None:
            address = value.to_bytes(4, "big")
            if address in self.reserved_v4:
                return None
            return ipv4_lease_key(address)

        return self._pick(mac, first, last, key_of)

    # -- IPv6 --------------------------------------------------------------

    def ipv6_lease(self, mac: bytes, lifetime: float = IPV6_LEASE_TIME) -> Datum | None:
        """The client's /64, extended to at least lifetime, or a random free one."""
        datum = self.store.lease_of(mac, IPV6_LEASE)
        if datum is not None:
            self.store.extend(datum.key, lifetime)
            return datum
        if self.v6_base is None:
            return None
        base = self.v6_base

        def key_of(value: int) -> bytes:
            return ipv6_lease_key((base | value).to_bytes(8, "big"))

        key = self._pick(mac, 0, (1 << self.v6_bits) - 1, key_of)
        if key is None:
            return None
        return self.store.put(key, mac, lifetime)

    def release_ipv6(self, mac: bytes, prefix64: bytes) -> bool:
        return self._give_up(ipv6_lease_key(prefix64), mac)

    # -- common ------------------------------------------------------------

    def _pick(self, mac: bytes, first: int, last: int, key_of) -> bytes | None:
        """A free key among key_of(first..last): random tries, then a scan
        from a random start (bounded), so a nearly full pool still works."""
        size = last - first + 1
        if size <= 0:
            return None
        for _ in range(min(RANDOM_TRIES, size)):
            key = key_of(first + self.rng.randrange(size))
            if key is not None and self._free_for(key, mac):
                return key
        start = self.rng.randrange(size)
        for i in range(min(size, MAX_SCAN)):
            key = key_of(first + (start + i) % size)
            if key is not None and self._free_for(key, mac):
                return key
        return None

    def _give_up(self, key: bytes, mac: bytes) -> bool:
        datum = self.store.live(key)
        if datum is None or datum.value != mac:
            return False
        remaining = datum.expires - self.store.clock()
        self.store.put(key, RELEASED, max(remaining, RELEASE_MIN_TIME))
        return True


def ipv4_text(address: bytes) -> str:
    return str(ipaddress.IPv4Address(address))


def ipv6_prefix_text(prefix64: bytes) -> str:
    return f"{ipaddress.IPv6Address(prefix64 + bytes(8))}/64"
