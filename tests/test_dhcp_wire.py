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


def construct_fields(message: DhcpMessage) -> dict:
    """message as construct's DHCP declaration takes it."""
    options = [{"code": code, "body": value} for code, value in message.options.items()]
    return {"op": message.op, "htype": message.htype, "hlen": message.hlen,
            "hops": message.hops, "xid": message.xid, "secs": message.secs,
            "flags": message.flags, "ciaddr": message.ciaddr, "yiaddr": message.yiaddr,
            "siaddr": message.siaddr, "giaddr": message.giaddr, "chaddr": message.chaddr,
            "sname": message.sname, "file": message.file,
            "options": options + [{"code": dhcp.OPT_END, "body": None}], "trailer": b""}


def random_message(rng: random.Random) -> DhcpMessage:
    def address():
        return rng.randbytes(4)
    options = {dhcp.OPT_MESSAGE_TYPE: rng.randrange(1, 9)}
    for code, make in ((dhcp.OPT_SERVER_ID, address), (dhcp.OPT_REQUESTED_ADDRESS, address),
                       (dhcp.OPT_SUBNET_MASK, address),
                       (dhcp.OPT_LEASE_TIME, lambda: rng.randrange(1 << 32)),
                       (dhcp.OPT_RENEWAL_TIME, lambda: rng.randrange(1 << 32)),
                       (dhcp.OPT_REBINDING_TIME, lambda: rng.randrange(1 << 32)),
                       (dhcp.OPT_ROUTER, lambda: [address() for _ in range(rng.randrange(4))]),
                       (dhcp.OPT_DNS, lambda: [address() for _ in range(rng.randrange(4))]),
                       (dhcp.OPT_PARAMETER_REQUEST_LIST,
                        lambda: list(rng.randbytes(rng.randrange(12)))),
                       (dhcp.OPT_CLIENT_ID, lambda: rng.randbytes(rng.randrange(1, 20))),
                       (12, lambda: rng.randbytes(rng.randrange(30)))):
        if rng.random() < 0.6:
            options[code] = make()
    return DhcpMessage(op=rng.choice((1, 2)), xid=rng.randrange(1 << 32),
                       secs=rng.randrange(1 << 16), flags=rng.randrange(1 << 16),
                       ciaddr=address(), yiaddr=address(), siaddr=address(), giaddr=address(),
                       chaddr=rng.randbytes(16), hops=rng.randrange(256),
                       sname=rng.randbytes(64), file=rng.randbytes(128), options=options)


def test_fast_paths_agree_with_the_construct_declaration():
    """parse and build go through wire.flat's codecs derived from the
    declaration (issue 11): the same bytes and values as construct's own
    reading of DHCP, on random messages."""
    rng = random.Random(3)
    for _ in range(300):
        message = random_message(rng)
        data = dhcp.build(message, min_length=0)
        assert data == dhcp.DHCP.build(construct_fields(message))
        parsed = dhcp.parse(data)
        assert parsed == message
        raw = dhcp.DHCP.parse(data)
        assert {o.code: (list(o.body) if isinstance(o.body, list) else o.body)
                for o in raw.options if o.code not in (0, 255)} == parsed.options


def test_a_list_option_must_be_whole_items():
    # A router option of 6 bytes: one address and a half.
    data = GOLDEN_DISCOVER[:240] + bytes.fromhex("0306c0000201c000") + b"\xff"
    with pytest.raises(DhcpFormatError):
        dhcp.parse(data)


def test_udp_frame_is_the_construct_declarations_bytes():
    """ipv4_udp_frame builds with wire.flat's codecs: the bytes construct
    makes of the same headers."""
    from sroamd.wire.ip import ETHERNET, IPV4_PSEUDO
    rng = random.Random(4)
    for _ in range(100):
        payload = rng.randbytes(rng.randrange(0, 600))
        src, dst = rng.randbytes(4), rng.randbytes(4)
        macs = rng.randbytes(6), rng.randbytes(6)
        ports = rng.randrange(1 << 16), rng.randrange(1 << 16)
        frame = ipv4_udp_frame(macs[0], macs[1], src, dst, *ports, payload, ttl=rng.randrange(256))
        length = 8 + len(payload)
        udp = {"src_port": ports[0], "dst_port": ports[1], "length": length, "checksum": 0}
        pseudo = IPV4_PSEUDO.build({"src": src, "dst": dst, "protocol": 17, "length": length})
        udp["checksum"] = internet_checksum(pseudo + UDP.build(udp) + payload) or 0xFFFF
        ip = {"tos": 0, "total_length": 20 + length, "identification": 0,
              "flags_fragment": 0x4000, "ttl": frame[22], "protocol": 17, "checksum": 0,
              "src": src, "dst": dst}
        ip["checksum"] = internet_checksum(IPV4.build(ip))
        assert frame == (ETHERNET.build({"dst": macs[1], "src": macs[0], "ethertype": 0x0800})
                         + IPV4.build(ip) + UDP.build(udp) + payload)
