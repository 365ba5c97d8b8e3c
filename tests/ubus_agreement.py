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


def _disagreement(fast_fn, reference_fn, given, show, what: str) -> str | None:
    """How the fast codec and the interpreted declaration differ on given
    (decoded or encoded as what says), or None: the same result, or both
    refusing it (the fast one by giving up to the declaration)."""
    try:
        fast = fast_fn(given)
    except Fallback:
        fast = Fallback
    try:
        ref = reference_fn(given)
    except UbusFormatError as e:
        ref = e
    if fast is Fallback:
        if isinstance(ref, UbusFormatError):
            return None
        return f"fast {what} gave up on a valid input {show(given)}"
    if isinstance(ref, UbusFormatError):
        return f"fast {what} took {show(given)}, which the declaration refuses: {ref}"
    if not same(fast, ref):
        return f"{what} of {show(given)}: fast {fast!r} != declaration {ref!r}"
    return None


def decode_disagreement(raw: bytes) -> str | None:
    return _disagreement(CODEC.decode, decode_message_interpreted, raw, bytes.hex, "decode")


def encode_disagreement(msg) -> str | None:
    return _disagreement(CODEC.encode, encode_message_interpreted, msg, repr, "encode")
