"""ubus wire format against the capture of a real ubusd session, and malformed frames."""

import random
import re
import struct

import pytest

from captures import load_jsonl
from sroamd.wire.ubus import (MAX_DEPTH, MAX_MSGLEN, Typed, UbusFormatError, build_message,
                              decode_message, encode_message, frame_length, parse_message)

@pytest.fixture(scope="module")
def frames():
    raw = load_jsonl("ubus-session.jsonl")
    decoded = load_jsonl("ubus-session.decoded.jsonl")
    assert len(raw) == len(decoded) > 100
    return [(bytes.fromhex(r["hex"]), d["msg"]) for r, d in zip(raw, decoded)]


def strict(x):
    """Make == tell bool from int and float from int, as the capture does."""
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, float):
        return ("float", x)
    if isinstance(x, dict):
        return {k: strict(v) for k, v in x.items()}
    if isinstance(x, list):
        return [strict(v) for v in x]
    return x


# --- the capture --------------------------------------------------------------

def test_every_frame_parses_rebuilds_and_decodes(frames):
    for i, (raw, expected) in enumerate(frames):
        assert frame_length(raw[:12]) == len(raw), i
        assert build_message(parse_message(raw)) == raw, i
        assert strict(decode_message(raw)) == strict(expected), i


def test_dicts_encode_back(frames):
    """decode -> encode -> decode is stable, and byte-exact unless the sender
    chose a wider integer than the value needs (hostapd's int64 signal)."""
    inexact = 0
    for i, (raw, _) in enumerate(frames):
        msg = decode_message(raw)
        again = encode_message(msg)
        assert strict(decode_message(again)) == strict(msg), i
        if again != raw:
            inexact += 1
            assert "signal" in msg.get("data", {}), i
    assert inexact == 2


def test_forced_type_rebuilds_hostapd_assoc(frames):
    raw = next(r for r, m in frames if m.get("method") == "assoc" and m["type"] == "notify")
    msg = decode_message(raw)
    msg["data"]["signal"] = Typed("int64", msg["data"]["signal"])
    assert encode_message(msg) == raw


def test_event_register_object_id_is_int32(frames):
    """ubus listen registers its u32 object id as blobmsg int32 (shown signed)."""
    raw, expected = next((r, m) for r, m in frames if m.get("method") == "register")
    objid = expected["data"]["object"] & 0xFFFFFFFF
    msg = dict(expected, data={"object": Typed("int32", objid), "pattern": "*"})
    assert encode_message(msg) == raw


# --- encoding choices ---------------------------------------------------------------

def _types(data):
    c = parse_message(encode_message({"type": "invoke", "seq": 1, "peer": 5, "data": data}))
    return {a.body.name: a.type for a in c.attrs.payload[0].payload}


def test_python_types_pick_blobmsg_types():
    assert _types({"b": True, "i": -2**31, "j": 2**31 - 1, "k": 2**31, "n": -2**31 - 1,
                   "f": 1.0, "s": "x", "u": None, "r": b"\x01", "t": {}, "a": []}) == {
        "b": "int8", "i": "int32", "j": "int32", "k": "int64", "n": "int64", "f": "double",
        "s": "string", "u": "unspec", "r": "unspec", "t": "table", "a": "array"}
    assert _types({"x": Typed("int16", 7), "y": Typed("double", 2)}) == {
        "x": "int16", "y": "double"}


def test_values_round_trip():
    data = {"s": "é\udcff", "neg": -7, "big": 2**40, "d": -0.5, "b": False, "none": None,
            "raw": b"\x00\x01", "t": {"a": [1, "x", {"y": True}, []]}, "empty": {},
            "u32": Typed("int32", 0xFFFFFFFF), "i16": Typed("int16", -2)}
    msg = {"type": "invoke", "seq": 65535, "peer": 0xFFFFFFFF, "objid": 0xFFFFFFFF,
           "method": "m", "data": data, "no_reply": 1}
    out = decode_message(encode_message(msg))
    expected = dict(data, u32=-1, i16=-2)
    assert strict(out["data"]) == strict(expected)
    assert out["seq"] == 65535 and out["peer"] == out["objid"] == 0xFFFFFFFF
    assert out["no_reply"] == 1


def test_subscribers_and_signature_round_trip():
    msg = {"type": "status", "seq": 3, "peer": 9, "objid": 7, "subscribers": [1, 0xFFFFFFFF],
           "status": 0}
    assert decode_message(encode_message(msg)) == msg
    msg = {"type": "add_object", "seq": 1, "peer": 0, "objpath": "sroamd",
           "signature": {"status": {}, "leases": {"mac": 3}}}
    assert decode_message(encode_message(msg)) == msg


@pytest.mark.parametrize("bad", [
    {"type": "nosuch"},
    {"type": "invoke", "nosuch": 1},
    {"type": "invoke", "objid": -1},
    {"type": "invoke", "objid": 2**32},
    {"type": "invoke", "method": "a\0b"},
    {"type": "invoke", "data": {"x": object()}},
    {"type": "invoke", "data": {"x": 2**64}},
    {"type": "invoke", "data": {"x": Typed("int8", 256)}},
    {"type": "invoke", "data": {"x": Typed("int16", 1.5)}},
    {"type": "invoke", "data": {"x": Typed("nosuch", 1)}},
    {"type": "invoke", "data": {"x": "a\0"}},
    {"type": "invoke", "data": {1: 2}},
    {"type": "invoke", "data": [1]},
    {"type": "invoke", "data": {"x": "x" * MAX_MSGLEN * 17}},
])
def test_unencodable_raises_format_error(bad):
    with pytest.raises(UbusFormatError):
        encode_message(bad)


