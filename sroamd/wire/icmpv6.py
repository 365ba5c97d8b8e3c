"""ICMPv6 Neighbour Discovery messages (RFC 4861, RFC 8106) in construct.

Router Solicitation (133), Router Advertisement (134) and Neighbour
Advertisement (136), their options (source/target link-layer address,
prefix information, RDNSS), and the Ethernet + IPv6 framing used on packet
sockets, with the ICMPv6 checksum over the IPv6 pseudo-header.

Malformed input raises Icmpv6FormatError and nothing else.  An option of
length 0 (which would make a naive parser loop forever) is malformed.

Speed (issue 11): the Ethernet, IPv6 and pseudo headers and the ICMPv6
header go through codecs derived from their declarations (wire.flat); the
message body is built once by its compiled declaration (the checksum
changes only the header).  Bodies are parsed interpreted: an RS is parsed
once per solicitation, and compiled parsing does not check short reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from construct import (Byte, Bytes, Check, ConstructError, FlagsEnum, GreedyBytes, Int16ub,
                       Int32ub, Struct, Switch, Terminated, this)

from sroamd.wire.compiled import CompiledOnUse, FixedSized, GreedyRange
from sroamd.wire.flat import FlatCodec
from sroamd.wire.ip import (ETH_P_IPV6, ETHERNET_F, ETHERNET_LEN, IPPROTO_ICMPV6, IPV6_F,
                            IPV6_LEN, IPV6_PSEUDO_F, internet_checksum)

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOUR_ADVERTISEMENT = 136

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFORMATION = 3
OPT_RDNSS = 25

ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
UNSPECIFIED = bytes(16)
ND_HOP_LIMIT = 255
MAX_ROUTER_LIFETIME = 9000  # RFC 4861 6.2.1


def multicast_mac(address: bytes) -> bytes:
    """The Ethernet address of an IPv6 multicast group (RFC 2464 section 7)."""
    return b"\x33\x33" + address[12:]


PREFIX_INFORMATION = Struct(
    "prefix_length" / Byte,
    # L and A, the top bits (the rest reserved: zero when built, ignored).
    # FlagsEnum, not a BitStruct: the same bits without a bit-by-bit
    # conversion, which made most of an RA's build time.
    "flags" / FlagsEnum(Byte, on_link=0x80, autonomous=0x40),
    "valid_lifetime" / Int32ub,
    "preferred_lifetime" / Int32ub,
    "reserved" / Int32ub,
    "prefix" / Bytes(16),
)

RDNSS = Struct(
    "reserved" / Int16ub,
    "lifetime" / Int32ub,  # seconds (RFC 8106)
    "addresses" / GreedyRange(Bytes(16)),
    Terminated,
)

# A link-layer address option carries a 6-byte MAC on Ethernet (length 1);
# other lengths are kept as raw bytes.
_LLADDR = Switch(this.length, {1: Bytes(6)}, default=GreedyBytes)

ND_OPTION = Struct(
    "type" / Byte,
    "length" / Byte,  # in units of 8 bytes, type and length included
    Check(this.length > 0),
    "body" / FixedSized(this.length * 8 - 2, Switch(this.type, {
        OPT_SOURCE_LLADDR: _LLADDR,
        OPT_TARGET_LLADDR: _LLADDR,
        OPT_PREFIX_INFORMATION: Struct("info" / PREFIX_INFORMATION, Terminated),
        OPT_RDNSS: RDNSS,
    }, default=GreedyBytes)),
)

# Options fill the rest of the message; GreedyRange stops at the first bad
# one, and Terminated then rejects the leftovers.
ND_OPTIONS = Struct("list" / GreedyRange(ND_OPTION), Terminated)

RS_BODY = Struct("reserved" / Int32ub, "options" / ND_OPTIONS)
RA_BODY = Struct(
    "cur_hop_limit" / Byte,
    "flags" / Byte,  # M, O, ...: none used here
    "router_lifetime" / Int16ub,
    "reachable_time" / Int32ub,
    "retrans_timer" / Int32ub,
    "options" / ND_OPTIONS,
)
NA_BODY = Struct(
    # R, S, O, the top bits (the rest reserved; see PREFIX_INFORMATION).
    "flags" / FlagsEnum(Int32ub, router=0x80000000, solicited=0x40000000,
                        override=0x20000000),
    "target" / Bytes(16),
    "options" / ND_OPTIONS,
)

ICMPV6_HEADER = Struct(
    "type" / Byte,
    "code" / Byte,
    "checksum" / Int16ub,
)
BODIES = {
    ROUTER_SOLICITATION: RS_BODY,
    ROUTER_ADVERTISEMENT: RA_BODY,
    NEIGHBOUR_ADVERTISEMENT: NA_BODY,
}
ICMPV6_HEADER_LEN = 4
ICMPV6 = Struct(*ICMPV6_HEADER.subcons, "body" / Switch(this.type, BODIES, default=GreedyBytes))

# The fast forms (see the module doc).  Bodies compiled for building at first
# use (FixedSized and GreedyRange from wire.compiled, which construct
# compiles for building too).
_BODY_BUILD = {kind: CompiledOnUse(body) for kind, body in BODIES.items()}
_ICMPV6_HEADER = FlatCodec(ICMPV6_HEADER, fields=("type", "code", "checksum"))


class Icmpv6FormatError(ValueError):
    """An ICMPv6 packet or frame that cannot be parsed or built."""


@dataclass(slots=True)
class PrefixInfo:
    prefix: bytes  # 16 bytes
    prefix_length: int = 64
    valid_lifetime: int = 0
    preferred_lifetime: int = 0
    on_link: bool = True
    autonomous: bool = True


@dataclass(slots=True)
class NdOptions:
    source_lladdr: bytes | None = None
    target_lladdr: bytes | None = None
    prefixes: list[PrefixInfo] = field(default_factory=list)
    rdnss_lifetime: int = 0
    rdnss: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Frame:
    """An ICMPv6 message in IPv6 in Ethernet, as seen on a packet socket."""
    eth_src: bytes
    eth_dst: bytes
    ip_src: bytes
    ip_dst: bytes
    hop_limit: int
    type: int
    code: int
    checksum_ok: bool
    body: object  # the construct container of the message body


def _options_to_list(options: NdOptions) -> list[dict]:
    out = []
    if options.source_lladdr is not None:
        out.append({"type": OPT_SOURCE_LLADDR, "length": 1, "body": options.source_lladdr})
    if options.target_lladdr is not None:
        out.append({"type": OPT_TARGET_LLADDR, "length": 1, "body": options.target_lladdr})
    for p in options.prefixes:
        out.append({"type": OPT_PREFIX_INFORMATION, "length": 4, "body": {"info": {
            "prefix_length": p.prefix_length,
            "flags": {"on_link": p.on_link, "autonomous": p.autonomous},
            "valid_lifetime": p.valid_lifetime,
            "preferred_lifetime": p.preferred_lifetime,
            "reserved": 0, "prefix": p.prefix}}})
    if options.rdnss:
        out.append({"type": OPT_RDNSS, "length": 1 + 2 * len(options.rdnss), "body": {
            "reserved": 0, "lifetime": options.rdnss_lifetime,
            "addresses": list(options.rdnss)}})
    return out


def options_of(body) -> NdOptions:
    """The options of a parsed RS/RA/NA body, as an NdOptions."""
    result = NdOptions()
    for option in body.options.list:
        if option.type == OPT_SOURCE_LLADDR and option.length == 1:
            result.source_lladdr = option.body
        elif option.type == OPT_TARGET_LLADDR and option.length == 1:
            result.target_lladdr = option.body
        elif option.type == OPT_PREFIX_INFORMATION:
            i = option.body.info
            result.prefixes.append(PrefixInfo(i.prefix, i.prefix_length, i.valid_lifetime,
                                              i.preferred_lifetime, i.flags.on_link,
                                              i.flags.autonomous))
        elif option.type == OPT_RDNSS:
            result.rdnss_lifetime = option.body.lifetime
            result.rdnss.extend(option.body.addresses)
    return result


def build_ra(router_lifetime: int, options: NdOptions, cur_hop_limit: int = 64) -> dict:
    """The fields of a Router Advertisement, for build_frame."""
    return {"type": ROUTER_ADVERTISEMENT, "code": 0, "body": {
        "cur_hop_limit": cur_hop_limit, "flags": 0,
        "router_lifetime": min(router_lifetime, 0xFFFF),
        "reachable_time": 0, "retrans_timer": 0,
        "options": {"list": _options_to_list(options)}}}


def build_rs(options: NdOptions) -> dict:
    return {"type": ROUTER_SOLICITATION, "code": 0,
            "body": {"reserved": 0, "options": {"list": _options_to_list(options)}}}


def build_na(target: bytes, options: NdOptions, router: bool, solicited: bool,
             override: bool) -> dict:
    return {"type": NEIGHBOUR_ADVERTISEMENT, "code": 0, "body": {
        "flags": {"router": router, "solicited": solicited, "override": override},
        "target": target, "options": {"list": _options_to_list(options)}}}


def build_packet(message: dict, ip_src: bytes, ip_dst: bytes,
                 hop_limit: int = ND_HOP_LIMIT) -> bytes:
    """The IPv6 packet with the ICMPv6 message, checksum computed (what
    build_frame puts after the Ethernet header: the same for every client
    an announcement goes to, so callers may build it once)."""
    try:
        kind, code = message["type"], message["code"]
        builder = _BODY_BUILD.get(kind)
        body = builder.build(message["body"]) if builder else GreedyBytes.build(message["body"])
        length = ICMPV6_HEADER_LEN + len(body)
        pseudo = IPV6_PSEUDO_F.build((ip_src, ip_dst, length, IPPROTO_ICMPV6))
        # The checksum goes in the header: the body is built once.
        checksum = internet_checksum(pseudo + _ICMPV6_HEADER.build((kind, code, 0)) + body)
        icmp = _ICMPV6_HEADER.build((kind, code, checksum)) + body
        header = IPV6_F.build((0, 0, length, IPPROTO_ICMPV6, hop_limit, ip_src, ip_dst))
    except (ConstructError, struct.error, KeyError, TypeError) as e:
        raise Icmpv6FormatError(f"cannot build: {e}") from None
    return header + icmp


def ethernet_frame(packet: bytes, eth_src: bytes, eth_dst: bytes) -> bytes:
    """An IPv6 packet (build_packet) in an Ethernet frame."""
    try:
        return ETHERNET_F.build((eth_dst, eth_src, ETH_P_IPV6)) + packet
    except (ConstructError, TypeError) as e:
        raise Icmpv6FormatError(f"cannot build: {e}") from None


def build_frame(message: dict, eth_src: bytes, eth_dst: bytes, ip_src: bytes,
                ip_dst: bytes, hop_limit: int = ND_HOP_LIMIT) -> bytes:
    """An Ethernet frame with the ICMPv6 message, checksum computed."""
    return ethernet_frame(build_packet(message, ip_src, ip_dst, hop_limit), eth_src, eth_dst)


def parse_frame(data: bytes) -> Frame:
    """Parse an Ethernet frame carrying ICMPv6 (no extension headers)."""
    if len(data) < ETHERNET_LEN + IPV6_LEN + 4:
        raise Icmpv6FormatError(f"truncated: {len(data)} bytes")
    try:
        eth_dst, eth_src, ethertype = ETHERNET_F.parse(data)
        if ethertype != ETH_P_IPV6:
            raise Icmpv6FormatError(f"not IPv6: ethertype {ethertype:#06x}")
        (_class, _flow, payload_length, next_header, hop_limit, ip_src,
         ip_dst) = IPV6_F.parse(data, ETHERNET_LEN)
        if next_header != IPPROTO_ICMPV6:
            raise Icmpv6FormatError(f"not ICMPv6: next header {next_header}")
        start = ETHERNET_LEN + IPV6_LEN
        payload = data[start:start + payload_length]
        if len(payload) != payload_length or len(payload) < ICMPV6_HEADER_LEN:
            raise Icmpv6FormatError(
                f"truncated: payload length {payload_length}, {len(payload)} bytes present")
        message = ICMPV6.parse(payload)
    except ConstructError as e:
        raise Icmpv6FormatError(f"malformed: {_reason(e)}") from None
    pseudo = IPV6_PSEUDO_F.build((ip_src, ip_dst, len(payload), IPPROTO_ICMPV6))
    return Frame(eth_src=eth_src, eth_dst=eth_dst, ip_src=ip_src, ip_dst=ip_dst,
                 hop_limit=hop_limit, type=message.type, code=message.code,
                 checksum_ok=internet_checksum(pseudo + payload) == 0, body=message.body)


def _reason(error: ConstructError) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
