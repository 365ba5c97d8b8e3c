"""sroamd.wire.dhcp and the IPv4/UDP framing: golden bytes, round trips, malformed input."""

import random

import pytest

from sroamd.wire import dhcp
from sroamd.wire.dhcp import DhcpFormatError, DhcpMessage
from sroamd.wire.ip import IPV4, UDP, internet_checksum, ipv4_udp_frame

MAC = bytes.fromhex("020000000001")

# A DHCPDISCOVER written out field by field (RFC 2131 figure 1), not by construct.
GOLDEN_DISCOVER = (
    bytes.fromhex("01010600")  # op, htype, hlen, hops
    + bytes.fromhex("12345678")  # xid
    + bytes.fromhex("0003")  # secs
    + bytes.fromhex("8000")  # flags: broadcast
    + bytes(16)  # ciaddr yiaddr siaddr giaddr
    + MAC + bytes(10)  # chaddr
    + bytes(64) + bytes(128)  # sname, file
    + bytes.fromhex("63825363")  # magic cookie
    + bytes.fromhex("350101")  # message type DISCOVER
    + bytes.fromhex("3204c0000209")  # requested address 192.0.2.9
    + bytes.fromhex("3703010306")  # parameter request list
    + bytes.fromhex("3d0701020000000001")  # client id
    + bytes.fromhex("0c03666f6f")  # hostname "foo" (not interpreted)
    + bytes.fromhex("ff")  # end
)


def discover() -> DhcpMessage:
    return DhcpMessage(xid=0x12345678, secs=3, flags=dhcp.FLAG_BROADCAST,
                       chaddr=MAC + bytes(10), options={
                           dhcp.OPT_MESSAGE_TYPE: dhcp.DISCOVER,
                           dhcp.OPT_REQUESTED_ADDRESS: bytes([192, 0, 2, 9]),
                           dhcp.OPT_PARAMETER_REQUEST_LIST: [1, 3, 6],
                           dhcp.OPT_CLIENT_ID: bytes.fromhex("01020000000001"),
                           12: b"foo"})


def test_golden_discover_parses():
    m = dhcp.parse(GOLDEN_DISCOVER)
    assert m == discover()
    assert m.message_type == dhcp.DISCOVER
    assert m.mac == MAC
    assert m.broadcast


def test_golden_discover_builds_byte_for_byte():
    assert dhcp.build(discover(), min_length=0) == GOLDEN_DISCOVER
    # Padded to the BOOTP minimum with zeros after End.
    padded = dhcp.build(discover())
    assert len(padded) == dhcp.MIN_REPLY_LEN
    assert padded == GOLDEN_DISCOVER + bytes(dhcp.MIN_REPLY_LEN - len(GOLDEN_DISCOVER))
    assert dhcp.parse(padded) == discover()


def test_reply_options_round_trip():
    reply = DhcpMessage(op=dhcp.BOOTREPLY, xid=7, yiaddr=bytes([192, 0, 2, 10]),
                        chaddr=MAC + bytes(10), options={
                            dhcp.OPT_MESSAGE_TYPE: dhcp.ACK,
                            dhcp.OPT_SERVER_ID: bytes([192, 0, 2, 1]),
                            dhcp.OPT_LEASE_TIME: 1800,
                            dhcp.OPT_RENEWAL_TIME: 1600,
                            dhcp.OPT_REBINDING_TIME: 1700,
                            dhcp.OPT_SUBNET_MASK: b"\xff\xff\xff\xff",
                            dhcp.OPT_ROUTER: [bytes([192, 0, 2, 1])],
                            dhcp.OPT_DNS: [bytes([192, 0, 2, 53]), bytes([192, 0, 2, 54])]})
    data = dhcp.build(reply)
    assert bytes.fromhex("330400000708") in data  # lease time 1800
    assert bytes.fromhex("0608c0000235c0000236") in data  # two DNS servers
    assert dhcp.parse(data) == reply


