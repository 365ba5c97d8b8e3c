"""The ubus wire format, declared in construct.

A ubus message on ubusd's unix socket is the 8-byte ``ubus_msghdr`` (version 0,
type, seq, peer; big-endian) followed by one blob attribute (id 0) whose
payload is the message's attributes (libubox ``blob``: plain attributes,
extended bit clear).  The ``data`` and ``signature`` attributes nest
``blobmsg`` attributes (extended bit set, a name, a typed value).

Every blob attribute starts with a 32-bit word: extended bit, 7-bit id and a
24-bit length that counts the 4-byte header and the unpadded payload; the next
attribute starts at the following multiple of 4 (zero padding).

Two views are offered:

- ``UbusMessage``: the construct declaration; ``parse``/``build`` round-trip
  every frame byte for byte (the blobmsg types stay explicit).
- ``decode_message``/``encode_message``: a message as a plain dict, as in the
  decoded capture: ``{"type": "invoke", "seq": 2, "peer": ..., "objid": ...,
  "method": "...", "data": {...}}``.  Blobmsg int8 becomes a bool (libubus uses
  it for booleans); encoding picks int8/int32/int64/double/string/table/array
  from the Python type, and ``Typed`` forces a type where a peer needs it
  (e.g. an object id that ubusd parses as int32).  These are the hot path: a
  codec derived from the declarations (sroamd/wire/blobcodec.py) does them in
  a few us a frame, and leaves to the declarations, interpreted
  (``decode_message_interpreted``/``encode_message_interpreted``), whatever
  it is not sure of.

Anything malformed (lengths past the end, bad padding, unknown message types,
attributes or blobmsg types, nesting deeper than ``MAX_DEPTH``, invalid
values) raises ``UbusFormatError`` and nothing else.
"""

from collections.abc import Mapping as _MappingABC
from dataclasses import dataclass

from construct import (Adapter, Aligned, Const, Construct, Container, ExplicitError,
                       ExprAdapter, Float64b, FocusedSeq, GreedyBytes, Int8ub, Int16sb,
                       Int16ub, Int24ub, Int32sb, Int32ub, Int64sb, ListContainer, Mapping,
                       NullTerminated, Prefixed, Struct, Subconstruct, Switch, Terminated,
                       ValidationError, this)
from construct.core import stream_iseof

from sroamd.wire.blobcodec import BlobCodec, Fallback

MAX_MSGLEN = 1048576     # UBUS_MAX_MSGLEN: libubus refuses longer messages
MAX_DEPTH = 16           # nested tables/arrays; hostapd's deepest is 3
HEADER_LEN = 12          # ubus_msghdr + the header of the message's blob attribute

MSG_TYPES = {
    "hello": 0, "status": 1, "data": 2, "ping": 3, "lookup": 4, "invoke": 5,
    "add_object": 6, "remove_object": 7, "subscribe": 8, "unsubscribe": 9,
    "notify": 10,
}   # 11 (monitor) carries another attribute set; sroamd never asks for it

ATTRS = {
    "status": 1, "objpath": 2, "objid": 3, "method": 4, "objtype": 5,
    "signature": 6, "data": 7, "target": 8, "active": 9, "no_reply": 10,
    "subscribers": 11, "user": 12, "group": 13,
}

BLOBMSG_TYPES = {
    "unspec": 0, "array": 1, "table": 2, "string": 3, "int64": 4, "int32": 5,
    "int16": 6, "int8": 7, "double": 8,
}

STATUS = ("OK", "INVALID_COMMAND", "INVALID_ARGUMENT", "METHOD_NOT_FOUND", "NOT_FOUND",
          "NO_DATA", "PERMISSION_DENIED", "TIMEOUT", "NOT_SUPPORTED", "UNKNOWN_ERROR",
          "CONNECTION_FAILED", "NO_MEMORY", "PARSE_ERROR", "SYSTEM_ERROR")

SYSTEM_OBJECT_EVENT = 1   # ubusd's built-in object: methods "register" and "send"


class UbusFormatError(ValueError):
    """A ubus frame (or a value to encode) that does not follow the format."""


@dataclass(frozen=True, slots=True)
class Typed:
    """A blobmsg value with an explicit type, e.g. ``Typed("int32", objid)``.

    Integers are taken modulo the type's width, so an unsigned 32-bit id fits
    int32 the way ``blobmsg_add_u32`` stores it."""
    type: str
    value: object


# --- construct declarations -------------------------------------------------

