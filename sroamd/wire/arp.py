"""ARP (RFC 826) over Ethernet, in construct: the gratuitous reply sroamd sends."""

from __future__ import annotations

from construct import Bytes, Const, ConstructError, Int8ub, Int16ub, Struct

from sroamd.wire.flat import FlatCodec
from sroamd.wire.ip import ETH_P_ARP, ETH_P_IP, ETHERNET, ETHERNET_F, ETHERNET_LEN

ARPHRD_ETHER = 1
OP_REQUEST, OP_REPLY = 1, 2

ARP = Struct(
    "htype" / Const(ARPHRD_ETHER, Int16ub),
    "ptype" / Const(ETH_P_IP, Int16ub),
    "hlen" / Const(6, Int8ub),
    "plen" / Const(4, Int8ub),
    "op" / Int16ub,
    "sender_mac" / Bytes(6),
    "sender_ip" / Bytes(4),
    "target_mac" / Bytes(6),
    "target_ip" / Bytes(4),
)
ARP_LEN = 28
# For building (issue 11): a codec derived from the declaration (wire.flat).
_ARP = FlatCodec(ARP, fields=("op", "sender_mac", "sender_ip", "target_mac", "target_ip"))


class ArpFormatError(ValueError):
    pass


def gratuitous_reply(our_mac: bytes, our_ip: bytes, client_mac: bytes) -> bytes:
    """An ARP reply 'our_ip is at our_mac', sent to client_mac only.

    The gratuitous form: sender and target are both (our_mac, our_ip).
    Linux takes a reply as gratuitous only if its target IP *and* target
    MAC equal the sender's (arp_is_garp); only then does it overwrite an
    entry it updated less than locktime (1 s) ago, or one in use, at once.
    With the client's MAC as target MAC, a client in the middle of a TCP
    stream kept the old AP's MAC for seconds (seen in the roaming rig).
    """
    return (ETHERNET_F.build((client_mac, our_mac, ETH_P_ARP))
            + _ARP.build((OP_REPLY, our_mac, our_ip, our_mac, our_ip)))


def parse_frame(data: bytes):
    """(Ethernet header, ARP message) of a frame; for tests and tools."""
    try:
        ether = ETHERNET.parse(data)
        if ether.ethertype != ETH_P_ARP:
            raise ArpFormatError(f"not ARP: ethertype {ether.ethertype:#06x}")
        return ether, ARP.parse(data[ETHERNET_LEN:ETHERNET_LEN + ARP_LEN])
    except ConstructError as e:
        raise ArpFormatError(str(e)) from None
