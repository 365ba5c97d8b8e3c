"""The fast ubus codec (sroamd/wire/blobcodec.py) against the declaration it is
derived from (sroamd/wire/ubus.py, interpreted by construct): the same dicts,
the same bytes, the same frames and values refused, on the real ubusd capture,
on random messages and on mutated and random frames."""

import random

import pytest
from construct import (Bytes, ConstructError, Int8ub, Mapping, Prefixed, Struct, Switch,
                       Terminated, this)

import test_ubus_wire
from captures import load_jsonl
from fuzzing.mutate import mutate
from sroamd.wire import ubus
from sroamd.wire.blobcodec import BlobCodec, Fallback
from sroamd.wire.ubus import (CODEC, MAX_DEPTH, MSG_TYPES, Typed, UbusFormatError, decode_message,
                              encode_message)
from ubus_agreement import decode_disagreement, encode_disagreement, same


@pytest.fixture(scope="module")
def frames():
    return [bytes.fromhex(r["hex"]) for r in load_jsonl("ubus-session.jsonl")]


def test_capture_frames_decode_fast_and_alike(frames):
    for raw in frames:
        assert decode_disagreement(raw) is None
        CODEC.decode(raw)   # (raises Fallback if the fast path gave up)


def test_capture_messages_encode_fast_and_alike(frames):
    for raw in frames:
        msg = decode_message(raw)
        assert encode_disagreement(msg) is None
        CODEC.encode(msg)
        if "data" in msg and "signal" in msg["data"]:   # hostapd's int64 signal, forced
            msg["data"]["signal"] = Typed("int64", msg["data"]["signal"])
            assert CODEC.encode(msg) == raw


def test_valid_frames_never_fall_back(frames):
    before = CODEC.fallbacks
    for raw in frames:
        encode_message(decode_message(raw))
    assert CODEC.fallbacks == before


# --- random messages ---------------------------------------------------------------

NAMES = ("", "a", "address", "clients", "é", "\udcff\udc80", "x" * 5, "y" * 300, "auth-alg")