class _IdByte(Adapter):
    """First byte of a blob attribute header: the extended bit and a 7-bit id.
    Plain (ubus message) attributes have the bit clear, blobmsg ones set."""

    def __init__(self, extended):
        super().__init__(Int8ub)
        self.extended = extended

    def _decode(self, obj, context, path):
        if bool(obj & 0x80) != self.extended:
            raise ValidationError("blob attribute 0x%02x: extended bit should be %s"
                                  % (obj, "set" if self.extended else "clear"), path=path)
        return obj & 0x7F

    def _encode(self, obj, context, path):
        if not 0 <= obj <= 0x7F:
            raise ValidationError("blob id %r out of range" % (obj,), path=path)
        return obj | (0x80 if self.extended else 0)


class _Attrs(Subconstruct):
    """Attributes back to back up to the end of the enclosing payload.

    Unlike GreedyRange, a malformed attribute is an error, not the end of the
    list (GreedyRange would silently stop and hide the cause)."""

    def _parse(self, stream, context, path):
        items = ListContainer()
        while not stream_iseof(stream):
            items.append(self.subcon._parsereport(stream, context, path))
        return items

    def _build(self, obj, stream, context, path):
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj

    def _sizeof(self, context, path):
        raise NotImplementedError


class _Reject(Construct):
    """A field that is never valid here (explains why)."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def _parse(self, stream, context, path):
        raise ExplicitError(self.reason, path=path)

    def _build(self, obj, stream, context, path):
        raise ExplicitError(self.reason, path=path)


# The 24-bit length counts the 4-byte attribute header; Prefixed wants the payload's.
_BLOB_LEN = ExprAdapter(Int24ub, decoder=lambda obj, ctx: obj - 4,
                        encoder=lambda obj, ctx: obj + 4)

# Names and strings may carry any bytes (an SSID is not always UTF-8):
# surrogateescape keeps them and rebuilds them byte for byte.
_TEXT = ExprAdapter(GreedyBytes,
                    decoder=lambda obj, ctx: obj.decode("utf-8", "surrogateescape"),
                    encoder=lambda obj, ctx: obj.encode("utf-8", "surrogateescape"))


def _whole(subcon):
    """The payload is exactly this value, nothing after it."""
    return FocusedSeq("value", "value" / subcon, Terminated)


_CSTRING = _whole(NullTerminated(_TEXT))

# blobmsg_hdr: 16-bit name length, the name, a NUL, padding to 4.
_BLOBMSG_NAME = Aligned(4, FocusedSeq("name", "name" / Prefixed(Int16ub, _TEXT), Const(b"\0")))


def _blobmsg_attr(children):
    """One blobmsg attribute; tables and arrays hold ``children``."""
    return Aligned(4, Struct(
        "type" / Mapping(_IdByte(True), BLOBMSG_TYPES),
        "body" / Prefixed(_BLOB_LEN, Struct(
            "name" / _BLOBMSG_NAME,
            "value" / Switch(this._.type, {
                "unspec": GreedyBytes,
                "array": children,
                "table": children,
                "string": NullTerminated(_TEXT),
                "int64": Int64sb,
                "int32": Int32sb,
                "int16": Int16sb,
                "int8": Int8ub,
                "double": Float64b,
            }),
            Terminated,
        )),
    ))


def _blobmsg_levels():
    """blobmsg attribute lists for each nesting depth, the deepest first.

    The depth is bounded by construction (one declaration per level) so that a
    hostile frame cannot recurse the parser into a RecursionError."""
    children = _Reject("blobmsg nesting deeper than %d" % MAX_DEPTH)
    for _ in range(MAX_DEPTH):
        children = _Attrs(_blobmsg_attr(children))
    return children


BlobmsgList = _blobmsg_levels()


def _blob_attr(id_field, payload):
    """A plain blob attribute: id byte, 24-bit length, payload, padding to 4."""
    return Aligned(4, Struct("id" / id_field, "payload" / Prefixed(_BLOB_LEN, payload)))


_SUBSCRIBER = _blob_attr(Const(0, _IdByte(False)), _whole(Int32ub))

UbusAttr = _blob_attr(Mapping(_IdByte(False), ATTRS), Switch(this.id, {
    "status": _whole(Int32ub),
    "objpath": _CSTRING,
    "objid": _whole(Int32ub),
    "method": _CSTRING,
    "objtype": _whole(Int32ub),
    "signature": BlobmsgList,
    "data": BlobmsgList,
    "target": _whole(Int32ub),
    "active": _whole(Int8ub),
    "no_reply": _whole(Int8ub),
    "subscribers": _Attrs(_SUBSCRIBER),
    "user": _CSTRING,
    "group": _CSTRING,
}))

UbusMsgHdr = Struct(
    "version" / Const(0, Int8ub),
    "type" / Mapping(Int8ub, MSG_TYPES),
    "seq" / Int16ub,
    "peer" / Int32ub,
)

UbusMessage = Struct(
    "hdr" / UbusMsgHdr,
    "attrs" / Struct(
        "id" / Const(0, _IdByte(False)),
        "payload" / Prefixed(_BLOB_LEN, _Attrs(UbusAttr)),
    ),
    Terminated,
)

# What a reader needs to know how many bytes the whole message has.
UbusFrameHead = Struct(
    "version" / Int8ub,
    "type" / Int8ub,
    "seq" / Int16ub,
    "peer" / Int32ub,
    "blob_id" / Int8ub,
    "blob_len" / Int24ub,
)


# --- helpers: frames <-> dicts ----------------------------------------------

def frame_length(head: bytes) -> int:
    """Total length of the message whose first HEADER_LEN bytes are ``head``.

    Read with the fast codec's header struct (derived from UbusMsgHdr and the
    blob attribute header: the fields of UbusFrameHead, at once; a test checks
    they agree): this runs for every frame read."""
    if len(head) < HEADER_LEN:
        raise UbusFormatError("ubus frame head too short: %d bytes" % len(head))
    version, _, _, _, blob = (_codec or codec()).head.unpack_from(head)
    blob_len = blob & 0xFFFFFF
    if version != 0:
        raise UbusFormatError("ubus message version %d, expected 0" % version)
    if blob_len < 4 or blob_len + 8 > MAX_MSGLEN:
        raise UbusFormatError("ubus message length %d out of range" % blob_len)
    return 8 + blob_len


def parse_message(raw: bytes) -> Container:
    """The construct view of one frame (rebuilds byte-exact with ``build_message``)."""
    try:
        return UbusMessage.parse(raw)
    except Exception as e:
        # The frame comes from another process: whatever construct (or a
        # decoder) objects to, the caller gets one well-defined error.
        raise UbusFormatError("malformed ubus message: %s" % e) from None


def build_message(msg: Container) -> bytes:
    try:
        return UbusMessage.build(msg)
    except Exception as e:
        raise UbusFormatError("cannot build ubus message: %s" % e) from None


# A frame the fast codec refuses is interpreted for construct's exact reason
# only up to this size: interpreting a malformed frame takes about 1.2 ms per
# KB here (16 KB: 20 ms, 0.3 s on an AP; 880 KB: 1.7 s), the event loop
# stalled all along.  Larger ones are refused on the codec's word.
INTERPRET_REFUSED_UP_TO = 16384


def decode_message(raw: bytes) -> dict:
    """One frame -> ``{"type", "seq", "peer", <attribute name>: value, ...}``.

    The codec derived from the declaration decodes it (a few us); whatever it
    is not sure of (a malformed frame, above all) the declaration decides,
    interpreted: the same dict, or UbusFormatError with construct's reason."""
    fast = _codec or codec()
    try:
        return fast.decode(raw)
    except Fallback as e:
        fast.fallbacks += 1
        if len(raw) > INTERPRET_REFUSED_UP_TO:
            raise UbusFormatError("malformed ubus message of %d bytes: %s" % (
                len(raw), e.args[0] if e.args else "refused by the codec (too long to be"
                " interpreted for the exact reason)")) from None
        return decode_message_interpreted(raw)


