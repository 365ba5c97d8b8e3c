"""sroamd.client_service reactions, with fake routes, links and sockets (no root)."""

import ipaddress
import random

import pytest

from sroamd.client_service import ClientService
from sroamd.config import Config
from sroamd.links import Link, choose_link_local, eui64_link_local
from sroamd.store import Store, ipv4_lease_key

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
MAC = bytes.fromhex("020000000044")
LL = ipaddress.ip_address("fe80::44").packed
GW = ipaddress.ip_address("192.0.2.1").packed


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


class FakeRoutes:
    def __init__(self):
        self.table = {}
        self.batches = []  # routes per add_many call

    def add(self, ifindex, address, prefixlen, ifname=""):
        self.table[(address, prefixlen)] = ifindex
        return True

    def remove(self, address, prefixlen):
        return self.table.pop((address, prefixlen), None) is not None

    def add_many(self, routes):
        self.batches.append(len(routes))
        for ifindex, address, prefixlen, ifname in routes:
            self.add(ifindex, address, prefixlen, ifname)

    def remove_many(self, keys):
        for key in keys:
            self.remove(*key)

    def status(self):
        return {"installed": len(self.table)}


class FakeLinks:
    def __init__(self, links):
        self.links = {link.name: link for link in links}

    def get(self, name):
        return self.links.get(name)


class FakeSender:
    def __init__(self):
        self.sent = []

    def send(self, ifname, frame):
        self.sent.append((ifname, frame))


@pytest.fixture
def service():
    clock = Clock()
    store = Store(clock)
    config = Config(ipv4_prefix=ipaddress.ip_network("192.0.2.0/24"),
                    ipv6_prefix=ipaddress.ip_network("2001:db8:4444::/48"),
                    gateway=ipaddress.ip_address("192.0.2.1"), interfaces=["wl0"])
    s = ClientService(store, config, b"\1" * 8)
    s.leases.rng = random.Random(1)
    s.routes = FakeRoutes()
    s.links = FakeLinks([Link("wl0", 7, MAC, (GW,), LL)])
    s.sender = FakeSender()
    store.listeners.append(s.on_store_change)
    return s


def routes(s):
    return {(ipaddress.ip_address(a[:4] if p == 32 else a), p) for a, p in s.routes.table}


def test_arrival_installs_routes_and_announces(service):
    s = service
    s.leases.ipv4_lease(A, None, 1800)
    s.leases.ipv6_lease(A)
    s.client_arrived("wl0", A)
    assert len(s.routes.table) == 2 and set(s.routes.table.values()) == {7}
    kinds = [frame[12:14] for _, frame in s.sender.sent]
    assert kinds == [b"\x08\x06", b"\x86\xdd", b"\x86\xdd"]  # ARP, NA, RA
    assert all(frame[:6] == A for _, frame in s.sender.sent)
    assert s.ra.clients[A][0] == "wl0"
    s.client_left(A)
    assert s.routes.table == {} and A not in s.ra.clients
    s.client_left(A)  # twice: nothing


class SoonLoop:
    """Records call_soon (what the event loop would run at its next turn)."""

    def __init__(self):
        self.soon = []

    def call_soon(self, fn, *args):
        self.soon.append((fn, args))

    def call_later(self, delay, fn, *args):
        return type("Handle", (), {"cancel": lambda self: None})()

    def run_soon(self):
        soon, self.soon = self.soon, []
        for fn, args in soon:
            fn(*args)


