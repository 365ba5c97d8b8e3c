"""DHCPv4 (RFC 2131/2132): the BOOTP header and the options sroamd uses, in construct.

    op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr
    sname file | magic cookie 63 82 53 63 | options ... End (255)

Options are TLVs (code, length, body) except Pad (0) and End (255), which are
a single byte.  Every malformed input (truncated header, bad cookie, an
option running past the end, no End, a body of the wrong size for its code, a
duplicated option we interpret) raises DhcpFormatError and nothing else;
each option consumes at least one byte, so parsing always ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from construct import (Byte, Bytes, Const, ConstructError, FocusedSeq, GreedyBytes,
                       GreedyRange, If, Int16ub, Int32ub, Prefixed, RepeatUntil, Struct,
                       Switch, Terminated, this)

SERVER_PORT = 67
CLIENT_PORT = 68
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTREQUEST, BOOTREPLY = 1, 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000
MIN_LEN = 240  # fixed header + cookie
MAX_LEN = 65535 - 28  # the largest UDP payload over IPv4
MIN_REPLY_LEN = 300  # BOOTP clients may drop shorter messages (RFC 1542)

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPE_NAMES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST",
                      DECLINE: "DECLINE", ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE",
                      INFORM: "INFORM"}

# Option codes.
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_REQUESTED_ADDRESS = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_REQUEST_LIST = 55
OPT_RENEWAL_TIME = 58  # T1
OPT_REBINDING_TIME = 59  # T2
OPT_CLIENT_ID = 61
OPT_END = 255


def _exactly(subcon):
    """subcon, which must fill the option body exactly."""
    return FocusedSeq("value", "value" / subcon, Terminated)


_ADDRESS = Bytes(4)
_ADDRESSES = GreedyRange(_ADDRESS)
_SECONDS = Int32ub

# The body of each option we interpret; any other is kept as raw bytes.
OPTION_BODIES = {
    OPT_SUBNET_MASK: _exactly(_ADDRESS),
    OPT_ROUTER: _exactly(_ADDRESSES),
    OPT_DNS: _exactly(_ADDRESSES),
    OPT_REQUESTED_ADDRESS: _exactly(_ADDRESS),
    OPT_LEASE_TIME: _exactly(_SECONDS),
    OPT_MESSAGE_TYPE: _exactly(Byte),
    OPT_SERVER_ID: _exactly(_ADDRESS),
    OPT_PARAMETER_REQUEST_LIST: GreedyRange(Byte),
    OPT_RENEWAL_TIME: _exactly(_SECONDS),
    OPT_REBINDING_TIME: _exactly(_SECONDS),
    OPT_CLIENT_ID: GreedyBytes,
}

OPTION = Struct(
    "code" / Byte,
    "body" / If(lambda ctx: ctx.code != OPT_PAD and ctx.code != OPT_END,
                Prefixed(Byte, Switch(this.code, OPTION_BODIES, default=GreedyBytes))),
)

DHCP = Struct(
    "op" / Byte,
    "htype" / Byte,
    "hlen" / Byte,
    "hops" / Byte,
    "xid" / Int32ub,
    "secs" / Int16ub,
    "flags" / Int16ub,
    "ciaddr" / _ADDRESS,
    "yiaddr" / _ADDRESS,
    "siaddr" / _ADDRESS,
    "giaddr" / _ADDRESS,
    "chaddr" / Bytes(16),
    "sname" / Bytes(64),
    "file" / Bytes(128),
    "cookie" / Const(MAGIC_COOKIE),
    # Up to and including End; Pad entries are part of the list.
    "options" / RepeatUntil(lambda obj, lst, ctx: obj["code"] == OPT_END, OPTION),
    "trailer" / GreedyBytes,  # padding after End
)

ZERO4 = b"\0\0\0\0"


class DhcpFormatError(ValueError):
    """A DHCP message that cannot be parsed or built; the text says why."""


@dataclass(slots=True)
class DhcpMessage:
    op: int = BOOTREQUEST
    xid: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = ZERO4
    yiaddr: bytes = ZERO4
    siaddr: bytes = ZERO4
    giaddr: bytes = ZERO4
    chaddr: bytes = b"\0" * 16
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    sname: bytes = b"\0" * 64
    file: bytes = b"\0" * 128
    # code -> value: bytes (addresses, client id, unknown codes), int
    # (message type, times), list[bytes] (router, DNS), list[int] (55).
    options: dict[int, object] = field(default_factory=dict)

    @property
    def message_type(self) -> int | None:
        return self.options.get(OPT_MESSAGE_TYPE)

    @property
    def mac(self) -> bytes:
        """The client's hardware address (chaddr cut to hlen)."""
        return bytes(self.chaddr[:self.hlen])

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)


def parse(data: bytes) -> DhcpMessage:
    """Parse one DHCP message (the UDP payload); raises DhcpFormatError."""
    if len(data) < MIN_LEN:
        raise DhcpFormatError(f"truncated: {len(data)} bytes, at least {MIN_LEN} needed")
    if len(data) > MAX_LEN:
        raise DhcpFormatError(f"too long: {len(data)} bytes")
    if data[236:240] != MAGIC_COOKIE:
        raise DhcpFormatError(f"bad magic cookie {data[236:240].hex()}")
    try:
        raw = DHCP.parse(data)
    except ConstructError as e:
        raise DhcpFormatError(f"bad options: {_reason(e)}") from None
    options: dict[int, object] = {}
    for option in raw.options:
        code = option.code
        if code == OPT_PAD or code == OPT_END:
            continue
        if code in options:
            if code in OPTION_BODIES:
                raise DhcpFormatError(f"option {code} given twice")
            continue  # an option we do not interpret: the first one stands
        body = option.body
        if isinstance(body, list):
            body = list(body)
        options[code] = body
    return DhcpMessage(op=raw.op, xid=raw.xid, secs=raw.secs, flags=raw.flags,
                       ciaddr=raw.ciaddr, yiaddr=raw.yiaddr, siaddr=raw.siaddr,
                       giaddr=raw.giaddr, chaddr=raw.chaddr, htype=raw.htype,
                       hlen=min(raw.hlen, 16), hops=raw.hops, sname=raw.sname,
                       file=raw.file, options=options)


def build(message: DhcpMessage, min_length: int = MIN_REPLY_LEN) -> bytes:
    """The bytes of message, options in the order of the dict, End, padding."""
    options = [{"code": code, "body": value} for code, value in message.options.items()]
    options.append({"code": OPT_END, "body": None})
    fields = {
        "op": message.op, "htype": message.htype, "hlen": message.hlen,
        "hops": message.hops, "xid": message.xid, "secs": message.secs,
        "flags": message.flags, "ciaddr": message.ciaddr, "yiaddr": message.yiaddr,
        "siaddr": message.siaddr, "giaddr": message.giaddr,
        "chaddr": message.chaddr.ljust(16, b"\0")[:16], "sname": message.sname,
        "file": message.file, "options": options, "trailer": b"",
    }
    try:
        data = DHCP.build(fields)
    except ConstructError as e:
        raise DhcpFormatError(f"cannot build: {_reason(e)}") from None
    if len(data) < min_length:
        data += bytes(min_length - len(data))  # the trailer: zeros after End
    return data


def _reason(error: ConstructError) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
