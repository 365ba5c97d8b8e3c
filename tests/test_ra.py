"""sroamd.ra (RS -> unicast RA, refresh schedule, final RA) and sroamd.neighbours."""

import ipaddress
import random

import pytest

from sroamd.config import Config
from sroamd.leases import IPV6_LEASE_TIME, Leases
from sroamd.neighbours import announcements
from sroamd.ra import LinkInfo, RouterAdvertiser
from sroamd.store import IPV6_LEASE, Store
from sroamd.wire import arp, icmpv6
from sroamd.wire.icmpv6 import ALL_NODES, ALL_ROUTERS, UNSPECIFIED, NdOptions

OUR_MAC = bytes.fromhex("020000000044")
A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
LL = ipaddress.ip_address("fe80::44").packed
A_LL = ipaddress.ip_address("fe80::1").packed
DNS6 = ipaddress.ip_address("2001:db8::53").packed
LINK = LinkInfo("wl0", OUR_MAC, LL)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(v6="2001:db8:4444::/48", interval=1200):
    clock = Clock()
    store = Store(clock)
    config = Config(ipv6_prefix=ipaddress.ip_network(v6) if v6 else None,
                    nameservers=[ipaddress.ip_address("2001:db8::53"),
                                 ipaddress.ip_address("192.0.2.53")])
    leases = Leases(store, config, random.Random(5))
    return clock, store, RouterAdvertiser(config, leases, interval)


def rs(mac=A, src=A_LL, sllao=True, hop_limit=255, code=0):
    message = icmpv6.build_rs(NdOptions(source_lladdr=mac if sllao else None))
    message["code"] = code
    return icmpv6.build_frame(message, mac, icmpv6.multicast_mac(ALL_ROUTERS), src, ALL_ROUTERS,
                              hop_limit)


def check_ra(frame_bytes, store, mac, ip_dst, router_lifetime=None):
    frame = icmpv6.parse_frame(frame_bytes)
    assert frame.type == icmpv6.ROUTER_ADVERTISEMENT and frame.checksum_ok
    assert (frame.eth_src, frame.eth_dst) == (OUR_MAC, mac)
    assert (frame.ip_src, frame.ip_dst, frame.hop_limit) == (LL, ip_dst, 255)
    options = icmpv6.options_of(frame.body)
    lease = store.lease_of(mac, IPV6_LEASE)
    [prefix] = options.prefixes
    assert prefix.prefix == lease.key[1:] + bytes(8) and prefix.prefix_length == 64
    assert prefix.on_link and prefix.autonomous
    valid = store.remaining(lease)
    assert prefix.valid_lifetime == valid and prefix.preferred_lifetime == valid * 2 // 3
    assert options.rdnss == [DNS6]
    assert options.rdnss_lifetime == valid  # seconds, not upstream's milliseconds
    assert options.source_lladdr == OUR_MAC
    assert frame.body.router_lifetime == (router_lifetime if router_lifetime is not None else valid)
    return prefix


def test_rs_gets_unicast_ra_with_own_prefix():
    clock, store, ra = make()
    outcome = ra.handle_rs(rs(), LINK)
    assert outcome.mac == A and outcome.dropped is None
    prefix = check_ra(outcome.frame, store, A, A_LL)
    assert ipaddress.ip_address(prefix.prefix) in ipaddress.ip_network("2001:db8:4444::/48")
    assert prefix.valid_lifetime == IPV6_LEASE_TIME
    # Another RS later: the same /64, lifetimes renewed.
    clock.now += 500
    again = check_ra(ra.handle_rs(rs(), LINK).frame, store, A, A_LL)
    assert again.prefix == prefix.prefix and again.valid_lifetime == IPV6_LEASE_TIME
    # Another client: another /64.
    other = check_ra(ra.handle_rs(rs(B, sllao=False), LINK).frame, store, B, A_LL)
    assert other.prefix != prefix.prefix
    assert ra.sent["solicited"] == 3 and ra.received == 3


def test_rs_from_unspecified_without_lladdr_is_answered_to_all_nodes_at_the_mac():
    clock, store, ra = make()
    outcome = ra.handle_rs(rs(src=UNSPECIFIED, sllao=False), LINK)
    check_ra(outcome.frame, store, A, ALL_NODES)


@pytest.mark.parametrize("data, reason", [
    (rs(src=UNSPECIFIED, sllao=True), "unspecified_with_lladdr"),
    (rs(hop_limit=254), "bad_hop_limit"),
    (rs(code=1), "bad_code"),
    (rs()[:-1] + bytes([rs()[-1] ^ 1]), "bad_checksum"),
    (rs(mac=bytes.fromhex("330000000001")), "multicast_source"),
    (rs()[:63] + b"\x00" + rs()[64:], "malformed"),
    (rs()[:30], "malformed"),
    (icmpv6.build_frame(icmpv6.build_ra(0, NdOptions()), A, OUR_MAC, A_LL, ALL_NODES), "not_rs"),
])
def test_invalid_rs_dropped_and_counted(data, reason):
    clock, store, ra = make()
    outcome = ra.handle_rs(data, LINK)
    assert outcome.frame is None and outcome.dropped == reason
    assert ra.dropped == {reason: 1}
    assert len(store) == 0


