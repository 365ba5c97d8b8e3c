"""Fast decode/encode of ubus frames as dicts, derived from their construct declaration.

construct interprets the ubus declaration (sroamd/wire/ubus.py) at about 250 us
a frame, and ``Struct.compile()`` does not help: the blob attribute lists,
blobmsg tables nested per level and the adapters are linked back to the
interpreter, and what compiles still makes a Container per attribute that is
then turned into a dict.  An AP is 10-20 times slower: milliseconds per
station event, seconds for a ``leases`` reply of 2,000 entries (issue 11).

``BlobCodec`` reads the declaration once and keeps what it says as tables:

- the message header's struct format and version constant (from UbusMsgHdr's
  FormatFields and Const);
- for each of the 256 values of an attribute's first byte, what the
  declaration makes of it (the id byte adapters and mappings are *run* on
  every byte value: extended bit, 7-bit id, name), and for building, the byte
  each name builds to;
- the attribute header's layout (a 1-byte id and the 24-bit length, which
  counts the header: the length adapter is run to learn by how much), the
  alignment (Aligned's modulus);
- for each attribute and blobmsg type, what its payload is (the Switch
  cases): a fixed-size integer or double (its struct format), a
  NUL-terminated string, bytes, a nested blobmsg list, the subscriber list;
  the nesting depth (the number of declared levels); the blobmsg name's length
  field and terminator; the text adapter (run as is, for names and strings).

It then walks frames with ``struct.unpack_from`` and slices straight to the
dicts ``decode_message`` returns, and builds dicts straight to bytes into one
bytearray (lengths patched in place), blobmsg name headers cached (a
``leases`` reply repeats four names 2,000 times).  A declaration it does not
recognise is refused at import (TypeError): change the declaration, and the
codec must learn the change, it cannot drift from it silently.

The codec decides only what it is sure of.  Anything unusual (a malformed
frame, a value of an unexpected type, a length out of range) raises
``Fallback`` and the caller runs the interpreted declaration, which gives
the authoritative answer: the same error (UbusFormatError with construct's
message) or the same result.  tests/test_ubus_fast.py checks the two agree on
the captures and on random and mutated frames and values, and that valid
frames never fall back.
"""

from __future__ import annotations

import struct
from itertools import repeat
from collections.abc import Mapping as _MappingABC

from construct import (Adapter, Aligned, BytesInteger, Const, ConstructError, FocusedSeq,
                       FormatField, GreedyBytes, Mapping, NullTerminated, Prefixed, Renamed,
                       Struct, Switch, Terminated)


class Fallback(Exception):
    """The fast path does not decide this one: ask the declaration.  Its
    argument, when there is one, says what is wrong with a frame."""


# What a payload is, as the codec handles it.
FIXED, CSTRING, BYTES, LIST, SUBSCRIBERS, REJECT = range(6)

_WORD = struct.Struct(">I")   # an attribute header: 1-byte id, 24-bit length


def _bare(c):
    while isinstance(c, Renamed):
        c = c.subcon
    return c


def _fields(struct_decl) -> dict:
    if not isinstance(struct_decl, Struct):
        raise TypeError(f"{struct_decl!r}: a Struct expected")
    return {s.name: _bare(s) for s in struct_decl.subcons if isinstance(s, Renamed)}


def _byte_table(field) -> list:
    """What the declaration's 1-byte field makes of each byte value (None:
    it refuses the byte)."""
    if field.sizeof() != 1:
        raise TypeError(f"{field!r}: a 1-byte id field expected")
    table = []
    for b in range(256):
        try:
            table.append(field.parse(bytes([b])))
        except ConstructError:
            table.append(None)
    return table


def _byte_of(field, table) -> dict:
    """name -> the byte the declaration builds for it (checked against the parse table)."""
    out = {}
    for value in table:
        if value is not None and value not in out:
            b = field.build(value)[0]
            if table[b] != value:
                raise TypeError(f"{field!r}: {value!r} does not round-trip")
            out[value] = b
    return out


