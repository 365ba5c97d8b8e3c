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

from sroamd.wire.compiled import GreedyRange, Prefixed
from sroamd.wire.flat import FlatCodec

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
# _parse_options, from the size construct gives each); variable ones are
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

_CODE = Byte  # an option's code
_LENGTH = Byte  # the length of its body (all but Pad and End have one)

# (Conditions are construct expressions, not lambdas: compiled mode needs them.)
OPTION = Struct(
    "code" / _CODE,
    "body" / If((this.code != OPT_PAD) & (this.code != OPT_END),
                Prefixed(_LENGTH, Switch(this.code, OPTION_BODIES, default=GreedyBytes))),
)

_HEADER = (
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
)

DHCP = Struct(
    *_HEADER,
    # Up to and including End; Pad entries are part of the list.
    "options" / RepeatUntil(obj_.code == OPT_END, OPTION),
    "trailer" / GreedyBytes,  # padding after End
)

# The fast paths (issue 11), derived from the declarations above by
# sroamd.wire.flat: the fixed header (everything before the options) is one
# struct.Struct; an option is its code and length (OPTION_HEAD) and a body
# parsed and built by the codec derived from its declaration in
# OPTION_BODIES (_body_codec).  construct's compiled DHCP took 34 us to
# parse and 31 us to build an ACK; tests/test_dhcp_wire.py checks both
# against the construct declaration.
DHCP_HEADER = Struct(*_HEADER)
_HEADER_CODEC = FlatCodec(DHCP_HEADER)
OPTION_HEAD = FlatCodec(Struct("code" / _CODE, "length" / _LENGTH))
_END = FlatCodec(Struct("code" / _CODE)).build((OPT_END,))


def _fixed_size(body) -> int | None:
    try:
        return body.sizeof()
    except SizeofError:
        return None


_BODY_SIZES = {code: size for code, body in OPTION_BODIES.items()
               if (size := _fixed_size(body)) is not None}

ZERO4 = b"\0\0\0\0"


def _body_codec(body):
    """(parse, build) of an option body, derived from its declaration:
    fixed-size values and lists of them (GreedyRange, exact when declared
    _exactly) through FlatCodec, GreedyBytes as the bytes themselves, and
    anything else through construct.  parse raises DhcpFormatError on a
    body of the wrong size."""
    exact = False
    if isinstance(body, FocusedSeq):  # _exactly(subcon)
        exact = True
        body = body.subcons[0].subcon
    if body is GreedyBytes:
        return bytes, bytes
    items = isinstance(body, GreedyRange)
    try:
        codec = FlatCodec(Struct("value" / (body.subcon if items else body)))
    except TypeError:
        return body.parse, body.build
    size = codec.size
    if not items:
        return (lambda data: codec.parse(data)[0]), (lambda value: codec.build((value,)))

    def parse_items(data: bytes) -> list:
        count, rest = divmod(len(data), size)
        if rest and exact:
            raise DhcpFormatError(f"bad options: {len(data)} bytes is not a whole number "
                                  f"of {size}-byte items")
        return [value for value, in codec.parse_many(data, count)[0]]

    return parse_items, (lambda values: codec.build_many((value,) for value in values))


_BODY_CODECS = {code: _body_codec(body) for code, body in OPTION_BODIES.items()}
_BODY_PARSERS = {code: codec[0] for code, codec in _BODY_CODECS.items()}
_BODY_BUILDERS = {code: codec[1] for code, codec in _BODY_CODECS.items()}


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
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = _HEADER_CODEC.parse(data)
    try:
        options = _parse_options(data)
    except (ConstructError, struct.error) as e:
        raise DhcpFormatError(f"bad options: {_reason(e)}") from None
    return DhcpMessage(op, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, htype,
                       min(hlen, 16), hops, sname, file, options)


def _parse_options(data: bytes) -> dict[int, object]:
    """The options after the cookie, up to End: code -> value (Pad skipped;
    of an option given twice, the first stands, unless we interpret it:
    then it is an error, as are an option running past the end, no End,
    and a body of the wrong size for its code)."""
    options: dict[int, object] = {}
    pos, end = MIN_LEN, len(data)
    while pos < end:
        code = data[pos]
        if code == OPT_END:
            return options
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 2 > end:
            raise DhcpFormatError(f"bad options: option {code} has no length")
        length = data[pos + 1]
        start = pos + 2
        pos = start + length
        if pos > end:
            raise DhcpFormatError(f"bad options: option {code} runs past the end")
        size = _BODY_SIZES.get(code)
        if size is not None and length != size:
            raise DhcpFormatError(f"bad options: option {code} of {length} bytes, not {size}")
        if code in options:
            if code in OPTION_BODIES:
                raise DhcpFormatError(f"option {code} given twice")
            continue  # an option we do not interpret: the first one stands
        decode = _BODY_PARSERS.get(code)
        options[code] = data[start:pos] if decode is None else decode(data[start:pos])
    raise DhcpFormatError("bad options: no End option")


def build(message: DhcpMessage, min_length: int = MIN_REPLY_LEN) -> bytes:
    """The bytes of message, options in the order of the dict, End, padding."""
    try:
        parts = [_HEADER_CODEC.build((
            message.op, message.htype, message.hlen, message.hops, message.xid, message.secs,
            message.flags, message.ciaddr, message.yiaddr, message.siaddr, message.giaddr,
            message.chaddr.ljust(16, b"\0")[:16], message.sname, message.file))]
        head = OPTION_HEAD.build
        builders = _BODY_BUILDERS
        for code, value in message.options.items():
            encode = builders.get(code)
            body = bytes(value) if encode is None else encode(value)
            parts.append(head((code, len(body))))
            parts.append(body)
    except (ConstructError, struct.error, TypeError, ValueError) as e:
        raise DhcpFormatError(f"cannot build: {_reason(e)}") from None
    parts.append(_END)
    data = b"".join(parts)
    if len(data) < min_length:
        data += bytes(min_length - len(data))  # the trailer: zeros after End
    return data


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