def encode_message(msg: _MappingABC) -> bytes:
    """A dict as returned by ``decode_message`` -> one frame (fast, as decode_message)."""
    fast = _codec or codec()
    try:
        return fast.encode(msg)
    except Fallback:
        fast.fallbacks += 1
        return encode_message_interpreted(msg)


def decode_message_interpreted(raw: bytes) -> dict:
    """decode_message by construct's interpreter on the declaration (the reference)."""
    c = parse_message(raw)
    msg = {"type": c.hdr.type, "seq": c.hdr.seq, "peer": c.hdr.peer}
    for attr in c.attrs.payload:
        value = attr.payload
        if attr.id in ("data", "signature"):
            value = blobmsg_to_py(value)
        elif attr.id == "subscribers":
            value = [s.payload for s in value]
        msg[attr.id] = value
    return msg


def encode_message_interpreted(msg: _MappingABC) -> bytes:
    """encode_message by construct's interpreter on the declaration (the reference)."""
    try:
        attrs = []
        for name, value in msg.items():
            if name in ("type", "seq", "peer"):
                continue
            if name in ("data", "signature"):
                value = py_to_blobmsg(value)
            elif name == "subscribers":
                value = [Container(id=0, payload=s) for s in value]
            elif name in ("active", "no_reply"):
                value = int(value)
            elif name in ("objpath", "method", "user", "group"):
                value = _check_text(value)
            attrs.append(Container(id=name, payload=value))
        c = Container(
            hdr=Container(version=0, type=msg["type"], seq=msg.get("seq", 0),
                          peer=msg.get("peer", 0)),
            attrs=Container(id=0, payload=attrs))
    except UbusFormatError:
        raise
    except Exception as e:
        raise UbusFormatError("cannot encode ubus message: %s" % e) from None
    return build_message(c)