class _Blob:
    """One blob attribute declaration: Aligned(m, Struct(id, payload=Prefixed(len, X)))."""

    def __init__(self, decl):
        decl = _bare(decl)
        if not isinstance(decl, Aligned) or not isinstance(decl.modulus, int):
            raise TypeError(f"{decl!r}: a blob attribute is Aligned to a fixed modulus")
        self.modulus = decl.modulus
        fields = list(_bare(decl.subcon).subcons)
        if len(fields) != 2:
            raise TypeError(f"{decl!r}: a blob attribute is an id and a payload")
        self.id_field = _bare(fields[0])
        self.by_byte = _byte_table(self.id_field)
        self.byte_of = _byte_of(self.id_field, self.by_byte)
        prefixed = _bare(fields[1])
        self.header_extra = _length_extra(prefixed)
        self.payload = prefixed.subcon


def _length_extra(prefixed) -> int:
    """How much more than the payload the 24-bit length counts (the 4-byte
    header, for libubox): learnt by running the length field's adapter."""
    if not isinstance(prefixed, Prefixed) or prefixed.includelength:
        raise TypeError(f"{prefixed!r}: a Prefixed payload expected")
    lengthfield = prefixed.lengthfield
    inner = lengthfield.subcon if isinstance(lengthfield, Adapter) else lengthfield
    if not (isinstance(inner, BytesInteger) and inner.length == 3 and not inner.signed
            and not inner.swapped):
        raise TypeError(f"{lengthfield!r}: a 24-bit big-endian length expected")
    extra = lengthfield.build(0)
    extra = int.from_bytes(extra, "big")
    if lengthfield.parse(bytes([0, 0, extra])) != 0:
        raise TypeError(f"{lengthfield!r}: the length adapter is not an offset")
    return extra


def _whole_fixed(c):
    """FocusedSeq(value=FormatField, Terminated) -> its struct, else None."""
    if isinstance(c, FocusedSeq):
        subs = [_bare(s) for s in c.subcons]
        if len(subs) == 2 and subs[1] is Terminated and isinstance(subs[0], FormatField):
            return struct.Struct(subs[0].fmtstr)
    return None


def _text_of(c):
    """NullTerminated(text adapter over GreedyBytes), NUL-terminated -> the adapter."""
    if (isinstance(c, NullTerminated) and c.term == b"\0" and not c.include and c.consume
            and c.require and isinstance(c.subcon, Adapter) and c.subcon.subcon is GreedyBytes):
        return c.subcon
    return None


