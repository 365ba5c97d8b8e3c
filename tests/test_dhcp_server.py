"""sroamd.dhcp_server: every branch of the sans-IO DHCPv4 server."""

import ipaddress
import random

import pytest

from sroamd.config import Config
from sroamd.dhcp_server import DhcpServer, renewal_times
from sroamd.leases import DECLINED, OFFER_TIME, RELEASED, Leases
from sroamd.store import Store, ipv4_lease_key
from sroamd.wire import dhcp
from sroamd.wire.dhcp import ACK, DECLINE, DISCOVER, INFORM, NAK, OFFER, RELEASE, REQUEST

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
SERVER = bytes([192, 0, 2, 1])
BCAST_MAC = b"\xff" * 6


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def ip(text):
    return ipaddress.ip_address(text).packed


@pytest.fixture
def env():
    clock = Clock()
    store = Store(clock)
    config = Config(ipv4_prefix=ipaddress.ip_network("192.0.2.0/24"),
                    gateway=ipaddress.ip_address("192.0.2.1"),
                    nameservers=[ipaddress.ip_address("192.0.2.53"),
                                 ipaddress.ip_address("2001:db8::53")])
    leases = Leases(store, config, random.Random(4))
    return clock, store, leases, DhcpServer(config, leases)


def request(kind, mac=A, ciaddr=b"\0" * 4, giaddr=b"\0" * 4, flags=0, **options):
    opts = {dhcp.OPT_MESSAGE_TYPE: kind} if kind is not None else {}
    names = {"requested": dhcp.OPT_REQUESTED_ADDRESS, "server_id": dhcp.OPT_SERVER_ID}
    for name, value in options.items():
        opts[names[name]] = value
    return dhcp.build(dhcp.DhcpMessage(xid=0xABCD, ciaddr=ciaddr, giaddr=giaddr, flags=flags,
                                       chaddr=mac + bytes(10), options=opts))


def reply_of(outcome):
    assert outcome.reply is not None, outcome
    return dhcp.parse(outcome.reply.payload)


def dora(server, mac=A, requested=None):
    offer = reply_of(server.handle(request(DISCOVER, mac, **({"requested": requested} if requested else {})), SERVER))
    ack = reply_of(server.handle(request(REQUEST, mac, requested=offer.yiaddr, server_id=SERVER), SERVER))
    assert ack.message_type == ACK
    return ack.yiaddr


def test_discover_offers_a_lease_with_all_options(env):
    clock, store, leases, server = env
    outcome = server.handle(request(DISCOVER), SERVER)
    offer = reply_of(outcome)
    assert outcome.mac == A and not outcome.relayed and outcome.dropped is None
    assert offer.op == dhcp.BOOTREPLY and offer.xid == 0xABCD and offer.mac == A
    assert leases.usable_ipv4(offer.yiaddr)
    assert offer.options == {
        dhcp.OPT_MESSAGE_TYPE: OFFER, dhcp.OPT_SERVER_ID: SERVER,
        dhcp.OPT_LEASE_TIME: 1800, dhcp.OPT_RENEWAL_TIME: 1600, dhcp.OPT_REBINDING_TIME: 1700,
        dhcp.OPT_SUBNET_MASK: b"\xff\xff\xff\xff", dhcp.OPT_ROUTER: [SERVER],
        dhcp.OPT_DNS: [ip("192.0.2.53")]}
    # Held only briefly in the store until the REQUEST.
    assert store.remaining(store.get(ipv4_lease_key(offer.yiaddr))) == OFFER_TIME
    # Unicast to yiaddr at the client's MAC (no broadcast flag).
    r = outcome.reply
    assert (r.ip_dst, r.port, r.mac_dst, r.message_type) == (offer.yiaddr, 68, A, OFFER)
    assert server.received["DISCOVER"] == 1 and server.sent["OFFER"] == 1


def test_broadcast_flag_gets_a_broadcast_reply(env):
    *_, server = env
    r = server.handle(request(DISCOVER, flags=dhcp.FLAG_BROADCAST), SERVER).reply
    assert (r.ip_dst, r.mac_dst) == (b"\xff" * 4, BCAST_MAC)


def test_discover_honours_a_free_requested_address(env):
    *_, server = env
    assert reply_of(server.handle(request(DISCOVER, requested=ip("192.0.2.77")), SERVER)).yiaddr == ip("192.0.2.77")


def test_selecting_request_gets_ack_and_full_lease(env):
    clock, store, leases, server = env
    address = dora(server)
    assert store.remaining(store.get(ipv4_lease_key(address))) == 1800
    assert store.get(ipv4_lease_key(address)).value == A


def test_request_for_another_server_is_dropped(env):
    *_, server = env
    outcome = server.handle(request(REQUEST, requested=ip("192.0.2.9"), server_id=ip("192.0.2.254")), SERVER)
    assert outcome.reply is None and outcome.dropped == "other_server"
    assert server.dropped["other_server"] == 1


