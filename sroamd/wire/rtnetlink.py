"""Rtnetlink route messages in construct: the changes sroamd sends
(RTM_NEWROUTE, RTM_DELROUTE), its dump requests, and what it reads back
(acknowledgements, the routes of a dump).

    nlmsghdr  length:4 type:2 flags:2 seq:4 pid:4
    rtmsg     family dst_len src_len tos table protocol scope type (a byte
              each) flags:4
    rtattr... length:2 type:2 value, padded to 4 bytes

Netlink is in the host's byte order (OpenWrt runs big- and little-endian
CPUs): the integers are construct's native ones.  ROUTE_REQUEST is the
general form; the route change sroamd sends has exactly three attributes
and is declared flat (ROUTE_CHANGE_V4/V6), so that sroamd.wire.flat makes a
struct.Struct of it: 1 us to build, where pyroute2's encoder took about 90
and construct's compiled ROUTE_REQUEST about 10 (issue 11).
tests/test_rtnetlink_wire.py checks the bytes against pyroute2's.
"""

from __future__ import annotations

from typing import NamedTuple

from construct import (Bytes, Const, GreedyBytes, Int8un, Int16un, Int32sn, Int32un, Padding,
                       Rebuild, Struct, len_, this)

from sroamd.wire.compiled import GreedyRange
from sroamd.wire.flat import FlatCodec

NLMSG_HEADER_LEN = 16
RTMSG_LEN = 12

RTATTR = Struct(
    "length" / Rebuild(Int16un, 4 + len_(this.value)),
    "type" / Int16un,
    "value" / Bytes(this.length - 4),
    Padding((4 - this.length % 4) % 4),
)

NLMSGHDR = (
    "length" / Int32un,  # the whole message
    "type" / Int16un,
    "flags" / Int16un,
    "seq" / Int32un,
    "pid" / Int32un,
)
RTMSG = (
    "family" / Int8un,
    "dst_len" / Int8un,
    "src_len" / Int8un,
    "tos" / Int8un,
    "table" / Int8un,
    "proto" / Int8un,
    "scope" / Int8un,
    "rtype" / Int8un,
    "rtflags" / Int32un,
)

ROUTE_REQUEST = Struct(*NLMSGHDR, *RTMSG, "attrs" / GreedyRange(RTATTR))
# -- the fast paths (issue 11): flat declarations, FlatCodec's tuples ---------
#
# A route change as sroamd sends it carries exactly RTA_DST, RTA_OIF and
# RTA_PRIORITY, each of a size that needs no padding: a flat message, one
# struct.Struct (sroamd.wire.flat) instead of pyroute2's encoder or
# construct's Container machinery.  The parts are the declarations above.

RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_TABLE = 1, 4, 6, 15
NLMSG_ERROR, NLMSG_DONE = 2, 3


def _attribute(name: str, rta_type: int, value) -> tuple:
    """An rtattr of a fixed-size value (a multiple of 4 bytes: no padding)."""
    return (f"{name}_rta_len" / Const(4 + value.sizeof(), Int16un),
            f"{name}_rta_type" / Const(rta_type, Int16un),
            name / value)


def _route_change(address_length: int) -> Struct:
    return Struct(*NLMSGHDR, *RTMSG,
                  *_attribute("dst", RTA_DST, Bytes(address_length)),
                  *_attribute("oif", RTA_OIF, Int32un),
                  *_attribute("priority", RTA_PRIORITY, Int32un))


ROUTE_CHANGE_V4 = _route_change(4)
ROUTE_CHANGE_V6 = _route_change(16)
ROUTE_CHANGE_FIELDS = ("length", "type", "flags", "seq", "pid", "family", "dst_len", "src_len",
                       "tos", "table", "proto", "scope", "rtype", "rtflags", "dst", "oif",
                       "priority")
ROUTE_CHANGE_CODECS = {4: FlatCodec(ROUTE_CHANGE_V4, ROUTE_CHANGE_FIELDS),
                       16: FlatCodec(ROUTE_CHANGE_V6, ROUTE_CHANGE_FIELDS)}

