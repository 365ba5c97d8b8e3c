"""sroamd.wire.rtnetlink: route requests byte for byte as pyroute2 encodes them."""

import socket

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from sroamd.routes import PROTO_SROAMD, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_UNICAST
from sroamd.wire.rtnetlink import (ROUTE_CHANGE_V4, ROUTE_CHANGE_V6, ROUTE_REQUEST, error_code,
                                   messages, parse_route, route_change)


def message(address: bytes, prefixlen: int, ifindex: int, metric):
    """The rtmsg of a route change as sroamd.routes made it with pyroute2."""
    family = socket.AF_INET if len(address) == 4 else socket.AF_INET6
    msg = rtmsg()
    msg["family"] = family
    msg["dst_len"] = prefixlen
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = PROTO_SROAMD
    msg["scope"] = RT_SCOPE_LINK if family == socket.AF_INET else RT_SCOPE_UNIVERSE
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_DST", socket.inet_ntop(family, address)), ("RTA_OIF", ifindex),
                    ("RTA_PRIORITY", 128 if metric is None else metric)]
    return msg


@pytest.mark.parametrize("address,prefixlen,ifindex,metric", [
    (bytes([198, 18, 0, 5]), 32, 3, None),
    (bytes([192, 0, 2, 200]), 32, 70000, 0),
    (bytes.fromhex("20010db8444400010000000000000000"), 64, 2, 1024),
    (bytes.fromhex("20010db84444ffff0000000000000000"), 64, 1, None),
])
@pytest.mark.parametrize("msg_type,flags", [
    (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL),
    (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK),
])
def test_route_changes_are_pyroute2s_bytes(address, prefixlen, ifindex, metric, msg_type,
                                            flags):
    msg = message(address, prefixlen, ifindex, metric)
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = 0xDEADBEEF
    msg.encode()
    # The flat declaration (what sroamd.rtnl sends): pyroute2's bytes, the
    # general declaration's reading of them, and the same message read back
    # as a route of a dump.
    family = msg["family"]
    priority = 128 if metric is None else metric
    fast = route_change(msg_type, flags, 0xDEADBEEF, family, prefixlen, RT_TABLE_MAIN,
                        PROTO_SROAMD, msg["scope"], RTN_UNICAST, address, ifindex, priority)
    assert fast == msg.data
    parsed = ROUTE_REQUEST.parse(fast)
    assert parsed.length == len(fast) and parsed.attrs[0].value == address
    assert (ROUTE_CHANGE_V4 if len(address) == 4 else ROUTE_CHANGE_V6).parse(fast).dst == address
    [m] = messages(fast + b"\0\0\0")  # (a truncated rest is no message)
    assert (m.type, m.seq, m.offset, m.length) == (msg_type, 0xDEADBEEF, 0, len(fast))
    route = parse_route(fast, 0, len(fast))
    assert route == (family, prefixlen, RT_TABLE_MAIN, PROTO_SROAMD, address, ifindex, priority)


def test_acknowledgements_and_errors_read():
    from pyroute2.netlink import nlmsgerr
    for code in (0, 17):
        msg = nlmsgerr()
        msg["header"]["type"] = 2
        msg["header"]["sequence_number"] = 7
        msg["error"] = -code
        msg.encode()
        data = bytes(msg.data)
        [m] = messages(data)
        assert (m.type, m.seq) == (2, 7) and error_code(data, m.offset) == code
