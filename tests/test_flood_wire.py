"""The flood TLVs against the bytes of two real C sroamd instances."""

import pytest

from captures import load_jsonl
from sroamd.wire.flood import (HANDSHAKE_BYTES, FloodFormatError, Update, build_update,
                               parse_handshake, parse_tlvs)


def test_every_captured_chunk_parses_and_rebuilds_byte_exact():
    frames = load_jsonl("flood-c-sroamd.jsonl")
    updates_seen = 0
    for frame in frames:
        raw = bytes.fromhex(frame["hex"])
        if raw == HANDSHAKE_BYTES:
            parse_handshake(raw)
            continue
        updates, used = parse_tlvs(raw)
        assert used == len(raw)
        assert b"".join(build_update(u) for u in updates) == raw
        updates_seen += len(updates)
    assert updates_seen == 6


def test_captured_values_decode_as_documented():
    raw = bytes.fromhex(load_jsonl("flood-c-sroamd.jsonl")[4]["hex"])
    assoc, lease6 = parse_tlvs(raw)[0]
    assert assoc == Update(bytes.fromhex("027e477967bcf4"), 0,
                           bytes.fromhex("3f17adf6da335b37"), 5400)
    assert lease6.key == bytes.fromhex("0120010db8444497a2") and lease6.time == 3600


def test_pad1_padn_and_unknown_tlvs_are_skipped():
    update = Update(b"\x00\xc0\x00\x02\x01", 1, b"\x02" * 6, 30)
    raw = b"\x00\x00" + b"\x01\x03abc" + b"\x09\x02zz" + build_update(update) + b"\x00"
    assert parse_tlvs(raw) == ([update], len(raw))


@pytest.mark.parametrize("cut", range(1, 20))
def test_partial_tlv_waits_for_more(cut):
    raw = build_update(Update(b"\x00\xc0\x00\x02\x01", 1, b"\x02" * 6, 30))
    updates, used = parse_tlvs(raw[:cut])
    assert updates == [] and used == 0
    assert parse_tlvs(raw)[1] == len(raw)


@pytest.mark.parametrize("raw", [
    bytes([2, 3, 0, 0, 0]),                       # Update shorter than its fixed part
    bytes([2, 7, 0, 1, 0, 0, 0, 9, 1]),           # key length past the body
    bytes([2, 8, 0, 1, 0, 0, 0, 9, 200, 0]),
])
def test_malformed_update_raises(raw):
    with pytest.raises(FloodFormatError):
        parse_tlvs(raw)


def test_bad_handshake_raises():
    for raw in (b"\x2c\x02\x00\x00", b"GET ", b"\x00\x00\x00\x00"):
        with pytest.raises(FloodFormatError):
            parse_handshake(raw)


def test_oversized_datum_is_refused():
    with pytest.raises(FloodFormatError):
        build_update(Update(b"\x05" * 200, 0, b"x" * 60, 1))


def test_round_trip_extremes():
    for update in (Update(b"", 0, b"", 0), Update(b"\x02" + b"\xff" * 6, 65535, b"", 0xFFFFFFFF),
                   Update(b"k" * 100, 1, b"v" * 148, 5)):
        assert parse_tlvs(build_update(update))[0] == [update]


def test_long_runs_round_trip():
    """Bursts are parsed and built as runs of Updates: a long run, broken by
    a pad and a marker, cut anywhere."""
    from sroamd.wire.flood import DUMP_BEGIN, DUMP_BEGIN_BODY, build_updates, parse_stream
    updates = [Update(bytes([0]) + n.to_bytes(4, "big"), n & 0xFFFF, n.to_bytes(6, "big"),
                      n * 7) for n in range(773)]
    raw = build_updates(updates)
    assert raw == b"".join(build_update(u) for u in updates)
    stream = raw[:500] + b"\x00" + DUMP_BEGIN + raw[500:]
    assert parse_stream(stream) == (updates, len(stream), [DUMP_BEGIN_BODY])
    cut = len(stream) - 3
    parsed, used, _ = parse_stream(stream[:cut])
    assert parsed == updates[:-1] and used == len(stream) - len(build_update(updates[-1]))