def test_no_prefix_or_no_link_local():
    clock, store, ra = make(v6=None)
    assert ra.handle_rs(rs(), LINK).dropped == "no_prefix"
    clock, store, ra = make()
    assert ra.handle_rs(rs(), LinkInfo("wl0", OUR_MAC, None)).dropped == "no_link_local"


def test_refresh_schedule_keeps_served_clients_fresh():
    clock, store, ra = make(interval=1200)
    ra.handle_rs(rs(), LINK)  # A has a lease
    ra.track("wl0", A)
    ra.track("wl0", B)  # B never asked for IPv6
    assert ra.next_deadline() == clock.now + 1200
    assert ra.refresh_due(lambda name: LINK) == []
    clock.now += 1200
    due = ra.refresh_due(lambda name: LINK)
    assert [name for name, _ in due] == ["wl0"]
    check_ra(due[0][1], store, A, ALL_NODES)
    assert store.remaining(store.lease_of(A, IPV6_LEASE)) == IPV6_LEASE_TIME
    assert store.lease_of(B, IPV6_LEASE) is None  # no lease made for B
    assert ra.next_deadline() == clock.now + 1200
    # Lifetimes never run out while the client is served.
    for _ in range(10):
        clock.now += 1200
        assert len(ra.refresh_due(lambda name: LINK)) == 1
        assert store.lease_of(A, IPV6_LEASE) is not None
    # An RS pushes the next refresh back.
    clock.now += 600
    ra.handle_rs(rs(), LINK)
    assert ra.clients[A] == ("wl0", clock.now + 1200)
    assert ra.next_deadline() == clock.now + 600  # B's
    # A link that is gone: nothing sent, still scheduled.
    clock.now += 1200
    assert ra.refresh_due(lambda name: None) == []
    assert ra.next_deadline() is not None
    ra.untrack(A)
    ra.untrack(B)
    clock.now += 5000
    assert ra.next_deadline() is None and ra.refresh_due(lambda name: LINK) == []
    assert len(ra._heap) == 0
    assert ra.sent["unsolicited"] == 11


def test_heap_stays_small():
    clock, store, ra = make()
    for _ in range(1000):
        ra.track("wl0", A)
    assert len(ra._heap) <= 2 * len(ra.clients) + 65


def test_unsolicited_for_arrival():
    clock, store, ra = make()
    assert ra.unsolicited(A, LINK) is None  # no lease yet
    ra.handle_rs(rs(), LINK)
    check_ra(ra.unsolicited(A, LINK), store, A, ALL_NODES)


def test_final_ras_have_router_lifetime_zero():
    clock, store, ra = make()
    ra.track("wl0", A)
    ra.track("wl1", B)  # on a link that is not given
    out = ra.final([LINK, LinkInfo("wl2", OUR_MAC, None)])
    assert [name for name, _ in out] == ["wl0", "wl0"]
    dsts = []
    for _, data in out:
        frame = icmpv6.parse_frame(data)
        assert frame.checksum_ok and frame.body.router_lifetime == 0
        assert frame.ip_dst == ALL_NODES and icmpv6.options_of(frame.body).prefixes == []
        dsts.append(frame.eth_dst)
    assert dsts == [icmpv6.multicast_mac(ALL_NODES), A]


def test_status():
    clock, store, ra = make()
    ra.handle_rs(rs(), LINK)
    ra.handle_rs(b"x", LINK)
    assert ra.status() == {"received": 1, "sent": {"solicited": 1},
                           "dropped": {"malformed": 1}, "clients": 0}


def test_announcements_arp_and_na():
    gateway = bytes([192, 0, 2, 1])
    arp_frame, na_frame = announcements(OUR_MAC, gateway, LL, A)
    ether, message = arp.parse_frame(arp_frame)
    assert (ether.dst, ether.src, message.op) == (A, OUR_MAC, arp.OP_REPLY)
    assert (message.sender_mac, message.sender_ip) == (OUR_MAC, gateway)
    na = icmpv6.parse_frame(na_frame)
    assert na.type == icmpv6.NEIGHBOUR_ADVERTISEMENT and na.checksum_ok
    assert (na.eth_dst, na.eth_src, na.ip_src, na.ip_dst) == (A, OUR_MAC, LL, ALL_NODES)
    assert na.body.flags.override and na.body.flags.router and not na.body.flags.solicited
    assert na.body.target == LL
    assert icmpv6.options_of(na.body).target_lladdr == OUR_MAC
    assert announcements(OUR_MAC, None, None, A) == []
    assert len(announcements(OUR_MAC, gateway, None, A)) == 1
