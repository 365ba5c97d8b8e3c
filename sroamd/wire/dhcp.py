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

import struct

from construct import (Byte, Bytes, Const, ConstructError, FocusedSeq, GreedyBytes, If,
                       Int16ub, Int32ub, RepeatUntil, SizeofError, Struct, Switch, Terminated,
                       obj_, this)

from sroamd.wire.compiled import CompiledOnUse, GreedyRange, Prefixed

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

# The body of each option we interpret; any other is kept as raw bytes.  A
# body of a fixed size must be exactly that size (checked by
# _check_options, from the size construct gives each); variable ones are
# declared _exactly.
OPTION_BODIES = {
    OPT_SUBNET_MASK: _ADDRESS,
    OPT_ROUTER: _exactly(_ADDRESSES),
    OPT_DNS: _exactly(_ADDRESSES),
    OPT_REQUESTED_ADDRESS: _ADDRESS,
    OPT_LEASE_TIME: _SECONDS,
    OPT_MESSAGE_TYPE: Byte,
    OPT_SERVER_ID: _ADDRESS,
    OPT_PARAMETER_REQUEST_LIST: GreedyRange(Byte),
    OPT_RENEWAL_TIME: _SECONDS,
    OPT_REBINDING_TIME: _SECONDS,
    OPT_CLIENT_ID: GreedyBytes,
}

# (Conditions are construct expressions, not lambdas: compiled mode needs them.)
OPTION = Struct(
    "code" / Byte,
    "body" / If((this.code != OPT_PAD) & (this.code != OPT_END),
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
    "options" / RepeatUntil(obj_.code == OPT_END, OPTION),
    "trailer" / GreedyBytes,  # padding after End
)

# Compiled at first use (Struct.compile(): Python source generated from the declaration,
# issue 11).  Compiled code reads without checking it got the bytes it asked
# for, so parse() first checks the option framing (_check_options): every
# option inside the message, End present, and bodies of a fixed size (the
# size construct gives for the declared body) exactly that size.  Building
# uses wire.compiled.Prefixed, which construct compiles for building too.
_DHCP = CompiledOnUse(DHCP)


def _fixed_size(body) -> int | None:
    try:
        return body.sizeof()
    except SizeofError:
        return None


_BODY_SIZES = {code: size for code, body in OPTION_BODIES.items()
               if (size := _fixed_size(body)) is not None}

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
    _check_options(data)
    try:
        raw = _DHCP.parse(data)
    except (ConstructError, struct.error) as e:
        raise DhcpFormatError(f"bad options: {_reason(e)}") from None
    # (Containers are dicts: items read as such, not as attributes, which
    # cost a Python call each.)
    options: dict[int, object] = {}
    for option in raw["options"]:
        code = option["code"]
        if code == OPT_PAD or code == OPT_END:
            continue
        if code in options:
            if code in OPTION_BODIES:
                raise DhcpFormatError(f"option {code} given twice")
            continue  # an option we do not interpret: the first one stands
        body = option["body"]
        if isinstance(body, list):
            body = list(body)
        options[code] = body
    return DhcpMessage(raw["op"], raw["xid"], raw["secs"], raw["flags"], raw["ciaddr"],
                       raw["yiaddr"], raw["siaddr"], raw["giaddr"], raw["chaddr"],
                       raw["htype"], min(raw["hlen"], 16), raw["hops"], raw["sname"],
                       raw["file"], options)


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
        data = _DHCP.build(fields)
    except (ConstructError, struct.error, TypeError) as e:
        raise DhcpFormatError(f"cannot build: {_reason(e)}") from None
    if len(data) < min_length:
        data += bytes(min_length - len(data))  # the trailer: zeros after End
    return data


def _check_options(data: bytes) -> None:
    """The options' framing (see _DHCP): raises DhcpFormatError."""
    pos, end = MIN_LEN, len(data)
    while pos < end:
        code = data[pos]
        if code == OPT_END:
            return
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 2 > end:
            raise DhcpFormatError(f"bad options: option {code} has no length")
        length = data[pos + 1]
        if pos + 2 + length > end:
            raise DhcpFormatError(f"bad options: option {code} runs past the end")
        size = _BODY_SIZES.get(code)
        if size is not None and length != size:
            raise DhcpFormatError(f"bad options: option {code} of {length} bytes, not {size}")
        pos += 2 + length
    raise DhcpFormatError("bad options: no End option")


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
