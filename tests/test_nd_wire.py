"""sroamd.wire.icmpv6 and sroamd.wire.arp: golden bytes, round trips, malformed frames."""

import random

import pytest

from sroamd.wire import arp, icmpv6
from sroamd.wire.icmpv6 import Icmpv6FormatError, NdOptions, PrefixInfo
from sroamd.wire.ip import internet_checksum

OUR_MAC = bytes.fromhex("020000000044")
CLIENT_MAC = bytes.fromhex("020000000001")
LL = bytes.fromhex("fe800000000000000000000000000044")
CLIENT_LL = bytes.fromhex("fe800000000000000000000000000001")
PREFIX = bytes.fromhex("20010db8444400070000000000000000")
DNS = bytes.fromhex("20010db8000000000000000000000053")

# An RS from fe80::1 with a source link-layer option, written out by hand.
GOLDEN_RS = (
    CLIENT_MAC[:0] + bytes.fromhex("333300000002") + CLIENT_MAC + bytes.fromhex("86dd")
    + bytes.fromhex("60000000" "0010" "3a" "ff") + CLIENT_LL + icmpv6.ALL_ROUTERS
    + bytes.fromhex("85" "00" "0000" "00000000")  # type, code, checksum (set below), reserved
    + bytes.fromhex("0101") + CLIENT_MAC
)


def with_checksum(frame: bytes) -> bytes:
    src, dst, payload = frame[22:38], frame[38:54], frame[54:]
    pseudo = src + dst + len(payload).to_bytes(4, "big") + bytes(3) + b"\x3a"
    checksum = internet_checksum(pseudo + payload)
    return frame[:56] + checksum.to_bytes(2, "big") + frame[58:]


def test_golden_rs_builds_and_parses():
    golden = with_checksum(GOLDEN_RS)
    built = icmpv6.build_frame(icmpv6.build_rs(NdOptions(source_lladdr=CLIENT_MAC)),
                               CLIENT_MAC, icmpv6.multicast_mac(icmpv6.ALL_ROUTERS),
                               CLIENT_LL, icmpv6.ALL_ROUTERS)
    assert built == golden
    frame = icmpv6.parse_frame(golden)
    assert frame.type == icmpv6.ROUTER_SOLICITATION and frame.code == 0
    assert frame.checksum_ok and frame.hop_limit == 255
    assert (frame.eth_src, frame.ip_src) == (CLIENT_MAC, CLIENT_LL)
    assert icmpv6.options_of(frame.body).source_lladdr == CLIENT_MAC


def test_ra_round_trip_and_golden_options():
    options = NdOptions(source_lladdr=OUR_MAC,
                        prefixes=[PrefixInfo(PREFIX, 64, 3600, 2400)],
                        rdnss_lifetime=3600, rdnss=[DNS])
    data = icmpv6.build_frame(icmpv6.build_ra(1800, options), OUR_MAC, CLIENT_MAC, LL,
                              icmpv6.ALL_NODES)
    icmp = data[54:]
    assert icmp[:2] == b"\x86\x00" and icmp[6:8] == (1800).to_bytes(2, "big")
    # Prefix information: type 3, length 4, /64, L+A, valid, preferred, reserved, prefix.
    assert (bytes.fromhex("0304" "40" "c0" "00000e10" "00000960" "00000000") + PREFIX) in icmp
    # RDNSS: type 25, length 3, reserved, lifetime 3600 s, address.
    assert (bytes.fromhex("1903" "0000" "00000e10") + DNS) in icmp
    assert bytes.fromhex("0101") + OUR_MAC in icmp
    frame = icmpv6.parse_frame(data)
    assert frame.checksum_ok
    assert frame.body.router_lifetime == 1800
    assert icmpv6.options_of(frame.body) == options


def test_na_flags_and_target():
    data = icmpv6.build_frame(
        icmpv6.build_na(LL, NdOptions(target_lladdr=OUR_MAC), True, False, True),
        OUR_MAC, CLIENT_MAC, LL, icmpv6.ALL_NODES)
    assert data[54] == 136 and data[58] == 0xA0  # R and O, not S
    frame = icmpv6.parse_frame(data)
    assert frame.checksum_ok and frame.body.target == LL
    assert icmpv6.options_of(frame.body).target_lladdr == OUR_MAC


def rs(**kw) -> bytes:
    fields = dict(eth_src=CLIENT_MAC, eth_dst=icmpv6.multicast_mac(icmpv6.ALL_ROUTERS),
                  ip_src=CLIENT_LL, ip_dst=icmpv6.ALL_ROUTERS)
    fields.update(kw)
    return icmpv6.build_frame(icmpv6.build_rs(NdOptions(source_lladdr=CLIENT_MAC)), **fields)