# What decoding makes of a parsed blobmsg value, where not the value itself:
# int8 is a bool (libubus uses it for booleans), unspec is null when empty
# (as blobmsg_format_json) and bytes otherwise.
PY_OF_TYPE = {"int8": bool, "unspec": lambda v: bytes(v) if v else None}


def blobmsg_to_py(items) -> dict:
    """A parsed blobmsg list (a table's body) -> dict."""
    return {item.body.name: _value_to_py(item) for item in items}


def _value_to_py(item):
    t, v = item.type, item.body.value
    if t == "table":
        return blobmsg_to_py(v)
    if t == "array":
        return [_value_to_py(i) for i in v]
    convert = PY_OF_TYPE.get(t)
    return v if convert is None else convert(v)


def py_to_blobmsg(table: _MappingABC, depth: int = 0) -> list:
    """dict -> blobmsg list for a ``data`` or ``signature`` attribute (or a table)."""
    if not isinstance(table, _MappingABC):
        raise UbusFormatError("a blobmsg table must be a mapping, not %s" % type(table).__name__)
    return [_py_to_item(_check_text(k), v, depth) for k, v in table.items()]


_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def _py_to_item(name, value, depth):
    btype, value = blobmsg_choice(value, depth)
    if btype == "table":
        value = py_to_blobmsg(value, depth + 1)
    elif btype == "array":
        value = [_py_to_item("", v, depth + 1) for v in value]
    return Container(type=btype, body=Container(name=name, value=value))


def blobmsg_choice(value, depth: int):
    """(blobmsg type, value to store) for a Python value in a table ``depth``
    levels down: the type from the Python type (or Typed), integers brought
    into the type's signed range (as libubox stores unsigned ones), text
    checked; tables and arrays are returned as given (checked to be one).
    Shared by the interpreted encoder and the fast codec."""
    kind = type(value)
    # The common cases first (a `leases` reply is strings and ints).
    if kind is str and "\0" not in value:
        return "string", value
    if kind is int and -2**31 <= value < 2**31:
        return "int32", value
    if isinstance(value, Typed):
        btype, value = value.type, value.value
    elif value is None:
        btype, value = "unspec", b""
    elif isinstance(value, bool):
        btype = "int8"
    elif isinstance(value, int):
        btype = "int32" if -2**31 <= value < 2**31 else "int64"
    elif isinstance(value, float):
        btype = "double"
    elif isinstance(value, str):
        btype = "string"
    elif isinstance(value, (bytes, bytearray)):
        btype = "unspec"
    elif isinstance(value, _MappingABC):
        btype = "table"
    elif isinstance(value, (list, tuple)):
        btype = "array"
    else:
        raise UbusFormatError("cannot encode %s as blobmsg" % type(value).__name__)

    if btype in ("table", "array"):
        if depth + 1 >= MAX_DEPTH:
            raise UbusFormatError("blobmsg nesting deeper than %d" % MAX_DEPTH)
        if btype == "table" and not isinstance(value, _MappingABC):
            raise UbusFormatError("a blobmsg table must be a mapping, not %s"
                                  % type(value).__name__)
        if btype == "array" and not isinstance(value, (list, tuple)):
            raise UbusFormatError("a blobmsg array must be a list")
    elif btype in _INT_BITS:
        bits = _INT_BITS[btype]
        if not isinstance(value, int) or not -2**(bits - 1) <= value < 2**bits:
            raise UbusFormatError("%r does not fit %s" % (value, btype))
        if btype == "int8":
            value &= 0xFF
        elif value >= 2**(bits - 1):
            value -= 2**bits            # unsigned, stored as libubox's blobmsg_add_uNN does
    elif btype == "double":
        value = float(value)
    elif btype == "string":
        value = _check_text(value)
    elif btype != "unspec":
        raise UbusFormatError("unknown blobmsg type %r" % (btype,))
    return btype, value


def _check_text(s):
    if not isinstance(s, str) or "\0" in s:
        raise UbusFormatError("not a NUL-free string: %r" % (s,))
    return s


def status_name(code: int) -> str:
    return STATUS[code] if 0 <= code < len(STATUS) else "STATUS_%d" % code


def status_code(name: str) -> int:
    return STATUS.index(name)


# The fast path, read off the declarations above (sroamd/wire/blobcodec.py),
# made at its first use (reading the declaration takes ~20 ms here, which a
# node without ubus need not spend).  ubus.CODEC is it too; CODEC.fallbacks
# counts what the declaration had to decide.
_codec: BlobCodec | None = None


def codec() -> BlobCodec:
    global _codec
    if _codec is None:
        _codec = BlobCodec(UbusMessage, UbusMsgHdr, UbusAttr, _SUBSCRIBER, BlobmsgList, _Reject,
                           _Attrs, PY_OF_TYPE, blobmsg_choice)
    return _codec


def __getattr__(name):
    if name == "CODEC":
        return codec()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