def test_init_reboot(env):
    clock, store, leases, server = env
    address = dora(server)
    ack = reply_of(server.handle(request(REQUEST, requested=address), SERVER))
    assert ack.message_type == ACK and ack.yiaddr == address
    # Someone else's address: NAK, broadcast.
    outcome = server.handle(request(REQUEST, B, requested=address), SERVER)
    nak = reply_of(outcome)
    assert nak.message_type == NAK and nak.yiaddr == b"\0" * 4
    assert set(nak.options) == {dhcp.OPT_MESSAGE_TYPE, dhcp.OPT_SERVER_ID}
    assert (outcome.reply.ip_dst, outcome.reply.mac_dst) == (b"\xff" * 4, BCAST_MAC)
    # Outside the prefix (the client moved from another network): NAK.
    assert reply_of(server.handle(request(REQUEST, B, requested=ip("198.51.100.5")), SERVER)).message_type == NAK
    # A free address (e.g. all APs restarted): granted.
    ack = reply_of(server.handle(request(REQUEST, B, requested=ip("192.0.2.99")), SERVER))
    assert ack.message_type == ACK and store.get(ipv4_lease_key(ip("192.0.2.99"))).value == B


def test_renewing_and_rebinding_are_unicast_to_ciaddr(env):
    clock, store, leases, server = env
    address = dora(server)
    clock.now += 1600
    for flags in (0, dhcp.FLAG_BROADCAST):
        outcome = server.handle(request(REQUEST, ciaddr=address, flags=flags), SERVER)
        ack = reply_of(outcome)
        assert ack.message_type == ACK and ack.yiaddr == address and ack.ciaddr == address
        assert (outcome.reply.ip_dst, outcome.reply.mac_dst) == (address, A)
    assert store.remaining(store.get(ipv4_lease_key(address))) == 1800


def test_renewing_someone_elses_address_is_refused(env):
    *_, server = env
    address = dora(server)
    assert reply_of(server.handle(request(REQUEST, B, ciaddr=address), SERVER)).message_type == NAK


def test_request_without_address_is_dropped(env):
    *_, server = env
    assert server.handle(request(REQUEST), SERVER).dropped == "request_without_address"


def test_request_for_a_second_address_while_holding_one_is_refused(env):
    *_, server = env
    dora(server)
    assert reply_of(server.handle(request(REQUEST, requested=ip("192.0.2.99")), SERVER)).message_type == NAK


def test_concurrent_offers_converge_on_the_one_taken(env):
    clock, store, leases, server = env
    store.put(ipv4_lease_key(ip("192.0.2.10")), A, OFFER_TIME)  # offered by another AP
    store.put(ipv4_lease_key(ip("192.0.2.20")), A, OFFER_TIME)  # offered here
    ack = reply_of(server.handle(request(REQUEST, requested=ip("192.0.2.20"), server_id=SERVER), SERVER))
    assert ack.message_type == ACK
    assert [d.key[1:] for d in leases.ipv4_leases(A)] == [ip("192.0.2.20")]
    assert store.get(ipv4_lease_key(ip("192.0.2.10"))).value == RELEASED


def test_relayed_messages_go_back_to_the_relay(env):
    *_, server = env
    relay = ip("198.51.100.1")
    outcome = server.handle(request(DISCOVER, giaddr=relay), SERVER)
    offer = reply_of(outcome)
    assert outcome.relayed and offer.giaddr == relay
    assert (outcome.reply.ip_dst, outcome.reply.port, outcome.reply.mac_dst) == (relay, 67, None)
    outcome = server.handle(request(REQUEST, B, giaddr=relay, requested=offer.yiaddr), SERVER)
    nak = reply_of(outcome)
    assert nak.message_type == NAK and nak.broadcast  # the relay broadcasts it
    assert (outcome.reply.ip_dst, outcome.reply.port) == (relay, 67)


def test_inform_gets_configuration_without_lease(env):
    clock, store, leases, server = env
    address = ip("192.0.2.200")
    outcome = server.handle(request(INFORM, ciaddr=address), SERVER)
    ack = reply_of(outcome)
    assert ack.message_type == ACK and ack.yiaddr == b"\0" * 4 and ack.ciaddr == address
    assert ack.options[dhcp.OPT_ROUTER] == [SERVER] and ack.options[dhcp.OPT_DNS] == [ip("192.0.2.53")]
    assert dhcp.OPT_LEASE_TIME not in ack.options and dhcp.OPT_SUBNET_MASK not in ack.options
    assert (outcome.reply.ip_dst, outcome.reply.mac_dst) == (address, A)
    assert len(store) == 0
    # Without ciaddr: broadcast.
    assert server.handle(request(INFORM), SERVER).reply.mac_dst == BCAST_MAC


