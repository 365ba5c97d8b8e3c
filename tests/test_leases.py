"""sroamd.leases: allocation, release and decline on the replicated store."""

import ipaddress
import random


from sroamd.config import Config
from sroamd.leases import (DECLINE_HOLD, DECLINED, OFFER_TIME, RELEASED, REUSE_GRACE, Leases)
from sroamd.store import IPV4_LEASE, IPV6_LEASE, Outcome, Store, ipv4_lease_key, ipv6_lease_key


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def make(v4="192.0.2.0/24", v6="2001:db8:4444::/48", gateway="192.0.2.1", seed=1):
    clock = Clock()
    store = Store(clock)
    config = Config(ipv4_prefix=ipaddress.ip_network(v4) if v4 else None,
                    ipv6_prefix=ipaddress.ip_network(v6) if v6 else None,
                    gateway=ipaddress.ip_address(gateway) if gateway else None)
    return clock, store, Leases(store, config, random.Random(seed))


def test_random_address_in_prefix_never_network_broadcast_or_gateway():
    clock, store, leases = make(v4="192.0.2.0/29")
    got = set()
    for i in range(5):  # .2 .. .6: the 5 usable ones
        datum = leases.ipv4_lease(bytes([2, 7, 0, 0, 0, i]), None, 100)
        got.add(datum.key[1:])
    assert got == {ip(f"192.0.2.{n}") for n in range(2, 7)}
    assert leases.ipv4_lease(B, None, 100) is None  # full


def test_reserved_interface_addresses_are_not_handed_out():
    clock, store, leases = make(v4="192.0.2.0/30", gateway=None)
    leases.reserve_ipv4([ip("192.0.2.1")])
    assert leases.ipv4_lease(A, None, 100).key == ipv4_lease_key(ip("192.0.2.2"))
    assert leases.ipv4_lease(B, None, 100) is None


def test_requested_address_if_free_else_random():
    clock, store, leases = make()
    assert leases.ipv4_lease(A, ip("192.0.2.50"), 100).key[1:] == ip("192.0.2.50")
    other = leases.ipv4_lease(B, ip("192.0.2.50"), 100).key[1:]
    assert other != ip("192.0.2.50") and leases.usable_ipv4(other)
    # Not usable: the gateway, outside the prefix, broadcast.
    for bad in ("192.0.2.1", "198.51.100.7", "192.0.2.255"):
        c = bytes([2, 9, 9, 9, 9, bad.count(".") + len(bad)])
        assert leases.ipv4_lease(c, ip(bad), 100).key[1:] != ip(bad)


def test_existing_lease_is_extended_whatever_is_requested():
    clock, store, leases = make()
    first = leases.ipv4_lease(A, None, OFFER_TIME)
    clock.now += 5
    again = leases.ipv4_lease(A, ip("192.0.2.77"), 1800)
    assert again is first and store.remaining(again) == 1800
    assert len(leases.ipv4_leases(A)) == 1


def test_requested_address_among_the_clients_leases_is_preferred():
    clock, store, leases = make()
    store.put(ipv4_lease_key(ip("192.0.2.10")), A, 100)
    store.put(ipv4_lease_key(ip("192.0.2.20")), A, 100)
    assert leases.ipv4_lease(A, ip("192.0.2.20"), 100).key[1:] == ip("192.0.2.20")
    assert leases.ipv4_lease(A, None, 100).key[1:] == ip("192.0.2.10")


def test_lapsed_lease_of_another_client_is_kept_for_a_grace_period():
    clock, store, leases = make(v4="192.0.2.0/30", gateway=None)
    leases.ipv4_lease(A, ip("192.0.2.2"), 10)
    clock.now += 10.5  # expired, but only just
    assert leases.claim_ipv4(B, ip("192.0.2.2"), 100) is None
    clock.now += REUSE_GRACE
    datum = leases.claim_ipv4(B, ip("192.0.2.2"), 100)
    assert datum.value == B and datum.seqno == 1


