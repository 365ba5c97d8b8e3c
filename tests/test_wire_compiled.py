"""sroamd.wire.compiled: the compiled building it adds builds what
construct's interpreter builds, and refuses what it refuses."""

import pytest
from construct import Byte, Bytes, ConstructError, GreedyBytes, Int16ub, Struct, this

from sroamd.wire.compiled import FixedSized, GreedyRange, Prefixed

ITEM = Struct("kind" / Byte, "body" / Prefixed(Byte, GreedyBytes))
MESSAGE = Struct(
    "count" / Byte,
    "padded" / FixedSized(this.count * 2, GreedyRange(Int16ub)),
    "items" / GreedyRange(ITEM),
)
COMPILED = MESSAGE.compile()


@pytest.mark.parametrize("value", [
    {"count": 0, "padded": [], "items": []},
    {"count": 3, "padded": [1, 2], "items": [{"kind": 1, "body": b""}]},
    {"count": 4, "padded": [1, 2, 3, 4],
     "items": [{"kind": 7, "body": b"x" * 200}, {"kind": 0, "body": b"ab"}]},
])
def test_compiled_build_is_the_interpreted_build(value):
    built = MESSAGE.build(value)
    assert COMPILED.build(value) == built
    assert MESSAGE.parse(built)["items"] == value["items"]


def test_compiled_build_refuses_what_the_interpreter_refuses():
    too_long = {"count": 1, "padded": [1, 2], "items": []}  # 4 bytes in 2
    with pytest.raises(ConstructError):
        MESSAGE.build(too_long)
    with pytest.raises(ConstructError):
        COMPILED.build(too_long)
    oversized = {"count": 0, "padded": [], "items": [{"kind": 1, "body": b"x" * 256}]}
    for construct in (MESSAGE, COMPILED):
        with pytest.raises(Exception):  # (compiled: struct.error from the length byte)
            construct.build(oversized)


def test_compiled_source_builds_without_the_interpreter():
    """The three build in the generated code (not linked back to the
    interpreter), which is what they are for."""
    source = COMPILED.source
    for name in ("build_prefixed_", "build_fixedsized_", "build_greedyrange_"):
        assert name in source
    assert Bytes(4).compile().build(b"abcd") == b"abcd"