def random_value(rng, depth):
    r = rng.random()
    if r < 0.15:
        return rng.choice(NAMES) + rng.choice(("", "wlan0", "\udcfe"))
    if r < 0.3:
        return rng.choice((0, 1, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**63 - 1, -2**63,
                           2**64 - 1, rng.randrange(-2**40, 2**40)))
    if r < 0.36:
        return rng.choice((True, False))
    if r < 0.42:
        return rng.choice((0.0, -0.0, 1.5, -1e300, float("inf"), float("nan")))
    if r < 0.46:
        return None
    if r < 0.5:
        return rng.choice((b"", b"\x00", b"\x01\x02\x03", bytes(range(256))))
    if r < 0.62:
        btype = rng.choice(("int8", "int16", "int32", "int64", "double", "string", "unspec"))
        value = {"int8": rng.randrange(-128, 256), "int16": rng.randrange(-2**15, 2**16),
                 "int32": rng.randrange(-2**31, 2**32), "int64": rng.randrange(-2**63, 2**64),
                 "double": rng.choice((2, 0.25)), "string": rng.choice(NAMES),
                 "unspec": rng.choice((b"", b"\xff" * 7))}[btype]
        return Typed(btype, value)
    if depth + 1 >= MAX_DEPTH - 1 or r < 0.7:
        return rng.randrange(100)
    if r < 0.85:
        return {rng.choice(NAMES) + str(i): random_value(rng, depth + 1)
                for i in range(rng.randrange(5))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def deep(depth):
    data = {}
    for _ in range(depth):
        data = {"t": data} if len(data) % 2 == 0 else [data]
    return data


def random_message(rng):
    msg = {"type": rng.choice(list(MSG_TYPES)), "seq": rng.randrange(0x10000),
           "peer": rng.randrange(1 << 32)}
    for attr in rng.sample(list(ubus.ATTRS), rng.randrange(6)):
        msg[attr] = {
            "status": rng.randrange(14), "objpath": rng.choice(NAMES),
            "objid": rng.randrange(1 << 32), "method": rng.choice(NAMES), "objtype": rng.randrange(1 << 32),
            "signature": {"m": {"a": rng.randrange(9)}},
            "data": {rng.choice(NAMES): random_value(rng, 0) for _ in range(rng.randrange(6))},
            "target": rng.randrange(1 << 32), "active": rng.randrange(2),
            "no_reply": rng.choice((0, 1, True)),
            "subscribers": [rng.randrange(1 << 32) for _ in range(rng.randrange(4))],
            "user": "root", "group": rng.choice(("root", "")),
        }[attr]
    if rng.random() < 0.05:
        msg["data"] = {"deep": deep(rng.randrange(MAX_DEPTH - 3, MAX_DEPTH + 1))}
    return msg


def test_random_messages_encode_and_decode_alike():
    rng = random.Random(11)
    for _ in range(1500):
        msg = random_message(rng)
        assert encode_disagreement(msg) is None
        try:
            raw = encode_message(msg)
        except UbusFormatError:
            continue
        assert decode_disagreement(raw) is None


@pytest.mark.parametrize("value", [
    2**64, -2**63 - 1, Typed("int8", 256), Typed("int8", -129), Typed("int16", 2**16),
    Typed("int16", 1.5), Typed("int32", "1"), Typed("double", "x"), Typed("string", 1),
    Typed("string", "a\0"), Typed("unspec", "text"), Typed("table", [1]), Typed("array", {}),
    Typed("nosuch", 1), object(), "a\0b", "\ud800", bytearray(b"ab"), memoryview(b"ab"),
    {"a\0": 1}, {1: 2}, {"\ud800": 1}, deep(MAX_DEPTH), (1, 2), Typed("int64", True),
    type("Text", (str,), {})("sub"), {type("Text", (str,), {})("k"): 1},
    "x" * (1 << 24),
])
def test_odd_values_encode_alike(value):
    """Values the fast path may refuse: the declaration then decides, the same way."""
    assert encode_disagreement({"type": "invoke", "seq": 1, "peer": 2, "data": {"v": value}}) \
        is None


@pytest.mark.parametrize("msg", [
    {"type": "nosuch"}, {"type": "invoke", "nosuch": 1}, {"type": "invoke", "objid": -1},
    {"type": "invoke", "objid": 2**32}, {"type": "invoke", "method": "a\0b"},
    {"type": "invoke", "method": 7}, {"type": "invoke", "seq": 2**16},
    {"type": "invoke", "peer": -1}, {"type": "invoke", "active": "1"},
    {"type": "invoke", "active": 256}, {"type": "invoke", "subscribers": [2**32]},
    {"type": "invoke", "subscribers": 5}, {"type": "invoke", "data": [1]},
    {"type": "invoke", "signature": None}, {"seq": 1},
])
def test_odd_messages_encode_alike(msg):
    assert encode_disagreement(msg) is None


# --- malformed and random frames ---------------------------------------------------------

@pytest.mark.parametrize("name, frame, why",
                         test_ubus_wire.test_malformed_raises_format_error.pytestmark[0].args[1])
def test_malformed_frames_fall_back_to_the_declaration(name, frame, why):
    with pytest.raises(Fallback):
        CODEC.decode(frame)
    assert decode_disagreement(frame) is None


def test_truncations_and_deep_nesting_fall_back():
    for n in range(len(test_ubus_wire.ASSOC)):
        with pytest.raises(Fallback):
            CODEC.decode(test_ubus_wire.ASSOC[:n])
    for depth in (MAX_DEPTH - 1, MAX_DEPTH, 1000):
        frame = test_ubus_wire._data(test_ubus_wire._nested(depth))
        assert decode_disagreement(frame) is None


def test_mutated_capture_frames_decode_alike(frames):
    rng = random.Random(45)
    accepted = 0
    for _ in range(4000):
        frame = mutate(rng, rng.choice(frames), frames)
        assert decode_disagreement(frame) is None
        try:
            CODEC.decode(frame)
            accepted += 1
        except Fallback:
            pass
    assert accepted > 100   # (the mutations are not all refused: both sides are exercised)


def test_random_payloads_in_a_valid_header_decode_alike():
    """Random attribute bytes behind a correct message header, so that the
    walk of attributes (not the header check) decides."""
    rng = random.Random(46)
    for _ in range(3000):
        words = []
        for _ in range(rng.randrange(1, 5)):
            payload = rng.randbytes(rng.choice((0, 1, 2, 4, 8, 12)))
            first = rng.choice((0x03, 0x04, 0x07, 0x0B, 0x0A, 0x80, 0x85, rng.randrange(256)))
            length = len(payload) + rng.choice((4, 4, 4, 0, 3, 5, 8))
            words.append(bytes([first]) + length.to_bytes(3, "big") + payload
                         + bytes(rng.choice((0, -len(payload) % 4))))
        if rng.random() < 0.5:   # one data attribute holding the random blobmsg attributes
            inner = b"".join(bytes([w[0] | 0x80]) + w[1:] for w in words)
            body = bytes([7]) + (len(inner) + 4).to_bytes(3, "big") + inner
        else:
            body = b"".join(words)
        frame = (bytes([0, rng.choice((2, 5, 10, 1))]) + bytes(6) + bytes([0])
                 + (len(body) + 4).to_bytes(3, "big") + body)
        assert decode_disagreement(frame) is None


def test_a_large_leases_reply_alike():
    leases = [{"address": f"198.51.{i >> 8}.{i & 255}", "mac": "02:00:00:00:%02x:%02x"
               % (i >> 8, i & 255), "remaining": 1800 - i, "node": "%016x" % i}
              for i in range(2000)]
    msg = {"type": "data", "seq": 4, "peer": 9, "objid": 77,
           "data": {"leases": leases, "total": 2000, "truncated": False}}
    assert encode_disagreement(msg) is None
    assert decode_disagreement(CODEC.encode(msg)) is None
    assert same(CODEC.decode(CODEC.encode(msg)), {"type": "data", "seq": 4, "peer": 9,
                                                  "objid": 77, "data": msg["data"]})


# --- the codec follows the declaration, or refuses it ---------------------------------------

def test_codec_refuses_a_declaration_it_does_not_know():
    """A payload the codec has no reading for (here a 3-byte field) is an
    import-time TypeError, never a codec that silently differs."""
    attr = ubus._blob_attr(Mapping(ubus._IdByte(False), ubus.ATTRS),
                           Switch(this.id, {name: Bytes(3) for name in ubus.ATTRS}))
    message = Struct("hdr" / ubus.UbusMsgHdr,
                     "attrs" / Struct("id" / ubus.Const(0, ubus._IdByte(False)),
                                      "payload" / Prefixed(ubus._BLOB_LEN, ubus._Attrs(attr))),
                     Terminated)
    with pytest.raises(TypeError, match="does not know"):
        BlobCodec(message, ubus.UbusMsgHdr, attr, ubus._SUBSCRIBER, ubus.BlobmsgList,
                  ubus._Reject, ubus._Attrs, ubus.PY_OF_TYPE, ubus.blobmsg_choice)
    header = Struct("version" / Int8ub, "type" / Int8ub, "seq" / Int8ub, "peer" / Int8ub)
    with pytest.raises(TypeError):
        BlobCodec(ubus.UbusMessage, header, ubus.UbusAttr, ubus._SUBSCRIBER, ubus.BlobmsgList,
                  ubus._Reject, ubus._Attrs, ubus.PY_OF_TYPE, ubus.blobmsg_choice)


def test_codec_reads_its_tables_from_the_declaration():
    assert CODEC.max_depth == MAX_DEPTH
    assert CODEC.types == {v: k for k, v in MSG_TYPES.items()}
    assert {name: b for name, (b, _, _) in CODEC.attr_kinds.items()} == ubus.ATTRS
    assert {t: b & 0x7F for t, (b, _, _) in CODEC.bm_kinds.items()} == ubus.BLOBMSG_TYPES
    assert all(b & 0x80 for b, _, _ in CODEC.bm_kinds.values())
    assert (CODEC.modulus, CODEC.extra, CODEC.head.size) == (4, 4, ubus.HEADER_LEN)


def test_frame_length_reads_what_the_frame_head_declares():
    """frame_length uses the codec's header struct; UbusFrameHead is the declaration."""
    rng = random.Random(47)
    heads = [rng.randbytes(12) for _ in range(2000)]
    heads += [bytes(2) + rng.randbytes(6) + bytes([0, 0]) + rng.randbytes(2) for _ in range(2000)]
    for head in heads:
        h = ubus.UbusFrameHead.parse(head)
        version, mtype, seq, peer, word = CODEC.head.unpack_from(head)
        assert (version, mtype, seq, peer, word >> 24, word & 0xFFFFFF) == (
            h.version, h.type, h.seq, h.peer, h.blob_id, h.blob_len)
        valid = h.version == 0 and 4 <= h.blob_len and h.blob_len + 8 <= ubus.MAX_MSGLEN
        if valid:
            assert ubus.frame_length(head) == 8 + h.blob_len
        else:
            with pytest.raises(UbusFormatError):
                ubus.frame_length(head)


def test_caches_stay_small_whatever_the_names():
    """Names and strings come from other processes: the codec's caches keep
    only short ones, and at most a bounded number."""
    before = len(CODEC._texts), len(CODEC._name_cache)
    long_names = {"n%d" % i + "x" * 100: "v" * 100 + str(i) for i in range(300)}
    raw = encode_message({"type": "invoke", "data": long_names})
    assert decode_message(raw)["data"] == long_names
    assert (len(CODEC._texts), len(CODEC._name_cache)) == before
    many = {"k%d" % i: "s%d" % i for i in range(20000)}
    assert decode_message(encode_message({"type": "invoke", "data": many}))["data"] == many
    assert len(CODEC._texts) <= 8192 and len(CODEC._name_cache) <= 4096


def _big_leases_frame(count):
    leases = [{"address": f"198.51.{i >> 8 & 255}.{i & 255}", "mac": "02:00:00:00:%02x:%02x"
               % (i >> 8 & 255, i & 255), "remaining": i, "node": None} for i in range(count)]
    return encode_message({"type": "data", "seq": 1, "peer": 2, "objid": 3,
                           "data": {"leases": leases}})


def test_a_large_malformed_frame_is_refused_without_stalling():
    """Regression: a malformed frame of 880 KB (its last name's NUL
    overwritten) was interpreted for construct's reason: 1.7 s of CPU here,
    the event loop stalled.  Past INTERPRET_REFUSED_UP_TO the codec's refusal
    is the answer (still UbusFormatError)."""
    import time
    raw = _big_leases_frame(7000)
    assert len(raw) > 700000
    at = raw.rfind(b"\x00\x04node\x00") + 6   # the last name's NUL
    bad = raw[:at] + b"A" + raw[at + 1:]
    started = time.process_time()
    with pytest.raises(UbusFormatError, match="malformed"):
        decode_message(bad)
    assert time.process_time() - started < 0.3
    assert len(decode_message(raw)["data"]["leases"]) == 7000


def test_large_frames_mutated_decode_alike():
    """Above the size where the codec's refusal is final, it must refuse
    exactly what the declaration refuses (the interpreter checks it here, slowly)."""
    rng = random.Random(48)
    raw = _big_leases_frame(1500)
    assert len(raw) > ubus.INTERPRET_REFUSED_UP_TO
    for _ in range(6):
        frame = bytearray(raw)
        for _ in range(rng.randint(1, 2)):
            frame[rng.randrange(len(frame))] = rng.choice((0, 0x41, 0x80, 0xFF))
        assert decode_disagreement(bytes(frame)) is None


def _codec_for(blobmsg_list):
    """BlobCodec over the ubus declaration with another blobmsg list in data/signature."""
    switch = ubus.UbusAttr.subcon.subcons[1].subcon.subcon
    cases = dict(switch.cases, data=blobmsg_list, signature=blobmsg_list)
    attr = ubus._blob_attr(Mapping(ubus._IdByte(False), ubus.ATTRS), Switch(this.id, cases))
    message = Struct("hdr" / ubus.UbusMsgHdr,
                     "attrs" / Struct("id" / ubus.Const(0, ubus._IdByte(False)),
                                      "payload" / Prefixed(ubus._BLOB_LEN, ubus._Attrs(attr))),
                     Terminated)
    codec = BlobCodec(message, ubus.UbusMsgHdr, attr, ubus._SUBSCRIBER, blobmsg_list,
                      ubus._Reject, ubus._Attrs, ubus.PY_OF_TYPE, ubus.blobmsg_choice)
    codec.message = message
    return codec


def test_codec_follows_the_declared_levels_or_refuses_them():
    """The codec reads one blobmsg level and the number of levels: a
    declaration with fewer levels is followed; one whose levels differ
    (here an int32 read unsigned at one depth) or whose strings use another
    text adapter than names is refused at import."""
    from construct import ExprAdapter, GreedyBytes, Int32ub

    def levels(count, patch_at=None):
        children = ubus._Reject("too deep")
        for depth in range(count):
            attr = ubus._blobmsg_attr(children)
            if depth == patch_at:
                value = attr.subcon.subcons[1].subcon.subcon.subcons[1].subcon
                value.cases["int32"] = Int32ub
            children = ubus._Attrs(attr)
        return children

    four = _codec_for(levels(4))
    assert four.max_depth == 4
    fits = encode_message({"type": "data", "data": {"a": {"b": [{"c": 1}]}}})   # 4 lists
    assert same(four.decode(fits), decode_message(fits))
    deeper = encode_message({"type": "data", "data": {"a": {"b": [{"c": {}}]}}})
    with pytest.raises(Fallback, match="nesting deeper than 4"):
        four.decode(deeper)
    with pytest.raises(ConstructError, match="too deep"):   # (as the 4 levels declare)
        four.message.parse(deeper)
    four.message.parse(fits)
    with pytest.raises(TypeError, match="differs"):
        _codec_for(levels(6, patch_at=2))
    other_text = ExprAdapter(GreedyBytes, decoder=lambda obj, ctx: obj.decode("latin-1"),
                             encoder=lambda obj, ctx: obj.encode("latin-1"))
    saved = ubus._TEXT
    try:
        ubus._TEXT = other_text
        latin = levels(3)
    finally:
        ubus._TEXT = saved
    with pytest.raises(TypeError, match="one text adapter"):
        _codec_for(latin)