class BlobCodec:
    """dict <-> frame for the ubus declaration (see the module doc)."""

    def __init__(self, message, header, attr, subscriber, blobmsg_list, reject_type,
                 attrs_type, py_of_type, choose):
        """message/header/attr/subscriber/blobmsg_list: the declarations
        (UbusMessage, UbusMsgHdr, UbusAttr, the subscriber attribute,
        BlobmsgList); reject_type/attrs_type: the declaration's classes for
        "never valid here" and "attributes to the end"; py_of_type: blobmsg
        type -> what decoding makes of the parsed value (where not the value
        itself); choose(value, depth) -> (blobmsg type, value to store), the
        encoder's type choice, shared with the interpreted encoder."""
        self.py_of_type = py_of_type
        self.choose = choose
        self.reject_type, self.attrs_type = reject_type, attrs_type
        self.fallbacks = 0   # frames/values the declaration had to decide (tests watch it)
        self._header(header)
        top = _fields(message)["attrs"]
        top_fields = _fields(top)
        self.top_ok = _byte_table(top_fields["id"])
        self.top_byte = _byte_of(top_fields["id"], self.top_ok)
        self.top_extra = _length_extra(top_fields["payload"])
        if not isinstance(top_fields["payload"].subcon, attrs_type) \
                or _bare(top_fields["payload"].subcon.subcon) is not _bare(attr):
            raise TypeError("the message's payload: the message attributes expected")
        self._message_attrs(attr, subscriber)
        self._blobmsg(blobmsg_list)
        self._name_cache: dict[str, bytes] = {}
        self._texts: dict[bytes, str] = {}
        for name, (_, kind, arg) in self.attr_kinds.items():
            if kind == CSTRING and arg is not self.name_text:
                raise TypeError(f"message attribute {name}: the blobmsg text adapter expected"
                                " (decoding caches its readings)")
        self._members = self._members_encoder()
        self._list = self._list_decoder()

    # -- reading the declaration ------------------------------------------------

    def _header(self, header):
        fmt, names = ">", []
        self.version = None
        self.types = self.type_codes = None
        for name, c in _fields(header).items():
            if isinstance(c, Const):
                if name != "version":
                    raise TypeError(f"header field {name}: only the version is a Const")
                self.version, c = c.value, c.subcon
            elif isinstance(c, Mapping):
                if name != "type":
                    raise TypeError(f"header field {name}: only the type is a Mapping")
                self.types, self.type_codes = c.decmapping, c.encmapping
                c = c.subcon
            if not isinstance(c, FormatField) or c.fmtstr[0] != ">":
                raise TypeError(f"header field {name}: a big-endian FormatField expected")
            fmt += c.fmtstr[1:]
            names.append(name)
        if names != ["version", "type", "seq", "peer"] or self.types is None:
            raise TypeError(f"the message header's fields are {names}")
        # The header and the message blob's header word, read at once.
        self.head = struct.Struct(fmt + "I")

    def _payload_kind(self, c, blobmsg=False):
        """(kind, argument) of a Switch case."""
        c = _bare(c)
        fixed = _whole_fixed(c)
        if fixed is not None:
            return FIXED, fixed
        if isinstance(c, FormatField) and blobmsg:  # (the body's Terminated follows)
            return FIXED, struct.Struct(c.fmtstr)
        if isinstance(c, FocusedSeq):
            subs = [_bare(s) for s in c.subcons]
            if len(subs) == 2 and subs[1] is Terminated and _text_of(subs[0]):
                return CSTRING, _text_of(subs[0])
        if blobmsg and _text_of(c):
            return CSTRING, _text_of(c)
        if c is GreedyBytes and blobmsg:
            return BYTES, None
        if isinstance(c, self.attrs_type):
            return LIST, c
        if isinstance(c, self.reject_type):
            return REJECT, None
        raise TypeError(f"{c!r}: a payload the fast codec does not know")

    def _kind_shape(self, c):
        """What a blobmsg value case is, comparably between levels."""
        kind, arg = self._payload_kind(c, blobmsg=True)
        return kind, arg.format if kind == FIXED else arg

    def _message_attrs(self, attr, subscriber):
        blob = _Blob(attr)
        self.modulus = blob.modulus
        self.extra = blob.header_extra
        if not isinstance(blob.payload, Switch) or repr(blob.payload.keyfunc) != "this['id']":
            raise TypeError("the message attribute's payload: a Switch on its id expected")
        self.attr_by_byte = [None] * 256
        self.attr_kinds = {}
        sub = _Blob(subscriber)
        sub_fixed = _whole_fixed(_bare(sub.payload))
        if sub_fixed is None or (sub.modulus, sub.header_extra) != (self.modulus, self.extra):
            raise TypeError("a subscriber: a fixed-size integer attribute expected")
        self.sub_ok, self.sub_byte, self.sub_fixed = sub.by_byte, sub.byte_of[0], sub_fixed
        for b, name in enumerate(blob.by_byte):
            if name is None:
                continue
            case = _bare(blob.payload.cases.get(name, blob.payload.default))
            kind, arg = self._payload_kind(case)
            if kind == LIST:
                inner = _bare(arg.subcon)
                if inner is _bare(subscriber):
                    kind, arg = SUBSCRIBERS, None
                else:   # a blobmsg list (data, signature): read in _blobmsg
                    self._data_list = case
                    kind, arg = LIST, None
            elif kind in (BYTES, REJECT):
                raise TypeError(f"message attribute {name}: unexpected payload")
            self.attr_by_byte[b] = (name, kind, arg)
            self.attr_kinds[name] = (b, kind, arg)

    def _blobmsg(self, blobmsg_list):
        if _bare(self._data_list) is not _bare(blobmsg_list):
            raise TypeError("data/signature: the declared blobmsg list expected")
        # Levels: each _Attrs(attribute(children)) down to the Reject.
        level, depth = _bare(blobmsg_list), 0
        first = None
        while isinstance(level, self.attrs_type):
            depth += 1
            blob = _Blob(level.subcon)
            body = _fields(_bare(blob.payload))
            value = body["value"]
            if not isinstance(value, Switch) or repr(value.keyfunc) != "this['_']['type']":
                raise TypeError("a blobmsg value: a Switch on the attribute's type expected")
            cases = {t: _bare(c) for t, c in value.cases.items()}
            # Every level alike but for its children (the codec reads the first).
            shape = (blob.by_byte, blob.modulus, blob.header_extra,
                     {t: "children" if isinstance(c, (self.attrs_type, self.reject_type))
                      else self._kind_shape(c) for t, c in cases.items()})
            if first is None:
                first = (blob, body, value, shape)
            elif shape != first[3]:
                raise TypeError(f"blobmsg level {depth} differs from the first")
            nested = {cases[t] for t in cases if isinstance(cases[t], self.attrs_type)
                      or isinstance(cases[t], self.reject_type)}
            if len(nested) != 1:
                raise TypeError("blobmsg tables and arrays: one children declaration per level")
            level = nested.pop()
        if not isinstance(level, self.reject_type):
            raise TypeError("the deepest blobmsg level: a rejection expected")
        self.max_depth = depth
        blob, body, value, _ = first
        if (blob.modulus, blob.header_extra) != (self.modulus, self.extra):
            raise TypeError("blobmsg attributes: the blob attribute layout expected")
        subs = [_bare(s) for s in _bare(blob.payload).subcons]
        if subs[-1] is not Terminated or len(subs) != 3:
            raise TypeError("a blobmsg body: name, value, Terminated")
        # The name: Aligned(FocusedSeq(Prefixed(length, text), Const(NUL))).
        name = body["name"]
        seq = _bare(name.subcon)
        parts = [_bare(s) for s in seq.subcons]
        if not (isinstance(name, Aligned) and name.modulus == self.modulus
                and isinstance(seq, FocusedSeq) and len(parts) == 2
                and isinstance(parts[0], Prefixed) and not parts[0].includelength
                and isinstance(parts[0].lengthfield, FormatField)
                and isinstance(parts[1], Const) and isinstance(parts[1].value, bytes)):
            raise TypeError("a blobmsg name: length-prefixed text and a terminator expected")
        self.name_len = struct.Struct(parts[0].lengthfield.fmtstr)
        self.name_text = parts[0].subcon
        if not (isinstance(self.name_text, Adapter) and self.name_text.subcon is GreedyBytes):
            raise TypeError("a blobmsg name: a text adapter over GreedyBytes expected")
        self.name_term = parts[1].value
        if len(self.name_term) != 1:
            raise TypeError("a blobmsg name: a 1-byte terminator expected")
        self.name_term_byte = self.name_term[0]
        if self.name_len.format[0] != ">":
            raise TypeError("a blobmsg name: a big-endian length expected")
        self.bm_head = struct.Struct(">I" + self.name_len.format[1:])
        self.bm_by_byte = [None] * 256
        self.bm_kinds = {}
        for b, btype in enumerate(blob.by_byte):
            if btype is None:
                continue
            kind, arg = self._payload_kind(value.cases.get(btype, value.default), blobmsg=True)
            if kind == REJECT:
                kind = LIST
            if kind == CSTRING and arg is not self.name_text:
                raise TypeError("blobmsg strings and names: one text adapter expected"
                                " (decoding caches its readings)")
            self.bm_by_byte[b] = (btype, kind, arg, btype == "table",
                                  self.py_of_type.get(btype))
            self.bm_kinds[btype] = (b, kind, arg)

    # -- decoding -----------------------------------------------------------------

    def decode(self, raw) -> dict:
        """A frame -> the dict decode_message returns; Fallback if not sure."""
        try:
            return self._decode(raw)
        except Fallback:
            raise
        except Exception:
            raise Fallback from None

    def _decode(self, raw):
        if type(raw) is not bytes:
            raw = bytes(raw)
        n = len(raw)
        if n < self.head.size:
            raise Fallback
        version, tcode, seq, peer, word = self.head.unpack_from(raw)
        mtype = self.types.get(tcode)
        if version != self.version or mtype is None or self.top_ok[word >> 24] is None:
            raise Fallback
        if (word & 0xFFFFFF) - self.top_extra + self.head.size != n \
                or (word & 0xFFFFFF) < self.top_extra:
            raise Fallback   # (the message blob is the whole rest of the frame)
        msg = {"type": mtype, "seq": seq, "peer": peer}
        pos, extra, modulus = self.head.size, self.extra, self.modulus
        unpack_word, by_byte = _WORD.unpack_from, self.attr_by_byte
        texts, text = self._texts, self._text
        while pos < n:
            if pos + 4 > n:
                raise Fallback
            word = unpack_word(raw, pos)[0]
            entry = by_byte[word >> 24]
            total = word & 0xFFFFFF
            start, end = pos + 4, pos + total - extra + 4
            if entry is None or total < extra or end > n:
                raise Fallback
            name, kind, arg = entry
            if kind == FIXED:
                if end - start != arg.size:
                    raise Fallback
                value = arg.unpack_from(raw, start)[0]
            elif kind == CSTRING:
                if raw.find(b"\0", start, end) != end - 1:
                    raise Fallback
                value = raw[start:end - 1]
                value = texts.get(value) or text(value)
            elif kind == LIST:
                value = self._list(raw, start, end, 1, True)
            else:
                value = self._subscribers(raw, start, end)
            pos = end + (-(end - pos) % modulus)
            if pos > n:
                raise Fallback
            msg[name] = value
        return msg

    def _subscribers(self, raw, pos, end):
        out, fixed, size = [], self.sub_fixed, self.sub_fixed.size
        while pos < end:
            if pos + 4 > end:
                raise Fallback
            word = _WORD.unpack_from(raw, pos)[0]
            if self.sub_ok[word >> 24] is None or (word & 0xFFFFFF) - self.extra != size:
                raise Fallback
            start = pos + 4
            out.append(fixed.unpack_from(raw, start)[0])
            pos = start + size
            pos += -(pos - start + 4) % self.modulus
            if pos > end:
                raise Fallback
        return out

    def _text(self, data: bytes) -> str:
        """The text adapter's reading of data, cached: names repeat (the keys of
        every client, every lease) and so do many strings (MACs, interfaces)."""
        text = self._texts.get(data)
        if text is None:
            text = self.name_text._decode(data, None, None)
            if len(data) <= 64 and len(self._texts) < 8192:
                self._texts[data] = text   # (bounded: the data comes from other processes)
        return text

    def _list_decoder(self):
        """The function that reads the blobmsg attributes in raw[pos:end] into
        a dict (a table's body) or a list; the codec's tables bound as closure
        variables (a get_clients reply has 6 tables a station)."""
        extra, modulus, term, max_depth = self.extra, self.modulus, self.name_term_byte, \
            self.max_depth
        unpack, by_byte, texts, text = self.bm_head.unpack_from, self.bm_by_byte, \
            self._texts, self._text
        name_at = 4 + self.name_len.size

        def read_list(raw, pos, end, depth, table):
            out = {} if table else []
            while pos < end:
                # The attribute header and the name's length, at once (an
                # attribute too short for both is malformed either way).
                if pos + name_at > end:
                    raise Fallback
                word, nlen = unpack(raw, pos)
                entry = by_byte[word >> 24]
                aend = pos + (word & 0xFFFFFF) - extra + 4
                npos = pos + name_at + nlen
                if entry is None or aend > end or npos >= aend or raw[npos] != term \
                        or aend < pos + 4:
                    raise Fallback
                btype, kind, arg, is_table, convert = entry
                vpos = npos + 1
                vpos += -(vpos - pos) % modulus
                if vpos > aend:
                    raise Fallback
                if kind == FIXED:
                    if aend - vpos != arg.size:
                        raise Fallback
                    value = arg.unpack_from(raw, vpos)[0]
                elif kind == CSTRING:
                    if raw.find(b"\0", vpos, aend) != aend - 1:
                        raise Fallback
                    value = raw[vpos:aend - 1]
                    value = texts.get(value) or text(value)
                elif kind == BYTES:
                    value = raw[vpos:aend]
                else:
                    if depth >= max_depth:   # (the declaration rejects it too)
                        raise Fallback("blobmsg nesting deeper than %d" % max_depth)
                    value = read_list(raw, vpos, aend, depth + 1, is_table)
                if convert is not None:
                    value = convert(value)
                if table:
                    name = raw[pos + name_at:npos]
                    out[texts.get(name) or text(name)] = value
                else:
                    out.append(value)
                pos = aend + (-(aend - pos) % modulus)
                if pos > end:
                    raise Fallback
            return out
        return read_list

    # -- encoding -----------------------------------------------------------------

    def encode(self, msg) -> bytes:
        """A dict as decode_message returns it -> the frame; Fallback if not sure."""
        try:
            return self._encode(msg)
        except Fallback:
            raise
        except Exception:
            raise Fallback from None

    def _encode(self, msg):
        size = self.head.size
        buf = bytearray(size)
        kinds = self.attr_kinds
        for name, value in msg.items():
            if name in ("type", "seq", "peer"):
                continue
            b, kind, arg = kinds[name]
            start = len(buf)
            buf += b"\0\0\0\0"
            if kind == FIXED:
                if name in ("active", "no_reply"):
                    value = int(value)   # (as encode_message: a flag may be a bool)
                buf += arg.pack(value)
            elif kind == CSTRING:
                if type(value) is not str or "\0" in value:
                    raise Fallback
                buf += arg._encode(value, None, None)
                buf += b"\0"
            elif kind == LIST:
                self._members(buf, value, 0, True)
            else:
                for sub in value:
                    self._sub(buf, sub)
            self._close(buf, start, b)
        total = len(buf) - size + self.top_extra
        if total > 0xFFFFFF:
            raise Fallback
        self.head.pack_into(buf, 0, self.version, self.type_codes[msg["type"]],
                            msg.get("seq", 0), msg.get("peer", 0),
                            self.top_byte[0] << 24 | total)
        return bytes(buf)

    def _sub(self, buf, value):
        start = len(buf)
        buf += b"\0\0\0\0"
        buf += self.sub_fixed.pack(value)
        self._close(buf, start, self.sub_byte)

    def _close(self, buf, start, idbyte):
        """Write the attribute header at start (now that its length is known) and pad."""
        total = len(buf) - start - 4 + self.extra
        if total > 0xFFFFFF:
            raise Fallback
        _WORD.pack_into(buf, start, idbyte << 24 | total)
        pad = -(len(buf) - start) % self.modulus
        if pad:
            buf += bytes(pad)

    def _name(self, name) -> bytes:
        """A blobmsg name's bytes: length, text, terminator, padding (cached)."""
        header = self._name_cache.get(name)
        if header is None:
            if type(name) is not str or "\0" in name:
                raise Fallback
            text = self.name_text._encode(name, None, None)
            header = self.name_len.pack(len(text)) + text + self.name_term
            header += bytes(-(len(header)) % self.modulus)
            if len(name) <= 64 and len(self._name_cache) < 4096:
                self._name_cache[name] = header   # (bounded: names come from data too)
        return header

    def _members_encoder(self):
        """The function that puts a table's items (table=True) or an array's
        values onto buf as blobmsg attributes.  One loop for both, scalars
        inline, the codec's tables bound as closure variables: a `leases`
        reply is 2,000 tables and 8,000 scalars, and the call per table is
        most of what a table costs."""
        choose, names, name_of = self.choose, self._name_cache, self._name
        word, pack_word_into, extra, modulus = _WORD.pack, _WORD.pack_into, self.extra, \
            self.modulus
        # blobmsg type -> (first byte << 24, kind, struct or text encoder)
        kinds = {btype: (b << 24, kind, arg._encode if kind == CSTRING else arg)
                 for btype, (b, kind, arg) in self.bm_kinds.items()}
        mapping_abc = _MappingABC
        pads = [bytes(-size % modulus) for size in range(modulus)]   # by size % modulus

        def members(buf, values, depth, table):
            if table:
                if type(values) is not dict and not isinstance(values, mapping_abc):
                    raise Fallback
                items = values.items()
            else:
                items = zip(repeat(""), values)
            for name, value in items:
                header = names.get(name) or name_of(name)
                btype, value = choose(value, depth)
                first, kind, arg = kinds[btype]
                if kind == FIXED:
                    payload = arg.pack(value)
                elif kind == CSTRING:
                    payload = arg(value, None, None) + b"\0"
                elif kind == BYTES:
                    if type(value) not in (bytes, bytearray):
                        raise Fallback
                    payload = value
                else:   # a table or an array: its length is known once it is built
                    start = len(buf)
                    buf += b"\0\0\0\0"
                    buf += header
                    members(buf, value, depth + 1, btype == "table")
                    size = len(buf) - start
                    if size - 4 + extra > 0xFFFFFF:
                        raise Fallback
                    pack_word_into(buf, start, first | (size - 4 + extra))
                    buf += pads[size % modulus]
                    continue
                size = 4 + len(header) + len(payload)
                if size - 4 + extra > 0xFFFFFF:
                    raise Fallback
                buf += word(first | (size - 4 + extra))
                buf += header
                buf += payload
                buf += pads[size % modulus]
        return members