def test_arrival_sends_arp_and_na_at_once_and_the_ra_next(service):
    """The routes and ARP/NA are what a roamed client needs: the RA (built
    anew, its lease extension flooded) waits for the next loop turn."""
    s = service
    s._loop = SoonLoop()
    s.leases.ipv4_lease(A, None, 1800)
    s.leases.ipv6_lease(A)
    s.client_arrived("wl0", A)
    assert len(s.routes.table) == 2
    assert [frame[12:14] for _, frame in s.sender.sent] == [b"\x08\x06", b"\x86\xdd"]
    s._loop.run_soon()
    assert [frame[12:14] for _, frame in s.sender.sent] == [b"\x08\x06", b"\x86\xdd", b"\x86\xdd"]
    assert s.sender.sent[2][1][54] == 134  # ICMPv6 router advertisement
    # Gone before the loop came round: no RA.
    s.sender.sent.clear()
    s.client_left(A)
    s.client_arrived("wl0", A)
    s.client_left(A)
    s._loop.run_soon()
    assert [frame[12:14] for _, frame in s.sender.sent] == [b"\x08\x06", b"\x86\xdd"]
    s._loop = None


def test_new_lease_of_served_client_gets_route_and_moved_lease_loses_it(service):
    s = service
    s.client_arrived("wl0", A)
    assert s.routes.table == {}
    datum = s.leases.ipv4_lease(A, None, 1800)  # created here for a served client
    assert (datum.key[1:], 32) in s.routes.table
    # The lease goes to another client (e.g. a conflict lost to a peer).
    s.store.receive(datum.key, datum.seqno + 1, B, 1800)
    assert s.routes.table == {}
    # ... and back again.
    s.store.receive(datum.key, datum.seqno + 1, A, 1800)
    assert (datum.key[1:], 32) in s.routes.table


def test_a_flood_of_leases_naming_one_client_routes_a_few_at_constant_cost(service):
    """Regression (attack review): 2,000 /64 leases flooded by a peer, all
    naming one client served here, each re-derived the client's whole route
    set: O(n^2), the daemon unresponsive for ~10 s, and 2,000 proto-44
    routes for one client.  Now at most MAX_ROUTED_PER_KIND per kind, and a
    datum beyond that costs no look at the others."""
    from sroamd import client_service as module
    from sroamd.store import ipv6_lease_key
    s = service
    s.client_arrived("wl0", A)
    lookups = []
    leases_of = s.store.leases_of
    s.store.leases_of = lambda mac, kind: (lookups.append(mac), leases_of(mac, kind))[1]
    base = 0x20010DB844440000
    for n in range(2000):
        s.store.receive(ipv6_lease_key((base + 2 + n).to_bytes(8, "big")), 1, A, 3000)
    assert len(s.routes.table) == module.MAX_ROUTED_PER_KIND
    assert s.routes_capped == 2000 - module.MAX_ROUTED_PER_KIND
    assert len(lookups) <= 2 * 2 * module.MAX_ROUTED_PER_KIND  # not one per datum
    # A routed one that leaves is replaced by another of the client's.
    routed = sorted(s.routes.table)[0][0]
    s.store.receive(ipv6_lease_key(routed[:8]), 2, B, 3000)
    assert len(s.routes.table) == module.MAX_ROUTED_PER_KIND
    assert (routed, 64) not in s.routes.table


def test_leases_of_unserved_clients_get_no_route(service):
    s = service
    s.leases.ipv4_lease(B, None, 1800)
    s.store.receive(ipv4_lease_key(bytes([192, 0, 2, 9])), 0, B, 100)
    assert s.routes.table == {}


def test_expired_lease_loses_its_route(service):
    s = service
    s.client_arrived("wl0", A)
    s.leases.ipv4_lease(A, None, 10)
    assert s.routes.table
    s.store.clock.now += 11
    s.on_expired(s.store.expire())
    assert s.routes.table == {}


def test_dhcp_from_unknown_client_serves_it_or_asks_the_engine(service):
    s = service
    seen = []
    s.on_client_seen = lambda ifname, mac: seen.append((ifname, mac))
    s._seen("wl0", A)
    assert seen == [("wl0", A)] and A not in s.clients
    s.on_client_seen = None
    s._seen("wl0", A)
    assert s.clients == {A: "wl0"}


