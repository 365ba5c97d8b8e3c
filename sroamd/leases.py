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

Never handed out: the network and broadcast addresses, the shared gateway
address and the roaming interfaces' own IPv4 addresses; the first /64 of the
IPv6 prefix (infrastructure addresses, e.g. 2001:db8:4444::1234 in the
README's example) and the /64s of the roaming interfaces' global addresses.

Cost: which addresses are taken is kept in a bitmap per prefix (1 bit per
address or /64, plus 1 byte per 8 of them saying "all 8 taken", searched with
bytearray.find at C speed), updated by a store listener, with a count of free
ones; so a full pool answers at once and a nearly full one costs a few
microseconds, not a scan of the store (141 ms for a full /16 before).  A
prefix of more than BITMAP_LIMIT addresses (/64s) gets no bitmap: random
tries find a free one there.  "Free" still follows _free_for (released,
declined, REUSE_GRACE after expiry): a lease that expires changes no datum,
so each taken entry is looked at again when its expiry plus REUSE_GRACE has
passed (a heap of those times), and every candidate the bitmap offers is
checked against the store before it is used.

Sync before serving: while allocation_allowed is False (the daemon clears it
at start until the store is synced from a peer), no new address and no new
/64 is created; existing leases are found and extended as usual.  Refusals
for that reason are counted in deferred.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from collections import Counter
from typing import Callable, Iterable

from sroamd.config import Config
from sroamd.store import (IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS, Datum, Store, ipv4_lease_key,
                          ipv6_lease_key)

OFFER_TIME = 10  # seconds an offered address is held before the REQUEST (upstream)
IPV6_LEASE_TIME = 3600  # seconds, as upstream; refreshed by RAs while served
DECLINE_HOLD = 600  # seconds a declined address stays out of use
RELEASE_MIN_TIME = 60  # seconds a release marker lives at least
# An address whose lease ended less than this ago is not given to another
# client: remaining times travel in whole seconds and age in transit, so
# another node may still see that lease live for a moment.
REUSE_GRACE = 10
# Pools of more addresses than this get no bitmap (1 << 20: 256 KB of it).
BITMAP_LIMIT = 1 << 20
RANDOM_TRIES = 64  # random picks in a pool without bitmap
# With a bitmap: random picks first while at least this share of the pool is
# free (a handful of tries), else one search from a random place.
RANDOM_SHARE = 4

RELEASED = b""
DECLINED = bytes(6)


def reserved_lease_keys(ipv4_prefix: ipaddress.IPv4Network | None,
                        ipv6_prefix: ipaddress.IPv6Network | None,
                        gateway: ipaddress.IPv4Address | None) -> frozenset[bytes]:
    """Lease keys no client ever holds, the same on every node of the domain
    (never handed out, see the module doc; the flooding policy refuses them
    from peers): the IPv4 prefix's network and broadcast addresses, the
    shared gateway, the first /64 of the IPv6 prefix (infrastructure).  A
    lease of one of them naming a client served here would route the gateway
    or the infrastructure to that client."""
    keys = set()
    if ipv4_prefix is not None:
        if ipv4_prefix.prefixlen <= 30:
            keys.add(bytes([IPV4_LEASE]) + ipv4_prefix.network_address.packed)
            keys.add(bytes([IPV4_LEASE]) + ipv4_prefix.broadcast_address.packed)
        if gateway is not None and gateway in ipv4_prefix:
            keys.add(bytes([IPV4_LEASE]) + gateway.packed)
    if ipv6_prefix is not None:
        keys.add(bytes([IPV6_LEASE]) + ipv6_prefix.network_address.packed[:8])
    return frozenset(keys)


class Bitmap:
    """Which of size entries are taken: one bit each, and one byte per 8
    entries that is 1 when all 8 are taken, so that bytearray.find(0) finds a
    byte with a free entry at C speed.  Padding bits past size are taken."""

    __slots__ = ("size", "bits", "full", "taken")

    def __init__(self, size: int):
        self.size = size
        nbytes = (size + 7) // 8
        self.bits = bytearray(nbytes)
        self.full = bytearray(nbytes)
        self.taken = 0
        if size % 8:
            self.bits[-1] = 0xFF & ~((1 << (size % 8)) - 1)

    @property
    def free(self) -> int:
        return self.size - self.taken

    def __contains__(self, index: int) -> bool:
        return bool(self.bits[index >> 3] & (1 << (index & 7)))

    def set(self, index: int, taken: bool) -> None:
        byte, mask = index >> 3, 1 << (index & 7)
        value = self.bits[byte]
        if bool(value & mask) == taken:
            return
        value ^= mask
        self.bits[byte] = value
        self.full[byte] = value == 0xFF
        self.taken += 1 if taken else -1

    def find_free(self, start: int) -> int | None:
        """A free entry: the first at or after start's byte, wrapping around."""
        if self.taken >= self.size:
            return None
        byte = self.full.find(0, start >> 3)
        if byte < 0:
            byte = self.full.find(0)
        value = self.bits[byte]
        return byte * 8 + ((~value & (value + 1)).bit_length() - 1)


class Pool:
    """The addresses (IPv4) or /64s (IPv6) of one prefix: index i <-> key."""

    def __init__(self, kind: int, first: int, size: int, key_of: Callable[[int], bytes],
                 index_of: Callable[[bytes], int | None]):
        self.kind = kind
        self.first = first
        self.size = size
        self.key_of = key_of  # index -> store key
        self.index_of = index_of  # store key -> index, None if outside
        self.bitmap = Bitmap(size) if 0 < size <= BITMAP_LIMIT else None
        self.reserved: set[int] = set()

    @property
    def free(self) -> int | None:
        return None if self.bitmap is None else self.bitmap.free


class Leases:
    def __init__(self, store: Store, config: Config, rng: random.Random | None = None):
        self.store = store
        self.rng = rng or random.SystemRandom()
        # False while the store is not synced yet: no new address or /64.
        self.allocation_allowed = True
        self.deferred: Counter[str] = Counter()  # "ipv4", "ipv6": requests refused for that
        self.v4: Pool | None = None
        self.v6: Pool | None = None
        self.v4_first = self.v4_last = None
        if config.ipv4_prefix is not None:
            net = config.ipv4_prefix
            self.v4_first = int(net.network_address) + 1  # not the network address
            self.v4_last = int(net.broadcast_address) - 1  # nor the broadcast address
            self.v4 = Pool(IPV4_LEASE, self.v4_first, self.v4_last - self.v4_first + 1,
                           self._v4_key, self._v4_index)
        self.v6_base = self.v6_bits = None
        if config.ipv6_prefix is not None:
            net = config.ipv6_prefix
            self.v6_base = int(net.network_address) >> 64
            self.v6_bits = 64 - net.prefixlen
            self.v6 = Pool(IPV6_LEASE, 0, 1 << self.v6_bits, self._v6_key, self._v6_index)
        # (time, key): when a taken entry may have become free (its expiry
        # plus REUSE_GRACE); stale entries are harmless (looked at again).
        self._recheck: list[tuple[float, bytes]] = []
        for datum in store:
            self._update(datum.key)
        store.listeners.append(self._on_store_change)
        if config.gateway is not None and self.v4 is not None:
            self.reserve_ipv4([config.gateway.packed])
        if self.v6 is not None:
            self.reserve_ipv6([(self.v6_base << 64).to_bytes(16, "big")])  # the first /64

    # -- key <-> index -----------------------------------------------------

    def _v4_key(self, index: int) -> bytes:
        return ipv4_lease_key((self.v4_first + index).to_bytes(4, "big"))

    def _v4_index(self, key: bytes) -> int | None:
        index = int.from_bytes(key[1:5], "big") - self.v4_first
        return index if 0 <= index < self.v4.size else None

    def _v6_key(self, index: int) -> bytes:
        return ipv6_lease_key((self.v6_base | index).to_bytes(8, "big"))

    def _v6_index(self, key: bytes) -> int | None:
        value = int.from_bytes(key[1:9], "big")
        if value >> self.v6_bits != self.v6_base >> self.v6_bits:
            return None
        return value & ((1 << self.v6_bits) - 1)

    def _pool_of(self, key: bytes) -> tuple[Pool | None, int | None]:
        if not key or key[0] not in (IPV4_LEASE, IPV6_LEASE) or len(key) != KEY_LENGTHS[key[0]]:
            return None, None
        pool = self.v4 if key[0] == IPV4_LEASE else self.v6
        if pool is None:
            return None, None
        return pool, pool.index_of(key)

    # -- which entries are taken (the bitmaps) -----------------------------

    def _on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        self._update(datum.key)

    def _update(self, key: bytes) -> None:
        """Bring key's bit in line with the store (and the reservations)."""
        pool, index = self._pool_of(key)
        if index is None or pool.bitmap is None:
            return
        datum = self.store.get(key)
        taken = index in pool.reserved or not self._free_for(key, None)
        pool.bitmap.set(index, taken)
        if datum is None or index in pool.reserved:
            return
        # The next moment the answer can change: REUSE_GRACE after the
        # expiry; for a live release marker (free) its expiry, after which
        # _free_for holds it for REUSE_GRACE like any other lease.
        now = self.store.clock()
        when = datum.expires if not taken and datum.expires > now else datum.expires + REUSE_GRACE
        if when > now:
            heapq.heappush(self._recheck, (when, key))
            if len(self._recheck) > 2 * len(self.store) + 64:
                self._rebuild_recheck()

    def _rebuild_recheck(self) -> None:
        self._recheck = [(d.expires, d.key) for d in self.store
                         if self._pool_of(d.key)[1] is not None]
        heapq.heapify(self._recheck)  # (each is looked at again, and pushed back if need be)

    def _recheck_due(self) -> None:
        """Entries whose lease may have ended (plus REUSE_GRACE) since: free them."""
        now = self.store.clock()
        while self._recheck and self._recheck[0][0] <= now:
            _, key = heapq.heappop(self._recheck)
            self._update(key)

    def status(self) -> dict:
        return {"allocation_allowed": self.allocation_allowed,
                "deferred": dict(self.deferred),
                "ipv4_free": self.v4.free if self.v4 else None,
                "ipv6_free": self.v6.free if self.v6 else None}

    # -- addresses ---------------------------------------------------------

    def reserve_ipv4(self, addresses: Iterable[bytes]) -> None:
        """Addresses never handed out besides network/broadcast/gateway (the
        roaming interfaces' own addresses)."""
        self._reserve(self.v4, (ipv4_lease_key(a) for a in addresses if len(a) == 4))

    def reserve_ipv6(self, addresses: Iterable[bytes]) -> None:
        """The /64s of these IPv6 addresses (16 bytes) are never handed out."""
        self._reserve(self.v6, (ipv6_lease_key(a[:8]) for a in addresses if len(a) == 16))

    def _reserve(self, pool: Pool | None, keys: Iterable[bytes]) -> None:
        if pool is None:
            return
        for key in keys:
            index = pool.index_of(key)
            if index is not None and index not in pool.reserved:
                pool.reserved.add(index)
                if pool.bitmap is not None:
                    pool.bitmap.set(index, True)

    @property
    def reserved_v4(self) -> set[bytes]:
        if self.v4 is None:
            return set()
        return {self.v4.key_of(i)[1:] for i in self.v4.reserved}

    def usable_ipv4(self, address: bytes) -> bool:
        if self.v4 is None or len(address) != 4:
            return False
        index = self.v4.index_of(ipv4_lease_key(address))
        return index is not None and index not in self.v4.reserved

    def usable_ipv6(self, prefix64: bytes) -> bool:
        if self.v6 is None or len(prefix64) != 8:
            return False
        index = self.v6.index_of(ipv6_lease_key(prefix64))
        return index is not None and index not in self.v6.reserved

    def holder(self, key: bytes) -> bytes | None:
        """The value of the live datum for key (a MAC, RELEASED, DECLINED), or None."""
        datum = self.store.live(key)
        return None if datum is None else datum.value

    def _free_for(self, key: bytes, mac: bytes | None) -> bool:
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
        None when the prefix has no free address (or there is no IPv4
        prefix), or while allocation is not allowed (counted in deferred)."""
        leases = self.ipv4_leases(mac)
        for datum in leases:
            if datum.key[1:] == requested:
                self.store.extend(datum.key, lifetime)
                return datum
        if leases:
            self.store.extend(leases[0].key, lifetime)
            return leases[0]
        if self.v4 is None:
            return None
        if not self.allocation_allowed:
            self.deferred["ipv4"] += 1
            return None
        if requested is not None and self.usable_ipv4(requested):
            key = ipv4_lease_key(requested)
            if self._free_for(key, mac):
                return self.store.put(key, mac, lifetime)
        key = self._pick(self.v4, mac)
        if key is None:
            return None
        return self.store.put(key, mac, lifetime)

    def claim_ipv4(self, mac: bytes, address: bytes, lifetime: float) -> Datum | None:
        """Give address to mac for lifetime (extending its lease); None if the
        address is not usable or someone else holds it (or it is declined),
        or if it would be a new lease while allocation is not allowed
        (counted in deferred; see claim_deferred)."""
        if not self.usable_ipv4(address):
            return None
        key = ipv4_lease_key(address)
        if not self._free_for(key, mac):
            return None
        datum = self.store.get(key)
        if datum is not None and datum.value == mac:
            self.store.extend(key, lifetime)
            return datum
        if not self.allocation_allowed:
            self.deferred["ipv4"] += 1
            return None
        return self.store.put(key, mac, lifetime)

    def claim_deferred(self, mac: bytes, address: bytes) -> bool:
        """Whether claim_ipv4(mac, address) is refused only because allocation
        is not allowed yet (the address would be granted once it is)."""
        if self.allocation_allowed or not self.usable_ipv4(address):
            return False
        key = ipv4_lease_key(address)
        return self._free_for(key, mac)

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

    # -- IPv6 --------------------------------------------------------------

    def ipv6_lease(self, mac: bytes, lifetime: float = IPV6_LEASE_TIME) -> Datum | None:
        """The client's /64, extended to at least lifetime, or a random free
        one (None: none free, no IPv6 prefix, or allocation not allowed)."""
        datum = self.store.lease_of(mac, IPV6_LEASE)
        if datum is not None:
            self.store.extend(datum.key, lifetime)
            return datum
        if self.v6 is None:
            return None
        if not self.allocation_allowed:
            self.deferred["ipv6"] += 1
            return None
        key = self._pick(self.v6, mac)
        if key is None:
            return None
        return self.store.put(key, mac, lifetime)

    def release_ipv6(self, mac: bytes, prefix64: bytes) -> bool:
        return self._give_up(ipv6_lease_key(prefix64), mac)

    # -- common ------------------------------------------------------------

    def _pick(self, pool: Pool, mac: bytes) -> bytes | None:
        """A free key of the pool, at random (see the module's note on cost)."""
        bitmap = pool.bitmap
        if bitmap is None:  # a huge prefix: random tries
            for _ in range(RANDOM_TRIES):
                index = self.rng.randrange(pool.size)
                if index not in pool.reserved:
                    key = pool.key_of(index)
                    if self._free_for(key, mac):
                        return key
            return None
        self._recheck_due()
        if bitmap.free * RANDOM_SHARE >= bitmap.size:
            for _ in range(2 * RANDOM_SHARE):
                index = self.rng.randrange(pool.size)
                if index not in bitmap:
                    key = pool.key_of(index)
                    if self._free_for(key, mac):
                        return key
                    self._update(key)
        while True:
            index = bitmap.find_free(self.rng.randrange(pool.size))
            if index is None:
                return None
            key = pool.key_of(index)
            if self._free_for(key, mac):
                return key
            self._update(key)  # taken after all (e.g. a release marker just expired)
            if index not in bitmap:  # (cannot happen: _free_for agrees with _update)
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