MALFORMED = {
    "empty": b"",
    "truncated IPv6 header": rs()[:40],
    "not IPv6": rs()[:12] + b"\x08\x00" + rs()[14:],
    "not ICMPv6": rs()[:20] + b"\x11" + rs()[21:],
    "payload length past the end": rs()[:18] + b"\x01\x00" + rs()[20:],
    "option length 0": rs()[:63] + b"\x00" + rs()[64:],
    "option past the end": rs()[:63] + b"\x05" + rs()[64:],
    "half an option": rs()[:18] + b"\x00\x0b" + rs()[20:-5],
    "rdnss of even length": (lambda f: f)(icmpv6.build_frame(
        icmpv6.build_ra(0, NdOptions(rdnss=[DNS], rdnss_lifetime=1)),
        OUR_MAC, CLIENT_MAC, LL, icmpv6.ALL_NODES)[:55 + 16] + b"\x02" + b"\0" * 13),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_raises_format_error(name):
    with pytest.raises(Icmpv6FormatError):
        icmpv6.parse_frame(MALFORMED[name])


def test_fuzzed_frames_raise_only_format_error():
    rng = random.Random(3)
    options = NdOptions(source_lladdr=OUR_MAC, prefixes=[PrefixInfo(PREFIX, 64, 1, 1)],
                        rdnss_lifetime=1, rdnss=[DNS, DNS])
    base = icmpv6.build_frame(icmpv6.build_ra(1, options), OUR_MAC, CLIENT_MAC, LL, LL)
    for _ in range(3000):
        data = bytearray(base[:rng.randrange(0, len(base) + 1)])
        for _ in range(rng.randrange(0, 4)):
            if len(data) > 54:
                data[rng.randrange(54, len(data))] = rng.randrange(256)
        try:
            icmpv6.parse_frame(bytes(data))
        except Icmpv6FormatError:
            pass


def test_bad_checksum_is_reported():
    data = bytearray(rs())
    data[-1] ^= 1
    assert not icmpv6.parse_frame(bytes(data)).checksum_ok


def test_multicast_mac():
    assert icmpv6.multicast_mac(icmpv6.ALL_NODES) == bytes.fromhex("333300000001")


def test_gratuitous_arp_reply():
    frame = arp.gratuitous_reply(OUR_MAC, bytes([192, 0, 2, 1]), CLIENT_MAC)
    assert frame == (CLIENT_MAC + OUR_MAC + b"\x08\x06"
                     + bytes.fromhex("0001080006040002") + OUR_MAC + bytes([192, 0, 2, 1])
                     # target = sender: what Linux needs to take it as gratuitous
                     + OUR_MAC + bytes([192, 0, 2, 1]))
    ether, message = arp.parse_frame(frame)
    assert ether.dst == CLIENT_MAC and message.op == arp.OP_REPLY
    with pytest.raises(arp.ArpFormatError):
        arp.parse_frame(frame[:20])


@pytest.mark.parametrize("message", [
    icmpv6.build_rs(NdOptions(source_lladdr=CLIENT_MAC)),
    icmpv6.build_ra(1800, NdOptions(source_lladdr=OUR_MAC, prefixes=[PrefixInfo(PREFIX, 64, 3600, 2400)],
                                    rdnss_lifetime=3600, rdnss=[DNS, PREFIX])),
    icmpv6.build_ra(0, NdOptions(source_lladdr=OUR_MAC)),
    icmpv6.build_na(CLIENT_LL, NdOptions(target_lladdr=CLIENT_MAC), True, False, True),
    {"type": 200, "code": 3, "body": b"unknown"},
])
def test_fast_frames_are_what_the_declarations_build(message):
    """build_frame (flat codecs for the headers, the body built once) gives
    the bytes the declarations give interpreted (ICMPV6, IPV6, ETHERNET)."""
    from sroamd.wire.ip import ETHERNET, IPV6, IPV6_PSEUDO
    icmp = icmpv6.ICMPV6.build(dict(message, checksum=0))
    pseudo = IPV6_PSEUDO.build({"src": LL, "dst": CLIENT_LL, "length": len(icmp),
                                "next_header": 58})
    icmp = icmpv6.ICMPV6.build(dict(message, checksum=internet_checksum(pseudo + icmp)))
    expected = (ETHERNET.build({"dst": CLIENT_MAC, "src": OUR_MAC, "ethertype": 0x86DD})
                + IPV6.build({"vtf": {"traffic_class": 0, "flow_label": 0},
                              "payload_length": len(icmp), "next_header": 58, "hop_limit": 255,
                              "src": LL, "dst": CLIENT_LL}) + icmp)
    built = icmpv6.build_frame(message, OUR_MAC, CLIENT_MAC, LL, CLIENT_LL)
    assert built == expected
    assert icmpv6.parse_frame(built).checksum_ok
