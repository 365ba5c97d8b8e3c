"""The flooding protocol of C sroamd (TCP), declared in construct.

A session starts with a 4-byte handshake (magic 44, version 1, two zero
bytes) in each direction, then carries TLVs:
  00              Pad1 (a single byte)
  01 len ...      PadN
  02 len body     Update: seqno:2 time:4 keylen:1 key value (big-endian;
                  time = remaining seconds; the value fills the rest)
Unknown TLV types are skipped by length.

sroamd (this one) also marks the start and the end of the dump it sends a
new peer with two PadN TLVs whose bodies say so (DUMP_BEGIN, DUMP_END): C
sroamd skips PadN whatever it holds, and a peer that sees both knows when it
has the whole dump (the protocol has no such marker otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import (Byte, Bytes, Const, ConstructError, GreedyBytes, Int16ub,
                       Int32ub, Prefixed, Struct, Switch, this)

HANDSHAKE = Struct("magic" / Const(44, Byte), "version" / Const(1, Byte),
                   "reserved" / Bytes(2))
HANDSHAKE_BYTES = HANDSHAKE.build({"reserved": b"\0\0"})
HANDSHAKE_LEN = 4

TLV_PAD1, TLV_PADN, TLV_UPDATE = 0, 1, 2

UPDATE_BODY = Struct(
    "seqno" / Int16ub,
    "time" / Int32ub,
    "key" / Prefixed(Byte, GreedyBytes),
    "value" / GreedyBytes,
)

# One TLV other than Pad1 (which has no length byte).
TLV = Struct(
    "type" / Byte,
    "body" / Prefixed(Byte, Switch(this.type, {TLV_UPDATE: UPDATE_BODY},
                                   default=GreedyBytes)),
)

MAX_BODY = 255

DUMP_BEGIN_BODY = b"sroamd dump begin"
DUMP_END_BODY = b"sroamd dump end"
# At the end of a dump from a node not synced itself (just restarted, its
# store maybe empty): not a complete dump.  DUMP_END follows once it is.
DUMP_UNSYNCED_BODY = b"sroamd dump unsynced"
MARKERS = (DUMP_BEGIN_BODY, DUMP_END_BODY, DUMP_UNSYNCED_BODY)


class FloodFormatError(ValueError):
    """A TLV that cannot be right: the session that sent it is closed."""


@dataclass(frozen=True, slots=True)
class Update:
    key: bytes
    seqno: int
    value: bytes
    time: int  # remaining seconds


def build_update(update: Update) -> bytes:
    if 7 + len(update.key) + len(update.value) > MAX_BODY:
        raise FloodFormatError("datum too large for one Update TLV")
    return TLV.build({"type": TLV_UPDATE, "body": {
        "seqno": update.seqno, "time": update.time,
        "key": update.key, "value": update.value}})


def build_padn(body: bytes) -> bytes:
    return TLV.build({"type": TLV_PADN, "body": body})


DUMP_BEGIN = build_padn(DUMP_BEGIN_BODY)
DUMP_END = build_padn(DUMP_END_BODY)
DUMP_UNSYNCED = build_padn(DUMP_UNSYNCED_BODY)


def parse_handshake(data: bytes) -> None:
    try:
        HANDSHAKE.parse(data[:HANDSHAKE_LEN])
    except ConstructError as e:
        raise FloodFormatError(f"bad handshake {data[:HANDSHAKE_LEN].hex()}") from e


def parse_tlvs(buffer: bytes | bytearray) -> tuple[list[Update], int]:
    """Parse the complete TLVs at the start of buffer.

    Returns the updates found and how many bytes were consumed; an incomplete
    TLV at the end is left for the next read.  Raises FloodFormatError on a
    malformed Update (the C implementation closes the session there too).
    """
    updates, used, _markers = parse_stream(buffer)
    return updates, used


def parse_stream(buffer: bytes | bytearray) -> tuple[list[Update], int, list[bytes]]:
    """parse_tlvs, and the bodies of the dump markers (DUMP_BEGIN_BODY,
    DUMP_END_BODY) met on the way, in order."""
    updates = []
    markers = []
    pos = 0
    end = len(buffer)
    while pos < end:
        tlv_type = buffer[pos]
        if tlv_type == TLV_PAD1:
            pos += 1
            continue
        if pos + 2 > end:
            break
        length = buffer[pos + 1]
        if pos + 2 + length > end:
            break
        if tlv_type == TLV_UPDATE:
            if length < 7 or buffer[pos + 8] > length - 7:
                raise FloodFormatError(
                    f"truncated Update TLV: length {length}, "
                    f"key length {buffer[pos + 8] if length >= 7 else '?'}")
            body = UPDATE_BODY.parse(bytes(buffer[pos + 2:pos + 2 + length]))
            updates.append(Update(body.key, body.seqno, body.value, body.time))
        elif tlv_type == TLV_PADN:
            body = bytes(buffer[pos + 2:pos + 2 + length])
            if body in MARKERS:
                markers.append(body)
        # Other PadN and unknown TLVs: skipped by length.
        pos += 2 + length
    return updates, pos, markers
