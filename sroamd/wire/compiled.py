"""What construct's compiled mode lacks for our declarations (issue 11).

construct 2.10 compiles Prefixed for parsing only: building one falls back
to the interpreter (linked code), which costs a DHCP reply most of its build
time.  Prefixed here is construct's Prefixed, unchanged in meaning and in
interpreted use, with the code generator's build side added: the subcon is
built (compiled) into a buffer of its own, then its length (the length
field, compiled) and the buffer are written.
"""

from __future__ import annotations

from construct import Prefixed as _Prefixed


class Prefixed(_Prefixed):
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