def test_claim_refuses_other_clients_and_unusable_addresses():
    clock, store, leases = make()
    leases.claim_ipv4(A, ip("192.0.2.5"), 100)
    assert leases.claim_ipv4(B, ip("192.0.2.5"), 100) is None
    assert leases.claim_ipv4(B, ip("192.0.2.0"), 100) is None
    assert leases.claim_ipv4(B, ip("10.0.0.1"), 100) is None
    assert leases.claim_ipv4(A, ip("192.0.2.5"), 1800).value == A


def test_own_expired_lease_comes_back_with_a_newer_seqno():
    clock, store, leases = make()
    datum = leases.claim_ipv4(A, ip("192.0.2.5"), 10)
    clock.now += 100
    again = leases.claim_ipv4(A, ip("192.0.2.5"), 100)
    assert again is datum and again.seqno == 1 and store.remaining(again) == 100


def test_nearly_full_pool_is_scanned():
    clock, store, leases = make(v4="192.0.2.0/24")
    for n in range(2, 255):
        if n != 200:
            store.put(ipv4_lease_key(bytes([192, 0, 2, n])), bytes([2, 1, 0, 0, 0, n]), 100)
    assert leases.ipv4_lease(A, None, 100).key[1:] == ip("192.0.2.200")
    assert leases.ipv4_lease(B, None, 100) is None


def test_no_prefix_no_lease():
    clock, store, leases = make(v4=None, v6=None)
    assert leases.ipv4_lease(A, None, 100) is None
    assert leases.claim_ipv4(A, ip("192.0.2.5"), 100) is None
    assert leases.ipv6_lease(A) is None


def test_release_floods_as_a_newer_empty_value():
    clock, store, leases = make()
    datum = leases.claim_ipv4(A, ip("192.0.2.5"), 1800)
    clock.now += 100
    # A peer holds the same lease.
    peer_clock = Clock()
    peer = Store(peer_clock)
    peer.receive(datum.key, datum.seqno, datum.value, store.remaining(datum))
    assert leases.release_ipv4(B, ip("192.0.2.5")) is False  # not B's
    assert leases.release_ipv4(A, ip("192.0.2.5")) is True
    released = store.get(datum.key)
    assert released.value == RELEASED and released.seqno == 1
    assert store.remaining(released) >= 1700  # as long as the lease would have lived
    assert leases.ipv4_leases(A) == []
    # The peer takes it (newer seqno) and no longer sees A's lease.
    outcome, _ = peer.receive(datum.key, released.seqno, released.value, store.remaining(released))
    assert outcome == Outcome.CHANGED
    assert peer.leases_of(A, IPV4_LEASE) == []
    # Why not a lifetime of 0: an expired update never replaces a live datum.
    peer2 = Store(Clock())
    peer2.receive(datum.key, datum.seqno, datum.value, 1700)
    assert peer2.receive(datum.key, 1, RELEASED, 0)[0] == Outcome.IGNORED
    # The address is free again, for anyone.
    assert leases.claim_ipv4(B, ip("192.0.2.5"), 100).value == B
    assert store.get(datum.key).seqno == 2


def test_release_of_an_expired_or_unknown_lease_is_refused():
    clock, store, leases = make()
    assert leases.release_ipv4(A, ip("192.0.2.5")) is False
    leases.claim_ipv4(A, ip("192.0.2.5"), 10)
    clock.now += 11
    assert leases.release_ipv4(A, ip("192.0.2.5")) is False


def test_decline_holds_the_address_for_everyone():
    clock, store, leases = make(v4="192.0.2.0/30", gateway=None)
    leases.reserve_ipv4([ip("192.0.2.1")])
    leases.claim_ipv4(A, ip("192.0.2.2"), 100)
    assert leases.decline_ipv4(B, ip("192.0.2.2")) is False  # only the holder may
    assert leases.decline_ipv4(A, ip("192.0.2.2")) is True
    datum = store.get(ipv4_lease_key(ip("192.0.2.2")))
    assert datum.value == DECLINED and datum.seqno == 1
    assert store.remaining(datum) == DECLINE_HOLD
    for mac in (A, B):
        assert leases.ipv4_lease(mac, ip("192.0.2.2"), 100) is None
        assert leases.claim_ipv4(mac, ip("192.0.2.2"), 100) is None
    clock.now += DECLINE_HOLD + REUSE_GRACE
    assert leases.ipv4_lease(B, None, 100).key[1:] == ip("192.0.2.2")