def test_pads_between_options_and_after_end_are_skipped():
    data = GOLDEN_DISCOVER[:240] + b"\0\0" + GOLDEN_DISCOVER[240:] + b"\0garbage"
    assert dhcp.parse(data).options == discover().options


def test_first_unknown_option_of_two_stands():
    data = GOLDEN_DISCOVER[:-1] + bytes.fromhex("0c03626172") + b"\xff"
    assert dhcp.parse(data).options[12] == b"foo"


MALFORMED = {
    "empty": b"",
    "truncated header": GOLDEN_DISCOVER[:100],
    "no cookie": GOLDEN_DISCOVER[:236],
    "bad cookie": GOLDEN_DISCOVER[:236] + b"\x63\x82\x53\x64" + GOLDEN_DISCOVER[240:],
    "option length past the end": GOLDEN_DISCOVER[:240] + bytes.fromhex("3d20010203"),
    "option length byte missing": GOLDEN_DISCOVER[:240] + bytes.fromhex("35"),
    "no end": GOLDEN_DISCOVER[:-1],
    "endless pad": GOLDEN_DISCOVER[:240] + bytes(60000),
    "message type of 2 bytes": GOLDEN_DISCOVER[:240] + bytes.fromhex("35020101ff"),
    "message type of 0 bytes": GOLDEN_DISCOVER[:240] + bytes.fromhex("3500ff"),
    "requested address of 3 bytes": GOLDEN_DISCOVER[:240] + bytes.fromhex("3203c00002ff"),
    "router list of 5 bytes": GOLDEN_DISCOVER[:240] + bytes.fromhex("0305c000020101ff"),
    "lease time of 2 bytes": GOLDEN_DISCOVER[:240] + bytes.fromhex("33020708ff"),
    "message type twice": GOLDEN_DISCOVER[:240] + bytes.fromhex("350101350103ff"),
    "too long": GOLDEN_DISCOVER[:240] + bytes(70000) + b"\xff",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_raises_format_error(name):
    with pytest.raises(DhcpFormatError):
        dhcp.parse(MALFORMED[name])


def test_fuzzed_input_raises_only_format_error():
    rng = random.Random(1)
    base = dhcp.build(discover())
    for _ in range(3000):
        data = bytearray(base[:rng.randrange(237, len(base) + 1)])
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(236, len(data))] = rng.randrange(256)
        try:
            dhcp.parse(bytes(data))
        except DhcpFormatError:
            pass
    for length in range(0, 240):  # every truncation of the header
        with pytest.raises(DhcpFormatError):
            dhcp.parse(base[:length])


def test_build_rejects_bad_values():
    with pytest.raises(DhcpFormatError):
        dhcp.build(DhcpMessage(options={dhcp.OPT_MESSAGE_TYPE: 300}))


def naive_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum((data[i] << 8) | data[i + 1] for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_internet_checksum_matches_rfc1071_loop():
    rng = random.Random(2)
    cases = [b"", b"\0\0", b"\xff\xff", b"\xff\xff\xff\xff", b"\x01", b"\xff\xfe\x00\x01"]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(300)]
    for data in cases:
        assert internet_checksum(data) == naive_checksum(data), data.hex()


def test_ipv4_udp_frame_checksums_verify():
    payload = dhcp.build(discover())
    frame = ipv4_udp_frame(MAC, b"\xff" * 6, bytes([192, 0, 2, 1]), b"\xff" * 4, 67, 68, payload)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC and frame[12:14] == b"\x08\x00"
    ip = IPV4.parse(frame[14:34])
    assert (ip.protocol, ip.total_length, ip.ttl) == (17, 20 + 8 + len(payload), 64)
    assert internet_checksum(frame[14:34]) == 0
    udp = UDP.parse(frame[34:42])
    assert (udp.src_port, udp.dst_port, udp.length) == (67, 68, 8 + len(payload))
    pseudo = ip.src + ip.dst + bytes([0, 17]) + udp.length.to_bytes(2, "big")
    assert internet_checksum(pseudo + frame[34:]) == 0
    assert frame[42:] == payload
