"""Link and network framing shared by the client-facing packets, in construct.

sroamd sends DHCP replies, RAs, Neighbour Advertisements and ARP replies on
a packet socket (whole Ethernet frames), so that it can address a client by
its MAC before the client has an address.  This module has the Ethernet,
IPv4, UDP and IPv6 headers and the Internet checksum (RFC 1071).
"""

from __future__ import annotations

from construct import (BitsInteger, BitStruct, Bytes, Const, Int8ub, Int16ub,
                       Int32ub, Nibble, Octet, Struct)

from sroamd.wire.flat import FlatCodec

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
BROADCAST_MAC = b"\xff" * 6

ETHERNET = Struct(
    "dst" / Bytes(6),
    "src" / Bytes(6),
    "ethertype" / Int16ub,
)
ETHERNET_LEN = 14

# RFC 791 header without options (we never send any).
IPV4 = Struct(
    "version_ihl" / Const(0x45, Int8ub),
    "tos" / Int8ub,
    "total_length" / Int16ub,
    "identification" / Int16ub,
    "flags_fragment" / Int16ub,
    "ttl" / Int8ub,
    "protocol" / Int8ub,
    "checksum" / Int16ub,
    "src" / Bytes(4),
    "dst" / Bytes(4),
)
IPV4_LEN = 20

UDP = Struct(
    "src_port" / Int16ub,
    "dst_port" / Int16ub,
    "length" / Int16ub,
    "checksum" / Int16ub,
)
UDP_LEN = 8

# The pseudo-headers that UDP (over IPv4) and ICMPv6 checksums cover.
IPV4_PSEUDO = Struct(
    "src" / Bytes(4),
    "dst" / Bytes(4),
    "zero" / Const(0, Int8ub),
    "protocol" / Int8ub,
    "length" / Int16ub,
)
IPV6_PSEUDO = Struct(
    "src" / Bytes(16),
    "dst" / Bytes(16),
    "length" / Int32ub,
    "zero" / Const(b"\0\0\0"),
    "next_header" / Int8ub,
)

IPV6 = Struct(
    "vtf" / BitStruct("version" / Const(6, Nibble), "traffic_class" / Octet,
                      "flow_label" / BitsInteger(20)),
    "payload_length" / Int16ub,
    "next_header" / Int8ub,
    "hop_limit" / Int8ub,
    "src" / Bytes(16),
    "dst" / Bytes(16),
)
IPV6_LEN = 40

# The flat codecs of the declarations above (sroamd.wire.flat, issue 11: one
# struct.Struct each, on tuples of the fields in declaration order, Consts
# left out; a BitStruct's members are fields): what the frames sent to
# clients are built with (a DHCP reply's headers took 26 us compiled by
# construct, about 5 so).
ETHERNET_F = FlatCodec(ETHERNET)
IPV4_F = FlatCodec(IPV4)
UDP_F = FlatCodec(UDP)
IPV4_PSEUDO_F = FlatCodec(IPV4_PSEUDO)
IPV6_F = FlatCodec(IPV6)
IPV6_PSEUDO_F = FlatCodec(IPV6_PSEUDO)


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement of the one's complement sum (RFC 1071).

    Uses 2**16 == 1 (mod 0xFFFF): the one's complement sum of the 16-bit
    words is the big integer modulo 0xFFFF (0xFFFF standing for a non-zero
    multiple), which is much faster in Python than a loop over the words.
    """
    if len(data) % 2:
        data += b"\0"
    value = int.from_bytes(data, "big")
    total = value % 0xFFFF
    if total == 0 and value != 0:
        total = 0xFFFF
    return 0xFFFF - total


def ipv4_udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes,
                   src_port: int, dst_port: int, payload: bytes, ttl: int = 64) -> bytes:
    """An Ethernet frame carrying payload in UDP over IPv4, both checksums set."""
    udp_length = UDP_LEN + len(payload)
    pseudo = IPV4_PSEUDO_F.build((src_ip, dst_ip, IPPROTO_UDP, udp_length))
    checksum = internet_checksum(
        pseudo + UDP_F.build((src_port, dst_port, udp_length, 0)) + payload)
    checksum = checksum or 0xFFFF  # 0 means "no checksum" in UDP
    # tos, total length, identification, flags (DF) and fragment offset, ttl,
    # protocol, checksum, source, destination
    ip_fields = [0, IPV4_LEN + udp_length, 0, 0x4000, ttl, IPPROTO_UDP, 0, src_ip, dst_ip]
    ip_fields[6] = internet_checksum(IPV4_F.build(ip_fields))
    return b"".join((ETHERNET_F.build((dst_mac, src_mac, ETH_P_IP)), IPV4_F.build(ip_fields),
                     UDP_F.build((src_port, dst_port, udp_length, checksum)), payload))