def test_ipv6_random_64_in_prefix_and_renewal():
    clock, store, leases = make()
    datum = leases.ipv6_lease(A)
    assert leases.usable_ipv6(datum.key[1:])
    assert ipaddress.ip_address(datum.key[1:] + bytes(8)) in ipaddress.ip_network("2001:db8:4444::/48")
    clock.now += 1000
    assert leases.ipv6_lease(A) is datum and store.remaining(datum) == 3600
    assert leases.ipv6_lease(B).key != datum.key
    assert leases.release_ipv6(A, datum.key[1:]) is True
    assert store.lease_of(A, IPV6_LEASE) is None


def test_ipv6_small_prefix_fills_up():
    # The first /64 of the prefix is never handed out (infrastructure
    # addresses live there, e.g. 2001:db8:4444::1234): a /62 has 3 to give.
    clock, store, leases = make(v6="2001:db8:4444::/62")
    keys = {leases.ipv6_lease(bytes([2, 0, 0, 0, 1, i])).key for i in range(3)}
    assert keys == {ipv6_lease_key(bytes.fromhex(f"20010db84444000{n}")) for n in (1, 2, 3)}
    assert leases.ipv6_lease(B) is None
    assert not leases.usable_ipv6(bytes.fromhex("20010db844450000"))
    assert not leases.usable_ipv6(bytes.fromhex("20010db844440000"))
    # A /64 prefix has nothing to hand out.
    clock, store, leases = make(v6="2001:db8:4444::/64")
    assert leases.ipv6_lease(A) is None


def test_interface_64s_are_not_handed_out():
    clock, store, leases = make(v6="2001:db8:4444::/62")
    leases.reserve_ipv6([ip("2001:db8:4444:2::1"), ip("2001:db8:9999::1")])  # (outside: ignored)
    got = {leases.ipv6_lease(bytes([2, 0, 0, 0, 1, i])).key[1:] for i in range(2)}
    assert got == {bytes.fromhex("20010db844440001"), bytes.fromhex("20010db844440003")}
    assert leases.ipv6_lease(B) is None
    assert leases.status()["ipv6_free"] == 0


def test_an_expired_lease_frees_its_address_after_the_grace_period():
    # No store change happens when a lease runs out: the bitmap looks again.
    clock, store, leases = make(v4="192.0.2.0/30", gateway="192.0.2.1")
    assert leases.ipv4_lease(A, None, 10).key[1:] == ip("192.0.2.2")
    assert leases.status()["ipv4_free"] == 0
    clock.now += 10.5
    assert leases.ipv4_lease(B, None, 100) is None  # expired, but only just
    clock.now += REUSE_GRACE
    assert leases.ipv4_lease(B, None, 100).key[1:] == ip("192.0.2.2")


def test_bitmap_agrees_with_the_store_whatever_happens():
    clock, store, leases = make(v4="192.0.2.0/27", v6="2001:db8:4444::/59", seed=3)
    rng = random.Random(7)
    macs = [bytes([2, 0, 0, 0, 2, i]) for i in range(40)]
    for step in range(3000):
        mac = rng.choice(macs)
        op = rng.randrange(8)
        if op == 0:
            leases.ipv4_lease(mac, None, rng.choice([OFFER_TIME, 100]))
        elif op == 1:
            leases.ipv6_lease(mac, rng.choice([10, 100]))
        elif op == 2:
            for d in leases.ipv4_leases(mac):
                leases.release_ipv4(mac, d.key[1:])
        elif op == 3:
            for d in leases.ipv4_leases(mac):
                leases.decline_ipv4(mac, d.key[1:])
        elif op == 4:  # a peer's newer datum (never for the gateway: checked below)
            key = ipv4_lease_key(bytes([192, 0, 2, rng.randrange(2, 31)]))
            old = store.get(key)
            store.receive(key, (old.seqno + 1) if old else 0, rng.choice(macs + [RELEASED]),
                          rng.choice([0, 5, 100]))
        elif op == 5:
            leases.claim_ipv4(mac, bytes([192, 0, 2, rng.randrange(1, 31)]), 50)
        else:
            clock.now += rng.choice([0.5, 3, 20])
            store.expire()
        if step % 10 == 0:
            leases._recheck_due()
            for pool in (leases.v4, leases.v6):
                for index in range(pool.size):
                    key = pool.key_of(index)
                    taken = index in pool.reserved or not leases._free_for(key, None)
                    assert (index in pool.bitmap) == taken, (step, key.hex())
                assert pool.bitmap.taken == sum(index in pool.bitmap for index in range(pool.size))
    # Every allocation was a free address: no live lease held by two MACs,
    # none of the reserved ones given.
    for datum in store.live_data():
        assert datum.key[1:] not in (ip("192.0.2.1"), bytes.fromhex("20010db844440000"))


