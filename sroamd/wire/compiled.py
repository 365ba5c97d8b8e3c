"""What construct's compiled mode lacks for our declarations (issue 11).

construct 2.10 compiles Prefixed and FixedSized for parsing only, and
GreedyRange not at all: building them falls back to the interpreter (linked
code), which made most of the build time of a DHCP reply (its options are
Prefixed) and of an RA (its options are a GreedyRange of FixedSized).  The
classes here are construct's own, unchanged in meaning and in interpreted
use, with the code generator's build side added (_emitbuild: Python source
for building, as construct's compiled classes have).  Parsing stays as
construct compiles it (or interprets it, for GreedyRange).
"""

from __future__ import annotations

from construct import FixedSized as _FixedSized
from construct import GreedyRange as _GreedyRange
from construct import Prefixed as _Prefixed


class Prefixed(_Prefixed):
    """The subcon is built into a buffer of its own, then its length (the
    length field, compiled) and the buffer are written."""

    def _emitbuild(self, code):
        if self.includelength:
            raise NotImplementedError  # (not used here: left to the interpreter)
        fname = f"build_prefixed_{code.allocateId()}"
        # Generated code sees obj (the value), io (the stream) and this.
        block = f"""
            def {fname}(obj, io, this):
                outer = io
                io = BytesIO()
                value = {self.subcon._compilebuild(code)}
                data = io.getvalue()
                io = outer
                obj = len(data)
                {self.lengthfield._compilebuild(code)}
                io.write(data)
                return value
        """
        code.append(block)
        return f"{fname}(obj, io, this)"


class FixedSized(_FixedSized):
    """The subcon built into a buffer of its own, padded with zeros to the
    length; longer than the length is an error, as when interpreted."""

    def _emitbuild(self, code):
        fname = f"build_fixedsized_{code.allocateId()}"
        block = f"""
            def {fname}(obj, io, this):
                length = {self.length}
                if length < 0:
                    raise PaddingError("length cannot be negative")
                outer = io
                io = BytesIO()
                value = {self.subcon._compilebuild(code)}
                data = io.getvalue()
                io = outer
                if len(data) > length:
                    raise PaddingError("subcon build %d bytes but was allowed only %d"
                                       % (len(data), length))
                io.write(data)
                io.write(bytes(length - len(data)))
                return value
        """
        code.append(block)
        return f"{fname}(obj, io, this)"


class GreedyRange(_GreedyRange):
    """Every item built in turn (what the interpreter does)."""

    def _emitbuild(self, code):
        if self.discard:
            raise NotImplementedError  # (not used here: left to the interpreter)
        fname = f"build_greedyrange_{code.allocateId()}"
        block = f"""
            def {fname}(items, io, this):
                built = ListContainer()
                for index, obj in enumerate(items):
                    this['_index'] = index
                    built.append({self.subcon._compilebuild(code)})
                return built
        """
        code.append(block)
        return f"{fname}(obj, io, this)"


class CompiledOnUse:
    """A declaration's compiled form (Struct.compile()), made at its first
    use: about 100 KB and a few ms per format, which a node that never
    serves clients (a relay, a flooding-only node) need not spend."""

    def __init__(self, declaration):
        self.declaration = declaration
        self._compiled = None

    def compiled(self):
        if self._compiled is None:
            self._compiled = self.declaration.compile()
        return self._compiled

    def parse(self, data, **context):
        return self.compiled().parse(data, **context)

    def build(self, obj, **context):
        return self.compiled().build(obj, **context)
