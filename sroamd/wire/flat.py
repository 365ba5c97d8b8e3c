"""Fast parse and build for flat construct Structs, derived from the declaration.

construct's compiled mode (Struct.compile()) still makes a Container for every
struct parsed or built and evaluates each field through a dict: about 3 us an
Update TLV, most of a relay's CPU in a burst (issue 11).  A *flat* Struct
(fixed-size integers, Const, Rebuild, Bytes of a fixed length or of a length
given by earlier fields, a BitStruct of unsigned bit fields filling 1, 2, 4
or 8 bytes, GreedyBytes last) needs none of that: consecutive
fixed-size fields are one struct.Struct, Bytes are slices.  FlatCodec reads
such a declaration and generates, once, Python source for it, as construct's
compiler does, but working on tuples and local variables:

    UPDATE = FlatCodec(UPDATE_TLV, fields=("key", "seqno", "value", "time"))
    UPDATE.parse_many(data, count) -> ([(key, seqno, value, time), ...], end)
    UPDATE.build_many([(key, seqno, value, time), ...]) -> bytes

The declaration stays the only description of the format: the codec takes
every size, constant and length expression from it (Rebuild and Bytes
lengths are construct expressions; their repr is Python source, which is
what construct's compiler uses too), and refuses at import any Struct it
cannot mirror exactly.  tests/test_wire_flat.py checks that codec and
declaration agree, on captures and on random input.

Semantics are construct's, with the checks compiled code leaves out: a Const
that does not match raises ConstError, input too short StreamError (never a
silently short slice), a Bytes field of the wrong length at build
StreamError, an integer out of range FormatFieldError.
"""

from __future__ import annotations

import re
import struct
from typing import Sequence

from construct import (BitsInteger, Bytes, Const, ConstError, FormatField, FormatFieldError,
                       GreedyBytes, Rebuild, Renamed, StreamError, Struct, Transformed)
from construct.lib import bytes2bits

_WORD_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

_THIS_FIELD = re.compile(r"this\[['\"](\w+)['\"]\]")


def _expression_source(expr, what: str) -> str:
    """Python source of a construct expression over earlier fields, with
    this['name'] turned into the local v_name."""
    if isinstance(expr, int):
        return repr(expr)
    if type(expr).__module__ != "construct.expr":
        raise TypeError(f"{what}: not a construct expression ({expr!r}): cannot be mirrored")
    source = repr(expr)
    if "lambda" in source or "<" in source:
        raise TypeError(f"{what}: expression {source!r} cannot be mirrored")
    mirrored = _THIS_FIELD.sub(r"v_\1", source)
    if re.search(r"\bthis\b", mirrored):  # (this._, the parent's: not mirrored)
        raise TypeError(f"{what}: expression {source!r} cannot be mirrored")
    return mirrored


def _names_of(source: str | None) -> list[str]:
    """The fields a mirrored expression reads (its v_ names)."""
    return re.findall(r"\bv_(\w+)", source) if source else []