def test_full_pool_answers_without_looking_at_the_store():
    clock, store, leases = make(v4="10.0.0.0/16", gateway="10.0.0.1")
    for value in range(2, 65535):
        store.put(ipv4_lease_key((0x0A000000 + value).to_bytes(4, "big")),
                  value.to_bytes(6, "big"), 1800)
    looked = []
    original = leases._free_for
    leases._free_for = lambda key, mac: looked.append(key) or original(key, mac)
    assert leases.ipv4_lease(A, None, 100) is None
    assert looked == [] and leases.status()["ipv4_free"] == 0
    # One address comes free (released): it is found, after one look.
    leases.release_ipv4((40000).to_bytes(6, "big"), (0x0A000000 + 40000).to_bytes(4, "big"))
    looked.clear()
    assert leases.ipv4_lease(A, None, 100).key[1:] == (0x0A000000 + 40000).to_bytes(4, "big")
    assert len(looked) == 2  # the candidate checked, and the new lease marked taken


def test_huge_ipv6_prefix_uses_random_tries():
    clock, store, leases = make(v6="2001:db8::/32")
    assert leases.v6.bitmap is None
    datum = leases.ipv6_lease(A)
    assert leases.usable_ipv6(datum.key[1:]) and datum.key[1:] != bytes.fromhex("20010db800000000")
    assert not leases.usable_ipv6(bytes.fromhex("20010db800000000"))
    assert leases.status()["ipv6_free"] is None


def test_no_new_lease_until_allocation_is_allowed():
    clock, store, leases = make()
    held = leases.ipv4_lease(A, None, 1800)
    held6 = leases.ipv6_lease(A)
    store.put(ipv4_lease_key(ip("192.0.2.9")), B, 1800)
    leases.allocation_allowed = False
    C = bytes.fromhex("020000000003")
    # New addresses and /64s: none, counted.
    assert leases.ipv4_lease(C, None, OFFER_TIME) is None
    assert leases.ipv4_lease(C, ip("192.0.2.50"), OFFER_TIME) is None
    assert leases.claim_ipv4(C, ip("192.0.2.50"), 1800) is None
    assert leases.claim_deferred(C, ip("192.0.2.50"))
    assert leases.ipv6_lease(C) is None
    assert leases.deferred == {"ipv4": 3, "ipv6": 1}
    # Refused anyway (held by another client, or not usable): not deferred.
    assert leases.claim_ipv4(C, ip("192.0.2.9"), 1800) is None
    assert not leases.claim_deferred(C, ip("192.0.2.9"))
    assert not leases.claim_deferred(C, ip("198.51.100.1"))
    # Existing leases: found and renewed as usual.
    clock.now += 100
    assert leases.ipv4_lease(A, None, 1800) is held and store.remaining(held) == 1800
    assert leases.claim_ipv4(A, held.key[1:], 1800) is held
    assert leases.ipv6_lease(A) is held6 and store.remaining(held6) == 3600
    assert leases.deferred == {"ipv4": 3, "ipv6": 1}
    assert leases.status()["allocation_allowed"] is False
    leases.allocation_allowed = True
    assert leases.ipv4_lease(C, ip("192.0.2.50"), OFFER_TIME).key[1:] == ip("192.0.2.50")
    assert leases.ipv6_lease(C) is not None
