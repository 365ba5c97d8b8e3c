"""sroamd.wire.flat: the codec derived from a flat Struct parses and builds
what construct does with the declaration itself, refuses what it refuses,
and refuses declarations it cannot mirror."""

import random

import pytest
from construct import (Byte, Bytes, Const, ConstructError, GreedyBytes, Int16ub, Int16ul,
                       Int32ub, Prefixed, Rebuild, Struct, len_, this)

from sroamd.wire.flat import FlatCodec
from sroamd.wire.flood import UPDATE_TLV, Update

MIXED = Struct(
    "magic" / Const(b"\x2c\x01"),
    "count" / Rebuild(Byte, len_(this.items)),
    "port" / Int16ub,
    "little" / Int16ul,  # (another byte order: a run of its own)
    "address" / Bytes(4),
    "items" / Bytes(this.count),
    "rest" / GreedyBytes,
)
MIXED_FIELDS = ("port", "little", "address", "items", "rest")


def random_mixed(rng):
    return (rng.randrange(1 << 16), rng.randrange(1 << 16), rng.randbytes(4),
            rng.randbytes(rng.randrange(256)), rng.randbytes(rng.randrange(8)))


def as_tuple(container, fields):
    return tuple(container[name] for name in fields)


def test_update_codec_agrees_with_the_declaration():
    rng = random.Random(44)
    codec = FlatCodec(UPDATE_TLV, fields=Update._fields, make=Update)
    for _ in range(500):
        key = rng.randbytes(rng.randrange(0, 40))
        update = Update(key, rng.randrange(1 << 16), rng.randbytes(rng.randrange(0, 248 - len(key))),
                        rng.randrange(1 << 32))
        built = UPDATE_TLV.build(update._asdict())
        assert codec.build(update) == built
        assert codec.parse(built) == update
        assert Update(**{k: v for k, v in UPDATE_TLV.parse(built).items()
                         if k in Update._fields}) == update


def test_mixed_declaration_agrees_and_batches():
    rng = random.Random(7)
    codec = FlatCodec(MIXED, fields=MIXED_FIELDS)
    items = [random_mixed(rng) for _ in range(50)]
    for item in items:
        built = MIXED.build(dict(zip(MIXED_FIELDS, item)))
        assert codec.build(item) == built
        assert codec.parse(built) == as_tuple(MIXED.parse(built), MIXED_FIELDS)
    # A batch: the same bytes as one at a time (rest empty: greedy is last).
    items = [item[:4] + (b"",) for item in items]
    raw = codec.build_many(items)
    assert raw == b"".join(codec.build(item) for item in items)
    codec_no_rest = FlatCodec(MIXED, fields=MIXED_FIELDS)
    parsed, end = codec_no_rest.parse_many(raw[:len(codec.build(items[0]))], 1)
    assert parsed == [items[0]] and end == len(codec.build(items[0]))


def test_fixed_size_is_known():
    assert FlatCodec(Struct("a" / Byte, "b" / Bytes(3), "c" / Int32ub)).size == 8
    assert FlatCodec(UPDATE_TLV).size is None


@pytest.mark.parametrize("data", [
    b"",                                            # nothing
    b"\x2c\x01\x03\x00",                            # header cut short
    b"\x2d\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # wrong magic
    b"\x2c\x01\x05\x00\x01\x00\x02" + bytes(4) + b"abc",  # items shorter than count
])
def test_malformed_input_raises_what_construct_raises(data):
    codec = FlatCodec(MIXED, fields=MIXED_FIELDS)
    with pytest.raises(ConstructError):
        MIXED.parse(data)
    with pytest.raises(ConstructError):
        codec.parse(data)


def test_update_with_inconsistent_lengths_is_refused():
    codec = FlatCodec(UPDATE_TLV, fields=Update._fields)
    # length 7 but key length 3: the value's length would be negative.
    bad = bytes([2, 7, 0, 1, 0, 0, 0, 9, 3]) + b"abc"
    with pytest.raises(ConstructError):
        UPDATE_TLV.parse(bad)
    with pytest.raises(ConstructError):
        codec.parse(bad)


@pytest.mark.parametrize("item", [
    (70000, 1, bytes(4), b"", b""),        # port out of range
    (1, 1, bytes(3), b"", b""),            # address of the wrong length
    (1, 1, bytes(4), bytes(300), b""),     # count does not fit a byte
    (1, 1, "abcd", b"", b""),              # not bytes
])
def test_building_refuses_what_construct_refuses(item):
    codec = FlatCodec(MIXED, fields=MIXED_FIELDS)
    with pytest.raises(Exception):
        MIXED.build(dict(zip(MIXED_FIELDS, item)))
    with pytest.raises((ConstructError, TypeError)):
        codec.build(item)


@pytest.mark.parametrize("declaration", [
    Struct("a" / Byte, "b" / Prefixed(Byte, GreedyBytes)),       # not flat
    Struct("a" / Byte, "b" / Bytes(lambda ctx: ctx.a)),           # a lambda, not an expression
    Struct("a" / GreedyBytes, "b" / Byte),                        # greedy before the end
    Struct(Byte),                                                 # unnamed
    # Expressions over what is not an earlier field (generated code met a
    # NameError or UnboundLocalError at the first parse, not a refusal at
    # import):
    Struct("b" / Bytes(this.a), "a" / Byte),                      # a later field
    Struct("a" / Byte, "b" / Bytes(this._.a)),                    # the parent's
    Struct("a" / Byte, "b" / Bytes(this.c)),                      # no such field
    Struct("n" / Rebuild(Byte, this.m), "m" / Rebuild(Byte, 1)),  # a later Rebuild
])
def test_declarations_it_cannot_mirror_are_refused(declaration):
    with pytest.raises(TypeError):
        FlatCodec(declaration)


def test_fields_needed_to_build_must_be_given():
    with pytest.raises(ValueError):
        FlatCodec(UPDATE_TLV, fields=("key", "seqno"))


def test_bitstruct_word_agrees_with_the_declaration():
    """IPv6's first word (version, traffic class, flow label) is a BitStruct."""
    from sroamd.wire.ip import IPV6
    codec = FlatCodec(IPV6)
    assert codec.fields == ("traffic_class", "flow_label", "payload_length", "next_header",
                            "hop_limit", "src", "dst")
    rng = random.Random(6)
    for _ in range(200):
        item = (rng.randrange(256), rng.randrange(1 << 20), rng.randrange(1 << 16),
                rng.randrange(256), rng.randrange(256), rng.randbytes(16), rng.randbytes(16))
        built = IPV6.build({"vtf": {"traffic_class": item[0], "flow_label": item[1]},
                            "payload_length": item[2], "next_header": item[3],
                            "hop_limit": item[4], "src": item[5], "dst": item[6]})
        assert codec.build(item) == built
        assert codec.parse(built) == item
    wrong_version = bytes([0x40]) + bytes(39)
    with pytest.raises(ConstructError):
        IPV6.parse(wrong_version)
    with pytest.raises(ConstructError):
        codec.parse(wrong_version)
    with pytest.raises(ConstructError):  # a flow label over 20 bits
        codec.build((0, 1 << 20, 0, 0, 0, bytes(16), bytes(16)))


def test_bitstruct_that_is_no_word_is_refused():
    from construct import BitStruct, BitsInteger
    with pytest.raises(TypeError):
        FlatCodec(Struct("odd" / BitStruct("a" / BitsInteger(3), "b" / BitsInteger(2))))
