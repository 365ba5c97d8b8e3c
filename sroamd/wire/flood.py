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

Speed (issue 11): a dump or a burst carries thousands of Updates, so they
are parsed and built as a batch, by a codec derived from UPDATE_TLV
(wire.flat.FlatCodec: one struct.Struct for the fixed fields, slices for the
key and the value, no per-Update container).  The Update TLV is declared
flat (its length and key length as Rebuild fields) for that.  The framing
loop below checks every TLV is complete and consistent before the batch
parser sees it (a partial TLV is left for the next read).
"""

from __future__ import annotations

from typing import NamedTuple

from construct import (Byte, Bytes, Const, ConstructError, GreedyBytes, Int16ub, Int32ub,
                       Prefixed, Rebuild, Struct, len_, this)

from sroamd.wire.flat import FlatCodec

HANDSHAKE = Struct("magic" / Const(44, Byte), "version" / Const(1, Byte),
                   "reserved" / Bytes(2))
HANDSHAKE_BYTES = HANDSHAKE.build({"reserved": b"\0\0"})
HANDSHAKE_LEN = 4

TLV_PAD1, TLV_PADN, TLV_UPDATE = 0, 1, 2

UPDATE_FIXED = 7  # seqno, time, key length: the body before the key
UPDATE_TLV = Struct(
    "type" / Const(TLV_UPDATE, Byte),
    "length" / Rebuild(Byte, UPDATE_FIXED + len_(this.key) + len_(this.value)),
    "seqno" / Int16ub,
    "time" / Int32ub,
    "keylen" / Rebuild(Byte, len_(this.key)),
    "key" / Bytes(this.keylen),
    "value" / Bytes(this.length - UPDATE_FIXED - this.keylen),
)

# PadN and every other TLV but Pad1 (which has no length byte).
TLV = Struct("type" / Byte, "body" / Prefixed(Byte, GreedyBytes))

MAX_BODY = 255

DUMP_BEGIN_BODY = b"sroamd dump begin"
DUMP_END_BODY = b"sroamd dump end"
# At the end of a dump from a node not synced itself (just restarted, its
# store maybe empty): not a complete dump.  DUMP_END follows once it is.
DUMP_UNSYNCED_BODY = b"sroamd dump unsynced"
MARKERS = (DUMP_BEGIN_BODY, DUMP_END_BODY, DUMP_UNSYNCED_BODY)


class FloodFormatError(ValueError):
    """A TLV that cannot be right: the session that sent it is closed."""


class Update(NamedTuple):
    """One datum as it travels (a tuple: made by the thousand in a burst)."""
    key: bytes
    seqno: int
    value: bytes
    time: int  # remaining seconds


# Runs of Updates (a dump's batch, a burst) parsed to Update tuples and built
# from anything with Update's fields in Update's order.
_UPDATES = FlatCodec(UPDATE_TLV, fields=Update._fields, make=Update)


def tlv_length(key: bytes, value: bytes) -> int:
    """Bytes of the Update TLV for key and value (type and length included)."""
    return 2 + UPDATE_FIXED + len(key) + len(value)


def build_updates(updates) -> bytes:
    """The Update TLVs of updates (Update or anything with the same fields),
    one after the other, built as one batch."""
    updates = list(updates)
    for update in updates:
        if UPDATE_FIXED + len(update.key) + len(update.value) > MAX_BODY:
            raise FloodFormatError("datum too large for one Update TLV")
    return build_fields(updates)


def build_fields(updates: list) -> bytes:
    """build_updates for (key, seqno, value, time) tuples whose sizes the
    caller checked."""
    try:
        return _UPDATES.build_many(updates)
    except (ConstructError, TypeError) as e:
        raise FloodFormatError(f"cannot build Update: {e}") from None


def build_update(update: Update) -> bytes:
    return build_updates((update,))


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
    DUMP_END_BODY) met on the way, in order.

    The framing is walked here (types and lengths only); each run of
    consecutive complete Updates is then parsed as one batch."""
    updates: list[Update] = []
    markers = []
    pos = 0
    end = len(buffer)
    run_start, run_count = 0, 0  # the run of Updates being gathered

    def parse_run():
        if run_count:
            try:
                updates.extend(_UPDATES.parse_many(bytes(buffer[run_start:pos]), run_count)[0])
            except ConstructError as e:  # (the framing loop checked: not expected)
                raise FloodFormatError(f"malformed Update: {e}") from None

    while pos < end:
        tlv_type = buffer[pos]
        if tlv_type == TLV_UPDATE:
            if pos + 2 > end:
                break
            length = buffer[pos + 1]
            if pos + 2 + length > end:
                break
            if length < UPDATE_FIXED or buffer[pos + 8] > length - UPDATE_FIXED:
                raise FloodFormatError(
                    f"truncated Update TLV: length {length}, "
                    f"key length {buffer[pos + 8] if length >= UPDATE_FIXED else '?'}")
            if not run_count:
                run_start = pos
            run_count += 1
            pos += 2 + length
            continue
        # Anything else ends the run of Updates.
        if tlv_type == TLV_PAD1:
            parse_run()
            run_count = 0
            pos += 1
            continue
        if pos + 2 > end:
            break
        length = buffer[pos + 1]
        if pos + 2 + length > end:
            break
        parse_run()
        run_count = 0
        if tlv_type == TLV_PADN:
            body = bytes(buffer[pos + 2:pos + 2 + length])
            if body in MARKERS:
                markers.append(body)
        # Other PadN and unknown TLVs: skipped by length.
        pos += 2 + length
    parse_run()
    return updates, pos, markers