def test_encoding_depth_is_bounded():
    data = {}
    for _ in range(MAX_DEPTH - 1):
        data = {"a": data}
    encode_message({"type": "invoke", "data": data})
    with pytest.raises(UbusFormatError, match="nesting"):
        encode_message({"type": "invoke", "data": {"a": data}})


# --- malformed frames --------------------------------------------------------------

ASSOC = bytes.fromhex(  # invoke sim_assoc {"address": "aa:bb:cc:dd:ee:01"}, from the capture
    "00050002c97928ba0000004403000008c97928ba0400000e73696d5f6173736f6300000007000028"
    "8300002200076164647265737300000061613a62623a63633a64643a65653a3031000000")


NAME_A = b"\x00\x01a\x00"    # blobmsg name "a": length, name, NUL (4-byte aligned)


def _frame(msg_type, payload):
    return struct.pack(">BBHII", 0, msg_type, 1, 1, 4 + len(payload)) + payload


def _attr(word, payload):
    pad = -len(payload) % 4
    return struct.pack(">I", word | (4 + len(payload))) + payload + b"\0" * pad


def _data(inner):
    return _frame(5, _attr(0x07000000, inner))


def _nested(depth):
    """``depth`` tables, each the only member of the one around it (built in linear time)."""
    return b"".join(struct.pack(">I", 0x82000000 | 8 * (depth - i)) + NAME_A
                    for i in range(depth))


def test_sample_is_valid():
    assert decode_message(ASSOC)["data"] == {"address": "aa:bb:cc:dd:ee:01"}


def test_every_truncation_raises():
    for n in range(len(ASSOC)):
        with pytest.raises(UbusFormatError):
            decode_message(ASSOC[:n])


def _patch(offset, data):
    """ASSOC with ``data`` written at ``offset`` (ASSOC's layout: header 0-7, message
    blob 8, objid 12, method 20, data 36, blobmsg "address" 40 (name length 44,
    name 46, NUL 53), its value 56-73, padding to 76)."""
    return ASSOC[:offset] + data + ASSOC[offset + len(data):]


@pytest.mark.parametrize("name, frame, why", [
    ("top length past the end", _patch(8, bytes.fromhex("00000048")), "less than specified"),
    ("top length too short", _patch(8, bytes.fromhex("00000002")), "non-negative"),
    ("trailing bytes", ASSOC + b"\0\0\0\0", "end of stream"),
    ("attribute past its parent", _patch(40, bytes.fromhex("83000032")), "less than specified"),
    ("data past the message", _patch(36, bytes.fromhex("07000038")), "less than specified"),
    ("unknown message type", _patch(1, b"\x0c"), "mapping for 12"),
    ("monitor message", _patch(1, b"\x0b"), "mapping for 11"),
    ("version 1", _patch(0, b"\x01"), "expected 0"),
    ("unknown attribute 14", _patch(12, b"\x0e"), "mapping for 14"),
    ("attribute 0", _patch(12, b"\x00"), "mapping for 0"),
    ("extended ubus attribute", _patch(12, b"\x83"), "extended bit should be clear"),
    ("blobmsg not extended", _patch(40, b"\x03"), "extended bit should be set"),
    ("unknown blobmsg type 9", _patch(40, b"\x89"), "mapping for 9"),
    ("unknown blobmsg type 0x7f", _patch(40, b"\xff"), "mapping for 127"),
    ("string without NUL", _patch(72, b"1111"), "less than specified"),
    ("NUL inside a string", _patch(66, b"\0"), "end of stream"),
    ("name without NUL", _patch(53, b"x"), "expected b"),
    ("name length past the attribute", _patch(44, b"\x00\x40"), "less than specified"),
    ("int32 of 3 bytes", _data(_attr(0x85000000, NAME_A + b"\0" * 3)), "less than specified"),
    ("int8 of 2 bytes", _data(_attr(0x87000000, NAME_A + b"\0" * 2)), "end of stream"),
    ("double of 4 bytes", _data(_attr(0x88000000, NAME_A + b"\0" * 4)), "less than specified"),
    ("objid of 8 bytes", _frame(5, _attr(0x03000000, b"\0" * 8)), "end of stream"),
    ("no_reply of 4 bytes", _frame(5, _attr(0x0A000000, b"\0" * 4)), "end of stream"),
    ("extended subscriber", _frame(1, _attr(0x0B000000, _attr(0x80000000, b"\0" * 4))),
     "extended bit should be clear"),
    ("nesting one level too deep", _data(_nested(MAX_DEPTH)), "nesting deeper"),
])
def test_malformed_raises_format_error(name, frame, why):
    with pytest.raises(UbusFormatError, match=re.escape(why)):
        decode_message(frame)


def test_depth_limit_is_exact_and_deep_frames_fail_fast():
    assert decode_message(_data(_nested(MAX_DEPTH - 1)))["data"]["a"]
    for depth in (MAX_DEPTH, 200000):
        with pytest.raises(UbusFormatError, match="nesting"):
            decode_message(_data(_nested(depth)))


@pytest.mark.parametrize("head", [
    bytes.fromhex("010500010000000000000010"),     # version 1
    bytes.fromhex("000500010000000000000003"),     # blob length below its own header
    struct.pack(">BBHII", 0, 5, 1, 1, MAX_MSGLEN),  # longer than libubus accepts
    bytes.fromhex("0005000100000000"),             # short
])
def test_frame_length_rejects(head):
    with pytest.raises(UbusFormatError):
        frame_length(head)


def test_mutated_capture_frames_raise_only_format_error(frames):
    rng = random.Random(44)
    samples = [raw for raw, _ in frames if len(raw) > 40]
    decoded = failed = 0
    for _ in range(3000):
        frame = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        try:
            decode_message(bytes(frame))
            decoded += 1
        except UbusFormatError:
            failed += 1
    assert decoded and failed
