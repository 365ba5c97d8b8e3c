"""Sync before serving (Leases.allocation_allowed) as the DHCP server and the
RA path see it, and what the loser of an IPv4 lease conflict gets: sans-IO,
no root."""

import ipaddress
import random

import pytest

from sroamd.config import Config
from sroamd.dhcp_server import DhcpServer
from sroamd.leases import Leases
from sroamd.ra import LinkInfo, RouterAdvertiser
from sroamd.store import IPV6_LEASE, Store, ipv4_lease_key
from sroamd.wire import dhcp, icmpv6
from sroamd.wire.dhcp import ACK, DISCOVER, NAK, OFFER, REQUEST
from sroamd.wire.icmpv6 import ALL_ROUTERS, NdOptions

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
C = bytes.fromhex("020000000003")
SERVER = bytes([192, 0, 2, 1])
ZERO = bytes(4)


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def ip(text):
    return ipaddress.ip_address(text).packed


@pytest.fixture
def env():
    clock = Clock()
    store = Store(clock)
    config = Config(ipv4_prefix=ipaddress.ip_network("192.0.2.0/24"),
                    ipv6_prefix=ipaddress.ip_network("2001:db8:4444::/48"),
                    gateway=ipaddress.ip_address("192.0.2.1"))
    leases = Leases(store, config, random.Random(4))
    return clock, store, leases, DhcpServer(config, leases), RouterAdvertiser(config, leases)


def message(kind, mac, ciaddr=ZERO, **options):
    names = {"requested": dhcp.OPT_REQUESTED_ADDRESS, "server_id": dhcp.OPT_SERVER_ID}
    opts = {dhcp.OPT_MESSAGE_TYPE: kind}
    opts.update({names[k]: v for k, v in options.items()})
    return dhcp.build(dhcp.DhcpMessage(xid=7, ciaddr=ciaddr, chaddr=mac + bytes(10),
                                       options=opts))


def answer(server, data):
    outcome = server.handle(data, SERVER)
    if outcome.reply is None:
        return outcome.dropped
    reply = dhcp.parse(outcome.reply.payload)
    return reply.message_type, reply.yiaddr


def test_dhcp_makes_no_new_lease_until_synced_but_serves_existing_ones(env):
    clock, store, leases, server, _ = env
    held = ip("192.0.2.20")
    store.put(ipv4_lease_key(held), B, 1800)  # B's lease, in the store already
    leases.allocation_allowed = False
    # A new client: no OFFER, and no ACK for an address of its choosing (no
    # reply at all: the client retries; not a NAK, it may be its own).
    assert answer(server, message(DISCOVER, A)) == "not_synced"
    assert answer(server, message(REQUEST, A, requested=ip("192.0.2.50"),
                                  server_id=SERVER)) == "not_synced"
    assert answer(server, message(REQUEST, A, requested=ip("192.0.2.50"))) == "not_synced"
    assert answer(server, message(REQUEST, A, ciaddr=ip("192.0.2.50"))) == "not_synced"
    assert store.get(ipv4_lease_key(ip("192.0.2.50"))) is None and len(store) == 1
    # An address the store says is another client's: NAK, synced or not.
    assert answer(server, message(REQUEST, A, requested=held)) == (NAK, ZERO)
    # The existing client renews, reboots, rediscovers as usual.
    assert answer(server, message(REQUEST, B, ciaddr=held)) == (ACK, held)
    assert answer(server, message(REQUEST, B, requested=held)) == (ACK, held)
    assert answer(server, message(DISCOVER, B)) == (OFFER, held)
    status = server.status()
    assert status["dropped"]["not_synced"] == 4
    assert leases.status()["deferred"] == {"ipv4": 4}
    # Synced: served.
    leases.allocation_allowed = True
    kind, offered = answer(server, message(DISCOVER, A))
    assert kind == OFFER and offered not in (held, SERVER)


def test_ipv4_conflict_loser_gets_nak_at_its_next_request(env):
    clock, store, leases, server, _ = env
    _, offered = answer(server, message(DISCOVER, A))
    assert answer(server, message(REQUEST, A, requested=offered, server_id=SERVER)) == \
        (ACK, offered)
    datum = store.get(ipv4_lease_key(offered))
    # A peer's newer datum gives the address to B (A lost the conflict).
    store.receive(datum.key, datum.seqno + 1, B, 1800)
    clock.now += 1600
    # Renewing (T1), rebinding, or rebooting into it: NAK (broadcast).
    for request in (message(REQUEST, A, ciaddr=offered), message(REQUEST, A, requested=offered)):
        outcome = server.handle(request, SERVER)
        assert dhcp.parse(outcome.reply.payload).message_type == NAK
        assert outcome.reply.mac_dst == b"\xff" * 6
    # Before sync as well (the store knows it is B's).
    leases.allocation_allowed = False
    assert answer(server, message(REQUEST, A, ciaddr=offered)) == (NAK, ZERO)
    leases.allocation_allowed = True
    # Then it starts over and gets another address.
    kind, other = answer(server, message(DISCOVER, A))
    assert kind == OFFER and other != offered


def rs(mac):
    return icmpv6.build_frame(icmpv6.build_rs(NdOptions(source_lladdr=mac)), mac,
                              icmpv6.multicast_mac(ALL_ROUTERS),
                              ipaddress.ip_address("fe80::1").packed, ALL_ROUTERS)


def test_rs_gets_no_new_64_until_synced(env):
    clock, store, leases, _, ra = env
    link = LinkInfo("wl0", bytes.fromhex("020000000044"), ipaddress.ip_address("fe80::44").packed)
    leases.ipv6_lease(B)
    leases.allocation_allowed = False
    outcome = ra.handle_rs(rs(A), link)
    assert outcome.frame is None and outcome.dropped == "not_synced"
    assert store.lease_of(A, IPV6_LEASE) is None
    assert ra.handle_rs(rs(B), link).frame is not None  # an existing /64: answered
    assert ra.status()["dropped"] == {"not_synced": 1} and leases.deferred == {"ipv6": 1}
    leases.allocation_allowed = True
    assert ra.handle_rs(rs(A), link).frame is not None