# A dump request (RTM_GETROUTE): the header and an rtmsg, no attributes.
ROUTE_DUMP_REQUEST = Struct(*NLMSGHDR, *RTMSG)
ROUTE_HEADER = FlatCodec(ROUTE_DUMP_REQUEST)  # (also the start of each route dumped)
NLMSG_HEADER = FlatCodec(Struct(*NLMSGHDR))
# NLMSG_ERROR: the errno (negative; 0 is an acknowledgement), then the request's header.
NLMSGERR = FlatCodec(Struct(*NLMSGHDR, "error" / Int32sn, "request" / GreedyBytes))
RTATTR_HEADER = FlatCodec(Struct("rta_len" / Int16un, "rta_type" / Int16un))
U32 = FlatCodec(Struct("value" / Int32un))


def route_change(msg_type: int, flags: int, seq: int, family: int, dst_len: int, table: int,
                 proto: int, scope: int, rtype: int, dst: bytes, oif: int,
                 priority: int) -> bytes:
    """An RTM_NEWROUTE/RTM_DELROUTE of dst/dst_len via oif at priority (the
    bytes pyroute2 makes of the same rtmsg)."""
    codec = ROUTE_CHANGE_CODECS[len(dst)]
    return codec.build((codec.size, msg_type, flags, seq, 0, family, dst_len, 0, 0, table,
                        proto, scope, rtype, 0, dst, oif, priority))


def route_dump_request(msg_type: int, flags: int, seq: int, family: int, table: int,
                       proto: int) -> bytes:
    return ROUTE_HEADER.build((ROUTE_HEADER.size, msg_type, flags, seq, 0, family, 0, 0, 0,
                               table, proto, 0, 0, 0))


class Route(NamedTuple):
    """A route of a dump, as far as sroamd looks at it."""
    family: int
    dst_len: int
    table: int  # RTA_TABLE if given, else rtm_table
    proto: int
    dst: bytes | None
    oif: int | None
    priority: int  # 0 when absent


class NetlinkMessage(NamedTuple):
    type: int
    seq: int
    offset: int  # in the datagram
    length: int


def messages(data: bytes) -> list[NetlinkMessage]:
    """The netlink messages of a datagram (a truncated last one is left out)."""
    out = []
    offset, end = 0, len(data)
    header = NLMSG_HEADER.parse
    while offset + NLMSG_HEADER_LEN <= end:
        length, kind, _, seq, _ = header(data, offset)
        if length < NLMSG_HEADER_LEN or offset + length > end:
            break
        out.append(NetlinkMessage(kind, seq, offset, length))
        offset += (length + 3) & ~3
    return out


def error_code(data: bytes, offset: int) -> int:
    """The errno of the NLMSG_ERROR at offset (0: an acknowledgement)."""
    return -NLMSGERR.parse(data, offset)[5]


def parse_route(data: bytes, offset: int, length: int) -> Route:
    """The route (RTM_NEWROUTE) at offset of a dump datagram."""
    (_, _, _, _, _, family, dst_len, _, _, table, proto, _, _, _) = ROUTE_HEADER.parse(
        data, offset)
    dst = oif = None
    priority = 0
    pos, end = offset + NLMSG_HEADER_LEN + RTMSG_LEN, offset + length
    attribute = RTATTR_HEADER.parse
    u32 = U32.parse
    while pos + 4 <= end:
        rta_len, rta_type = attribute(data, pos)
        if rta_len < 4 or pos + rta_len > end:
            break
        if rta_type == RTA_DST:
            dst = data[pos + 4:pos + rta_len]
        elif rta_type == RTA_OIF and rta_len == 8:
            oif = u32(data, pos + 4)[0]
        elif rta_type == RTA_PRIORITY and rta_len == 8:
            priority = u32(data, pos + 4)[0]
        elif rta_type == RTA_TABLE and rta_len == 8:
            table = u32(data, pos + 4)[0]
        pos += (rta_len + 3) & ~3
    return Route(family, dst_len, table, proto, dst, oif, priority)