def test_missing_link_means_no_route_until_it_is_back(service):
    s = service
    s.leases.ipv4_lease(A, None, 1800)
    s.links.links.clear()
    s.client_arrived("wl0", A)
    assert s.routes.table == {} and s.sender.sent == []
    s.links.links["wl0"] = Link("wl0", 9, MAC, (GW,), LL)
    s._sync_routes(A)
    assert set(s.routes.table.values()) == {9}


def test_status_shape(service):
    status = service.status()
    assert set(status) >= {"clients", "interfaces", "dhcp", "ra", "routes", "send_errors"}
    assert status["interfaces"] == {"wl0": 7}


def test_choose_link_local_prefers_the_shared_address():
    own = eui64_link_local(MAC)
    assert own == ipaddress.ip_address("fe80::ff:fe00:44").packed
    assert choose_link_local([own, LL], MAC) == LL
    assert choose_link_local([own], MAC) == own
    assert choose_link_local([], MAC) is None


def prefixes_of(frame):
    """(prefix, valid, preferred) of each prefix option of an RA frame."""
    from sroamd.wire import icmpv6
    parsed = icmpv6.parse_frame(frame)
    assert parsed.type == icmpv6.ROUTER_ADVERTISEMENT and parsed.checksum_ok
    return [(p.prefix[:8], p.valid_lifetime, p.preferred_lifetime)
            for p in icmpv6.options_of(parsed.body).prefixes]


def test_64_lost_to_a_conflict_is_replaced_at_once(service):
    s = service
    s.client_arrived("wl0", A)
    old = s.leases.ipv6_lease(A)
    lost = old.key[1:]
    assert (lost + bytes(8), 64) in s.routes.table
    s.sender.sent.clear()
    # A peer's datum gives A's /64 to B (a conflict A lost).
    s.store.receive(old.key, old.seqno + 1, B, 3600)
    assert (lost + bytes(8), 64) not in s.routes.table
    new = s.store.lease_of(A, 1)
    assert new is not None and new.key != old.key
    assert (new.key[1:] + bytes(8), 64) in s.routes.table
    [(ifname, frame)] = s.sender.sent
    assert ifname == "wl0" and frame[:6] == A
    assert prefixes_of(frame) == [(lost, 0, 0), (new.key[1:], 3600, 2400)]
    assert s.status()["renumbered"] == 1 and s.ra.sent["renumbering"] == 1


def test_64_lost_before_sync_is_withdrawn_and_replaced_once_synced(service):
    s = service
    s.client_arrived("wl0", A)
    old = s.leases.ipv6_lease(A)
    s.leases.allocation_allowed = False
    s.sender.sent.clear()
    s.store.receive(old.key, old.seqno + 1, B, 3600)
    [(_, frame)] = s.sender.sent  # the old /64 withdrawn now, no new one yet
    assert prefixes_of(frame) == [(old.key[1:], 0, 0)]
    assert s.store.lease_of(A, 1) is None and s.leases.deferred == {"ipv6": 1}
    s.synced()
    new = s.store.lease_of(A, 1)
    assert new is not None and s.leases.allocation_allowed
    [_, (_, frame)] = s.sender.sent
    assert prefixes_of(frame) == [(new.key[1:], 3600, 2400)]


def test_no_renumbering_for_releases_or_clients_not_served(service):
    s = service
    s.client_arrived("wl0", A)
    datum = s.leases.ipv6_lease(A)
    s.leases.release_ipv6(A, datum.key[1:])  # released: no new /64 pushed on it
    other = s.leases.ipv6_lease(B)  # B is not served here
    s.sender.sent.clear()
    s.store.receive(other.key, other.seqno + 1, bytes.fromhex("020000000003"), 3600)
    assert s.sender.sent == [] and s.renumbered == 0
    assert s.store.lease_of(A, 1) is None


# -- who is served: frames in through dhcp_frame / rs_frame ---------------------

from sroamd.wire import dhcp, icmpv6  # noqa: E402
from sroamd.wire.ip import BROADCAST_MAC, ipv4_udp_frame  # noqa: E402

C = bytes.fromhex("020000000003")
RELAY = bytes.fromhex("0200000000ee")


