"""Does the fast ubus codec (sroamd/wire/blobcodec.py) say what the declaration says?

Shared by tests/test_ubus_fast.py and the ubus fuzzing path.  Each check runs
the codec alone (no fallback) and construct interpreting the declaration, and
returns None when they agree or a description of how they differ:

- the codec decided (a dict, or bytes) and the declaration decided otherwise
  (an error, or other content): the fast path is wrong;
- the codec gave up (Fallback) on what the declaration accepts: not wrong
  (decode_message/encode_message then ask the declaration) but a frame that
  pays the interpreter's price, which valid frames must not.
"""

from __future__ import annotations

from sroamd.wire.blobcodec import Fallback
from sroamd.wire.ubus import (CODEC, UbusFormatError, decode_message_interpreted,
                              encode_message_interpreted)


def same(a, b) -> bool:
    """Equal, and bool told from int and float from int (repr does both,
    and treats NaN as equal to itself, as a byte-exact comparison would)."""
    return type(a) is type(b) and repr(a) == repr(b)


def decode_disagreement(raw: bytes) -> str | None:
    try:
        fast = CODEC.decode(raw)
    except Fallback:
        fast = Fallback
    try:
        ref = decode_message_interpreted(raw)
    except UbusFormatError as e:
        ref = e
    if fast is Fallback:
        if isinstance(ref, UbusFormatError):
            return None
        return f"fast decode gave up on a valid frame {raw.hex()}"
    if isinstance(ref, UbusFormatError):
        return f"fast decode accepted {raw.hex()} which the declaration refuses: {ref}"
    if not same(fast, ref):
        return f"decode of {raw.hex()}: fast {fast!r} != declaration {ref!r}"
    return None


def encode_disagreement(msg) -> str | None:
    try:
        fast = CODEC.encode(msg)
    except Fallback:
        fast = Fallback
    try:
        ref = encode_message_interpreted(msg)
    except UbusFormatError as e:
        ref = e
    if fast is Fallback:
        if isinstance(ref, UbusFormatError):
            return None
        return f"fast encode gave up on a valid message {msg!r}"
    if isinstance(ref, UbusFormatError):
        return f"fast encode built {msg!r} which the declaration refuses: {ref}"
    if fast != ref:
        return f"encode of {msg!r}: fast {fast.hex()} != declaration {ref.hex()}"
    return None
