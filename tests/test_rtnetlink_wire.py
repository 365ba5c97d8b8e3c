"""sroamd.wire.rtnetlink: route requests byte for byte as pyroute2 encodes them."""

import socket

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from sroamd.routes import RouteManager
from sroamd.wire.rtnetlink import ROUTE_REQUEST, encodable, encode_route


def message(address: bytes, prefixlen: int, ifindex: int, metric):
    manager = RouteManager.__new__(RouteManager)  # (only _message is used)
    manager.metric = 128
    return manager._message(address, prefixlen, ifindex, metric)


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
def test_route_requests_are_pyroute2s_bytes(address, prefixlen, ifindex, metric, msg_type,
                                            flags):
    msg = message(address, prefixlen, ifindex, metric)
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = 0xDEADBEEF
    assert encodable(msg)
    ours = encode_route(msg)
    msg.encode()
    assert ours == msg.data
    parsed = ROUTE_REQUEST.parse(ours)
    assert parsed.length == len(ours) and parsed.attrs[0].value == address


def test_other_attributes_are_left_to_pyroute2():
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["attrs"] = [("RTA_GATEWAY", "192.0.2.1")]
    assert not encodable(msg)