class _Field:
    """One field of the Struct: fixed (a struct format) or variable (Bytes of
    a computed length, GreedyBytes)."""

    def __init__(self, name: str, subcon):
        self.name = name
        self.const = None  # the value a Const must have
        self.rebuild = None  # source of a Rebuild's expression
        self.format = None  # struct format (without byte order) when fixed
        self.order = ">"
        self.length = None  # source of a variable Bytes' length
        self.greedy = False
        self.fixed_bytes = None  # length of a fixed Bytes field (checked at build)
        # A BitStruct: [(name, width, shift, const or None)], most significant first.
        self.bits: list[tuple[str, int, int, int | None]] | None = None
        if isinstance(subcon, Const):
            self.const = subcon.value
            subcon = subcon.subcon
        elif isinstance(subcon, Rebuild):
            self.rebuild = _expression_source(subcon.func, name)
            subcon = subcon.subcon
        if isinstance(subcon, FormatField):
            self.order, self.format = subcon.fmtstr[0], subcon.fmtstr[1:]
        elif type(subcon) is Bytes:
            if isinstance(subcon.length, int):
                self.format = f"{subcon.length}s"
                self.fixed_bytes = subcon.length
            else:
                self.length = _expression_source(subcon.length, name)
        elif subcon is GreedyBytes:
            self.greedy = True
        elif (isinstance(subcon, Transformed) and subcon.decodefunc is bytes2bits
              and isinstance(subcon.subcon, Struct)):
            self._bit_fields(subcon.subcon)
        else:
            raise TypeError(f"field {name!r}: {subcon!r} is not a flat field")
        if (self.const is not None or self.rebuild is not None) and self.format is None:
            raise TypeError(f"field {name!r}: Const and Rebuild only over fixed-size fields")

    def _bit_fields(self, struct_: Struct) -> None:
        """A BitStruct of unsigned BitsInteger (or Const over one): one word."""
        members = []
        for member in struct_.subcons:
            inner, const = getattr(member, "subcon", None), None
            if isinstance(inner, Const):
                inner, const = inner.subcon, inner.value
            if (not isinstance(member, Renamed) or not member.name
                    or type(inner) is not BitsInteger or not isinstance(inner.length, int)
                    or inner.signed or inner.swapped):
                raise TypeError(f"field {self.name!r}: {member!r} is not an unsigned bit field")
            members.append((member.name, inner.length, const))
        total = sum(width for _, width, _ in members)
        if total % 8 or total // 8 not in _WORD_FORMATS:
            raise TypeError(f"field {self.name!r}: {total} bits is not a 1, 2, 4 or 8-byte word")
        self.format = _WORD_FORMATS[total // 8]
        self.bits, shift = [], total
        for name, width, const in members:
            shift -= width
            self.bits.append((name, width, shift, const))

    def value_names(self) -> list[str]:
        """The names this field gives values (a BitStruct's are its members')."""
        return [b[0] for b in self.bits] if self.bits else [self.name]

    def given_names(self) -> list[str]:
        """The names whose values building needs (not constant nor derived)."""
        if self.const is not None or self.rebuild is not None:
            return []
        if self.bits:
            return [name for name, _w, _s, const in self.bits if const is None]
        return [self.name]

    def constants(self) -> list[str]:
        """The names whose values are constants (C_name in generated code)."""
        if self.bits:
            return [name for name, _w, _s, const in self.bits if const is not None]
        return [self.name] if self.const is not None else []

    def unpacked(self) -> str:
        """The variable a struct unpack puts this field in."""
        return f"w_{self.name}" if self.bits else f"v_{self.name}"


class FlatCodec:
    """parse/build of a flat Struct on tuples of the named fields (see the module doc)."""

    def __init__(self, declaration: Struct, fields: Sequence[str] | None = None,
                 make=None):
        """fields: the fields of parse's tuples and build's items, in that
        order (by default every field not a Const or a Rebuild); make: what
        parse makes of each item's fields (make(*fields), e.g. a NamedTuple
        class; by default a tuple)."""
        parts = []
        for subcon in declaration.subcons:
            if not isinstance(subcon, Renamed) or not subcon.name:
                raise TypeError(f"{subcon!r}: every field must be named")
            parts.append(_Field(subcon.name, subcon.subcon))
        for field in parts[:-1]:
            if field.greedy:
                raise TypeError(f"field {field.name!r}: GreedyBytes only last")
        names = [name for f in parts for name in f.value_names()]
        if len(set(names)) != len(names):
            raise TypeError(f"field names repeat: {names}")
        needed = [name for f in parts for name in f.given_names()]
        self._check_references(parts, needed)
        if fields is None:
            fields = [name for name in names if name in needed]
        for name in fields:
            if name not in names:
                raise ValueError(f"{name!r} is not a field of the declaration")
        missing = [name for name in needed if name not in fields]
        if missing:
            raise ValueError(f"fields {missing} are needed to build")
        self.fields = tuple(fields)
        self.declaration = declaration
        self._namespace = {"ConstError": ConstError, "StreamError": StreamError,
                           "FormatFieldError": FormatFieldError, "struct_error": struct.error,
                           "len_": len, "bytes": bytes, "make": make}
        runs = self._runs(parts)
        # Bytes of a fixed layout (None when a field's length varies).
        self.size = None if any(run[0].format is None for run in runs) else sum(
            run[-1] for run in runs)
        source = self._parse_source(runs, make) + self._build_source(parts, runs)
        self.source = source  # (for inspection, as construct's compiled .source)
        exec(compile(source, f"<flat {declaration!r}>", "exec"), self._namespace)
        self.parse_many = self._namespace["parse_many"]
        self.build_many = self._namespace["build_many"]
        # One item (the generated functions themselves: no method call between):
        # parse(data, pos=0) -> its fields (self.fields order, or make's);
        # build(values) -> its bytes from its fields (self.fields order).
        self.parse = self._namespace["parse_one"]
        self.build = self._namespace["build_one"]

    @staticmethod
    def _check_references(parts: list[_Field], given: list[str]) -> None:
        """Expressions read only what generated code has by then: a length,
        fields parsed before it; a Rebuild, fields given to build or derived
        before it (anything else, e.g. this._ or a later field, would be a
        NameError at the first parse or build, not a refusal here)."""
        parsed, built = set(), set(given)
        for f in parts:
            unknown = [n for n in _names_of(f.length) if n not in parsed]
            unknown += [n for n in _names_of(f.rebuild) if n not in built]
            if unknown:
                raise TypeError(f"field {f.name!r}: its expression reads {unknown}, "
                                "not fields it can have then")
            parsed.update(f.value_names())
            built.update(f.value_names())

    # -- code generation -------------------------------------------------------

    def _runs(self, parts: list[_Field]) -> list:
        """The fields grouped: consecutive fixed fields of one byte order
        become one struct.Struct (a run is a list of fields; a variable field
        is a run of its own)."""
        runs: list[list[_Field]] = []
        for field in parts:
            last = runs[-1] if runs else None
            if (field.format is not None and last and last[0].format is not None
                    and last[0].order == field.order):
                last.append(field)
            else:
                runs.append([field])
        for index, run in enumerate(runs):
            if run[0].format is not None:
                packer = struct.Struct(run[0].order + "".join(f.format for f in run))
                self._namespace[f"S{index}"] = packer
                run.append(packer.size)  # (the run's size, last)
        for field in parts:
            if field.const is not None:
                self._namespace[f"C_{field.name}"] = field.const
            for name, _width, _shift, const in field.bits or ():
                if const is not None:
                    self._namespace[f"C_{name}"] = const
        return runs

    def _parse_source(self, runs, make) -> str:
        """parse_many (a loop over count items) and parse_one, from one body."""
        body = []
        for index, run in enumerate(runs):
            first = run[0]
            if first.format is not None:
                fields, size = run[:-1], run[-1]
                targets = ", ".join(f.unpacked() for f in fields)
                body.append(f"{targets}, = S{index}.unpack_from(data, pos)")
                body.append(f"pos += {size}")
                for f in fields:
                    for name, width, shift, _const in f.bits or ():
                        body.append(f"v_{name} = (w_{f.name} >> {shift}) & {(1 << width) - 1}")
                    for name in f.constants():
                        body.append(f"if v_{name} != C_{name}:")
                        body.append(f"    raise ConstError('parsing expected %r but parsed %r'"
                                    f" % (C_{name}, v_{name}))")
            elif first.greedy:
                body.append("if pos > end:")  # (what came before must be whole)
                body.append("    raise StreamError('stream read less than specified amount')")
                body.append(f"v_{first.name} = data[pos:]")
                body.append("pos = end")
            else:
                body.append(f"n = {first.length}")
                body.append("if n < 0:")
                body.append(f"    raise StreamError('length of {first.name} is negative: %d' % n)")
                body.append(f"v_{first.name} = data[pos:pos + n]")
                body.append("pos += n")
        body.append("if pos > end:")
        body.append("    raise StreamError('stream read less than specified amount')")
        values = ", ".join(f"v_{n}" for n in self.fields)
        item = f"make({values})" if make is not None else f"({values},)"
        prologue = ["    if not isinstance(data, bytes):",
                    "        data = bytes(data)",
                    "    end = len(data)",
                    "    try:"]
        epilogue = ["    except struct_error as e:",
                    "        raise StreamError(f'stream read less than specified amount: {e}')"
                    " from None"]
        many = (["def parse_many(data, count=1, pos=0):", "    out = []",
                 "    append = out.append"] + prologue + ["        for _ in range(count):"]
                + ["            " + line for line in body + [f"append({item})"]]
                + epilogue + ["    return out, pos", ""])
        one = (["def parse_one(data, pos=0):"] + prologue
               + ["        " + line for line in body + [f"return {item}"]] + epilogue + [""])
        return "\n".join(many + one) + "\n"

    def _build_source(self, parts: list[_Field], runs) -> str:
        """build_many (the items' bytes joined) and build_one, from one body."""
        body = []
        for f in parts:  # derived values, in declaration order
            if f.const is not None:
                body.append(f"v_{f.name} = C_{f.name}")
            elif f.rebuild is not None:
                body.append(f"v_{f.name} = {f.rebuild}")
            elif f.bits:
                for name, width, _shift, const in f.bits:
                    if const is not None:
                        body.append(f"v_{name} = C_{name}")
                    body.append(f"if not 0 <= v_{name} < {1 << width}:")
                    body.append(f"    raise FormatFieldError('{name}: %r does not fit"
                                f" {width} bits' % (v_{name},))")
                body.append(f"w_{f.name} = " + " | ".join(
                    f"(v_{name} << {shift})" for name, _w, shift, _c in f.bits))
        for f in parts:  # Bytes must be as long as declared
            if f.fixed_bytes is not None and f.const is None:
                body.append(f"if len(v_{f.name}) != {f.fixed_bytes}:")
                body.append(f"    raise StreamError('{f.name}: bytes object of wrong length')")
            elif f.length is not None:
                body.append(f"if len(v_{f.name}) != {f.length}:")
                body.append(f"    raise StreamError('{f.name}: bytes object of wrong length')")
        pieces = []  # the item's bytes, in order
        for index, run in enumerate(runs):
            first = run[0]
            if first.format is not None:
                pieces.append(f"S{index}.pack({', '.join(f.unpacked() for f in run[:-1])})")
            else:
                pieces.append(f"v_{first.name}")
        names = ", ".join(f"v_{n}" for n in self.fields)
        epilogue = ["    except struct_error as e:",
                    "        raise FormatFieldError(f'cannot build: {e}') from None"]
        many = (["def build_many(items):", "    out = []", "    append = out.append", "    try:",
                 f"        for {names}, in items:"]
                + ["            " + line for line in body + [f"append({p})" for p in pieces]]
                + epilogue + ["    return b''.join(out)", ""])
        one = (["def build_one(values):", "    try:", f"        {names}, = values"]
               + ["        " + line for line in body + ["return " + " + ".join(pieces)]]
               + epilogue + [""])
        return "\n".join(many + one) + "\n"
