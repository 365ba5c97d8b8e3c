"""Link and network framing shared by the client-facing packets, in construct.

sroamd sends DHCP replies, RAs, Neighbour Advertisements and ARP replies on
a packet socket (whole Ethernet frames), so that it can address a client by
its MAC before the client has an address.  This module has the Ethernet,
IPv4, UDP and IPv6 headers and the Internet checksum (RFC 1071).
"""

from __future__ import annotations

from construct import (BitsInteger, BitStruct, Bytes, Const, Int8ub, Int16ub,
                       Int32ub, Nibble, Octet, Struct)

from sroamd.wire.compiled import CompiledOnUse

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

# Compiled twins of the declarations above (Struct.compile(), issue 11, at
# first use): the same format, built (and parsed) by generated Python code.  Compiled parsing
# does not check short reads: parse with them only data whose length is
# checked first (these headers have fixed sizes).
ETHERNET_C = CompiledOnUse(ETHERNET)
IPV4_C = CompiledOnUse(IPV4)
UDP_C = CompiledOnUse(UDP)
IPV4_PSEUDO_C = CompiledOnUse(IPV4_PSEUDO)
IPV6_PSEUDO_C = CompiledOnUse(IPV6_PSEUDO)
IPV6_C = CompiledOnUse(IPV6)


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
    pseudo = IPV4_PSEUDO_C.build({"src": src_ip, "dst": dst_ip, "protocol": IPPROTO_UDP,
                                "length": udp_length})
    udp_fields = {"src_port": src_port, "dst_port": dst_port, "length": udp_length,
                  "checksum": 0}
    checksum = internet_checksum(pseudo + UDP_C.build(udp_fields) + payload)
    udp_fields["checksum"] = checksum or 0xFFFF  # 0 means "no checksum" in UDP
    ip_fields = {"tos": 0, "total_length": IPV4_LEN + udp_length, "identification": 0,
                 "flags_fragment": 0x4000, "ttl": ttl, "protocol": IPPROTO_UDP,
                 "checksum": 0, "src": src_ip, "dst": dst_ip}
    ip_fields["checksum"] = internet_checksum(IPV4_C.build(ip_fields))
    return (ETHERNET_C.build({"dst": dst_mac, "src": src_mac, "ethertype": ETH_P_IP})
            + IPV4_C.build(ip_fields) + UDP_C.build(udp_fields) + payload)