def dhcp_in(src, kind, chaddr=None, giaddr=bytes(4), ciaddr=bytes(4), dst=b"\xff" * 4,
            opts=None):
    message = dhcp.DhcpMessage(xid=7, chaddr=(chaddr or src) + bytes(10), giaddr=giaddr,
                               ciaddr=ciaddr, options={dhcp.OPT_MESSAGE_TYPE: kind, **(opts or {})})
    return ipv4_udp_frame(src, BROADCAST_MAC, bytes(4), dst, 68, 67, dhcp.build(message))


def rs_in(src):
    ll = b"\xfe\x80" + bytes(6) + src[:3] + b"\xff\xfe" + src[3:]
    return icmpv6.build_frame(icmpv6.build_rs(icmpv6.NdOptions(source_lladdr=src)), src,
                              icmpv6.multicast_mac(icmpv6.ALL_ROUTERS), ll, icmpv6.ALL_ROUTERS)


def offers(s):
    return [f for _, f in s.sender.sent if f[12:14] == b"\x08\x00"]


def test_chaddr_must_be_the_frame_source_and_relays_are_not_served(service):
    s = service
    seen = []
    s.on_client_seen = lambda ifname, mac: seen.append(mac)
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.DISCOVER, chaddr=B))
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.INFORM, chaddr=B))
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.RELEASE, chaddr=B, ciaddr=GW))
    assert s.dhcp.dropped["chaddr_mismatch"] == 3 and seen == [] and offers(s) == []
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.DISCOVER))
    assert seen == [A] and len(offers(s)) == 1
    # A relayed message is not served: a relay on the client side could
    # speak for any MAC (the attack review's relayed RELEASE of another
    # client's lease, and pool exhaustion through one station).
    for kind in (dhcp.DISCOVER, dhcp.REQUEST, dhcp.RELEASE, dhcp.DECLINE, dhcp.INFORM):
        s.dhcp_frame("wl0", dhcp_in(RELAY, kind, chaddr=C, giaddr=GW, ciaddr=GW))
    assert seen == [A] and C not in s.packet_clients and len(offers(s)) == 1
    assert s.dhcp.dropped["relayed"] == 5 and s.dhcp.dropped["chaddr_mismatch"] == 3


def test_frames_not_for_us_or_broken_are_counted(service):
    s = service
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.DISCOVER, dst=bytes([192, 0, 2, 77])))
    good = dhcp_in(A, dhcp.DISCOVER)
    s.dhcp_frame("wl0", good[:-1] + bytes([good[-1] ^ 1]))  # UDP checksum
    s.dhcp_frame("wl0", good[:30])
    s.dhcp_frame("wl0", dhcp_in(b"\x01" + A[1:], dhcp.DISCOVER))
    assert s.dhcp.dropped == {"not_for_us": 1, "bad_checksum": 1, "truncated": 1,
                              "multicast_source": 1}
    assert s.clients == {} and s.packet_clients == {}


def test_with_a_station_source_only_its_stations_are_served(service):
    s = service
    stations = {A: "wl0"}
    seen = []
    s.is_station = lambda ifname, mac: stations.get(mac) == ifname
    s.on_client_seen = lambda ifname, mac: seen.append(mac)
    s.dhcp_frame("wl0", dhcp_in(B, dhcp.DISCOVER))
    s.rs_frame("wl0", rs_in(B))
    assert s.dhcp.dropped["not_station"] == 1 and s.rs_dropped["not_station"] == 1
    assert s.sender.sent == [] and s.store.leases_of(B, 1) == []
    s.dhcp_frame("wl0", dhcp_in(A, dhcp.DISCOVER))
    s.rs_frame("wl0", rs_in(A))
    assert len(s.sender.sent) == 2 and seen == []  # served; packets never claim
    # Not through a relay, not even a station's.
    stations[RELAY] = "wl0"
    s.dhcp_frame("wl0", dhcp_in(RELAY, dhcp.RELEASE, chaddr=A, giaddr=GW, ciaddr=GW))
    s.dhcp_frame("wl0", dhcp_in(RELAY, dhcp.DISCOVER, chaddr=C, giaddr=GW))
    assert s.dhcp.dropped["relayed"] == 2 and list(s.packet_clients) == [] and s.clients == {}