def test_release(env):
    clock, store, leases, server = env
    address = dora(server)
    outcome = server.handle(request(RELEASE, B, ciaddr=address, server_id=SERVER), SERVER)
    assert outcome.reply is None and server.events["release_refused"] == 1
    assert store.get(ipv4_lease_key(address)).value == A
    outcome = server.handle(request(RELEASE, ciaddr=address, server_id=SERVER), SERVER)
    assert outcome.reply is None and outcome.dropped is None
    assert store.get(ipv4_lease_key(address)).value == RELEASED
    assert server.events["released"] == 1


def test_decline(env):
    clock, store, leases, server = env
    address = dora(server)
    server.handle(request(DECLINE, B, requested=address, server_id=SERVER), SERVER)
    assert server.events["decline_refused"] == 1
    server.handle(request(DECLINE, requested=address, server_id=SERVER), SERVER)
    assert server.events["declined"] == 1
    assert store.get(ipv4_lease_key(address)).value == DECLINED
    # Never offered while held, not even when asked for.
    for mac in (A, B):
        offer = reply_of(server.handle(request(DISCOVER, mac, requested=address), SERVER))
        assert offer.yiaddr != address
    server.handle(request(DECLINE), SERVER)  # no address: ignored
    assert server.events["decline_refused"] == 2


def test_a_client_declines_at_most_a_few_addresses_at_a_time(env):
    """Regression (attack review): one station REQUESTed and DECLINEd every
    address in turn; each was held out of use for 10 minutes, the whole /24
    with it.  Only MAX_DECLINES_PER_CLIENT count within DECLINE_HOLD."""
    from sroamd.dhcp_server import MAX_DECLINES_PER_CLIENT
    from sroamd.leases import DECLINE_HOLD
    clock, store, leases, server = env
    declined = []
    for _ in range(10):
        address = dora(server)
        server.handle(request(DECLINE, requested=address, server_id=SERVER), SERVER)
        if store.get(ipv4_lease_key(address)).value == DECLINED:
            declined.append(address)
    assert len(declined) == MAX_DECLINES_PER_CLIENT
    assert server.events["decline_limited"] == 10 - MAX_DECLINES_PER_CLIENT
    assert server.events["declined"] == MAX_DECLINES_PER_CLIENT
    # Another client still may; and this one again once the window passed.
    address = dora(server, B)
    server.handle(request(DECLINE, B, requested=address, server_id=SERVER), SERVER)
    assert store.get(ipv4_lease_key(address)).value == DECLINED
    clock.now += DECLINE_HOLD + 1
    address = dora(server)
    server.handle(request(DECLINE, requested=address, server_id=SERVER), SERVER)
    assert store.get(ipv4_lease_key(address)).value == DECLINED


@pytest.mark.parametrize("data, reason", [
    (b"\x01" * 100, "malformed"),
    (dhcp.build(dhcp.DhcpMessage(op=dhcp.BOOTREPLY, options={53: OFFER})), "not_request"),
    (dhcp.build(dhcp.DhcpMessage(htype=6, options={53: DISCOVER})), "not_ethernet"),
    (dhcp.build(dhcp.DhcpMessage(chaddr=A + bytes(10))), "bootp"),
    (request(OFFER), "unexpected_type"),
    (request(42), "unexpected_type"),
])
def test_dropped_and_counted(env, data, reason):
    *_, server = env
    outcome = server.handle(data, SERVER)
    assert outcome.reply is None and outcome.dropped == reason
    assert server.dropped == {reason: 1}


def test_no_server_address(env):
    *_, server = env
    assert server.handle(request(DISCOVER), None).dropped == "no_server_address"


def test_pool_exhausted():
    store = Store(Clock())
    config = Config(ipv4_prefix=ipaddress.ip_network("192.0.2.0/30"),
                    gateway=ipaddress.ip_address("192.0.2.1"))
    server = DhcpServer(config, Leases(store, config, random.Random(1)))
    assert reply_of(server.handle(request(DISCOVER, A), SERVER)).yiaddr == ip("192.0.2.2")
    assert server.handle(request(DISCOVER, B), SERVER).dropped == "pool_exhausted"
    assert dhcp.OPT_DNS not in reply_of(server.handle(request(DISCOVER, A), SERVER)).options


def test_renewal_times():
    assert renewal_times(1800) == (1600, 1700)  # upstream's values
    assert renewal_times(86400) == (1600, 1700)
    for lease in range(60, 4000, 7):
        t1, t2 = renewal_times(lease)
        assert 0 < t1 < t2 < lease


def test_status(env):
    *_, server = env
    dora(server)
    server.handle(b"junk", SERVER)
    status = server.status()
    assert status["sent"] == {"OFFER": 1, "ACK": 1} and status["dropped"] == {"malformed": 1}
