"""The rtnetlink route request sroamd sends (RTM_NEWROUTE, RTM_DELROUTE), in construct.

    nlmsghdr  length:4 type:2 flags:2 seq:4 pid:4
    rtmsg     family dst_len src_len tos table protocol scope type (a byte
              each) flags:4
    rtattr... length:2 type:2 value, padded to 4 bytes

Netlink is in the host's byte order (OpenWrt runs big- and little-endian
CPUs): the integers are construct's native ones.  pyroute2's message classes
stay what sroamd.routes builds and the tests inspect; encoding one of them
cost about 90 us (a route per client arriving, two per roam), this about 10
(issue 11).  Only route messages whose attributes are all listed in ATTRS are
encoded here; sroamd.rtnl has pyroute2 encode anything else.
"""

from __future__ import annotations

import socket
import struct

from construct import (Bytes, ConstructError, Int8un, Int16un, Int32un, Padding, Rebuild,
                       Struct, len_, this)

from sroamd.wire.compiled import CompiledOnUse, GreedyRange

NLMSG_HEADER_LEN = 16
RTMSG_LEN = 12

RTATTR = Struct(
    "length" / Rebuild(Int16un, 4 + len_(this.value)),
    "type" / Int16un,
    "value" / Bytes(this.length - 4),
    Padding((4 - this.length % 4) % 4),
)

ROUTE_REQUEST = Struct(
    "length" / Int32un,  # the whole message (computed by encode_route)
    "type" / Int16un,
    "flags" / Int16un,
    "seq" / Int32un,
    "pid" / Int32un,
    "family" / Int8un,
    "dst_len" / Int8un,
    "src_len" / Int8un,
    "tos" / Int8un,
    "table" / Int8un,
    "proto" / Int8un,
    "scope" / Int8un,
    "rtype" / Int8un,
    "rtflags" / Int32un,
    "attrs" / GreedyRange(RTATTR),
)
_ROUTE_REQUEST = CompiledOnUse(ROUTE_REQUEST)

_U32 = Int32un
# The attributes sroamd's routes carry: name -> (type, value to bytes).
ATTRS = {
    "RTA_DST": (1, None),  # an address (text, as pyroute2 takes it)
    "RTA_OIF": (4, _U32),
    "RTA_PRIORITY": (6, _U32),
    "RTA_TABLE": (15, _U32),
}


def _value(name: str, value, family: int) -> bytes:
    kind = ATTRS[name][1]
    if kind is None:
        return socket.inet_pton(family, value)
    return kind.build(value)


def encodable(msg) -> bool:
    """Whether encode_route can encode this pyroute2 rtmsg."""
    return all(attr[0] in ATTRS for attr in msg["attrs"])


def encode_route(msg) -> bytes:
    """The bytes of a pyroute2 rtmsg (header type, flags and sequence number
    set), as pyroute2's encode() makes them."""
    family = msg["family"]
    attrs = [{"type": ATTRS[name][0], "value": _value(name, value, family)}
             for name, value, *_ in msg["attrs"]]
    length = NLMSG_HEADER_LEN + RTMSG_LEN + sum((4 + len(a["value"]) + 3) & ~3 for a in attrs)
    header = msg["header"]
    try:
        return _ROUTE_REQUEST.build({
            "length": length, "type": header["type"], "flags": header["flags"],
            "seq": header["sequence_number"], "pid": header.get("pid") or 0,
            "family": family, "dst_len": msg["dst_len"], "src_len": msg["src_len"],
            "tos": msg["tos"], "table": msg["table"], "proto": msg["proto"],
            "scope": msg["scope"], "rtype": msg["type"], "rtflags": msg["flags"],
            "attrs": attrs})
    except (ConstructError, struct.error) as e:
        raise ValueError(f"cannot encode route message: {e}") from None