def test_packet_clients_are_bounded_and_forgotten_when_silent(service):
    s = service
    s.max_packet_clients = 3
    s.packet_idle = 100
    gone = []
    s.on_client_gone = lambda ifname, mac: (gone.append(mac), s.client_left(mac))
    macs = [bytes([2, 0, 0, 0, 1, i]) for i in range(6)]
    for mac in macs:
        s.dhcp_frame("wl0", dhcp_in(mac, dhcp.DISCOVER))
    assert set(s.clients) == set(macs[:3]) and len(s.packet_clients) == 3
    assert s.dhcp.dropped["too_many_clients"] == 3
    s.rs_frame("wl0", rs_in(macs[5]))
    assert s.rs_dropped["too_many_clients"] == 1
    # RELEASE from an unknown MAC: handled, nothing kept.
    s.dhcp_frame("wl0", dhcp_in(macs[4], dhcp.RELEASE, ciaddr=GW, opts={dhcp.OPT_SERVER_ID: GW}))
    assert s.dhcp.events["release_refused"] == 1 and len(s.packet_clients) == 3
    s.store.clock.now += 60
    s.dhcp_frame("wl0", dhcp_in(macs[0], dhcp.DISCOVER))  # macs[0] speaks again
    s.store.clock.now += 60  # macs[1], macs[2] silent for 120 s; macs[0] for 60 s
    s.dhcp_frame("wl0", dhcp_in(macs[3], dhcp.DISCOVER))
    assert gone == macs[1:3] and set(s.clients) == {macs[0], macs[3]}
    assert s.packet_clients_expired == 2


def test_offers_to_clients_without_a_lease_are_bounded(service):
    s = service
    s.dhcp.max_offers = 2
    macs = [bytes([2, 0, 0, 0, 2, i]) for i in range(4)]
    for mac in macs:
        s.dhcp_frame("wl0", dhcp_in(mac, dhcp.DISCOVER))
    assert len(offers(s)) == 2 and s.dhcp.dropped["too_many_offers"] == 2
    assert s.dhcp.status()["offers_outstanding"] == 2
    # A client with a lease is offered it again whatever the count.
    s.dhcp_frame("wl0", dhcp_in(macs[0], dhcp.DISCOVER))
    assert len(offers(s)) == 3
    s.store.clock.now += 11  # the offers lapse
    s.dhcp_frame("wl0", dhcp_in(macs[2], dhcp.DISCOVER))
    assert len(offers(s)) == 4 and s.dhcp.status()["offers_outstanding"] == 1


class QueuedFrames:
    """DhcpReceiver: the frames queued on the socket."""

    def __init__(self, frames):
        self.frames = list(frames)

    def receive(self):
        return self.frames.pop(0) if self.frames else None


def test_clients_claimed_by_a_batch_of_messages_are_routed_in_one_go(service):
    """Issue 11: route changes batched where a burst brings many.  Five new
    clients' DISCOVERs read in one wakeup: their routes (the offered
    addresses) go to the routes manager as one batch at the end of it, not
    one client at a time."""
    s = service
    macs = [bytes([2, 0, 0, 0, 1, i]) for i in range(5)]
    s._on_dhcp("wl0", QueuedFrames(dhcp_in(mac, dhcp.DISCOVER) for mac in macs))
    assert len(offers(s)) == 5 and set(s.clients) == set(macs)
    assert s.routes.batches == [5] and len(s.routes.table) == 5
    # Outside a batch (a station event), at once.
    datum = s.leases.ipv4_lease(A, None, 1800)
    s.client_arrived("wl0", A)
    assert s.routes.batches == [5, 1] and (datum.key[1:], 32) in s.routes.table
