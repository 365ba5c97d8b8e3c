"""A rtnetlink socket used from the event loop without ever blocking it.

pyroute2's IPRoute cannot serve here: since 0.9 its synchronous API drives
an asyncio loop of its own and refuses to run inside ours, and its async API
does not exist in 0.7 (what OpenWrt ships).  What both versions share, and
what this module uses, are pyroute2's message classes (rtmsg, ifaddrmsg,
nlmsgerr), on a socket of our own.

Why no waiting is needed: the kernel handles an rtnetlink request inside
sendmsg() (under the RTNL lock) and has queued the answer (ACK/error, or the
first part of a dump) by the time send() returns; each further recv() of a
dump produces the next part.  So a request is a send() and a few
non-blocking recv()s, tens of microseconds, and an answer that is not there
is an error, not a reason to wait.

Memory: pyroute2/__init__.py imports all of pyroute2 (IPRoute, NDB, ...):
about 14 MB resident.  The message classes need none of it, so unless
pyroute2 was imported already, the package is registered without running
its __init__ (about 0.3 MB); the first use of a top-level name (e.g.
`from pyroute2 import IPRoute` elsewhere) runs it then, so nothing breaks.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import sys
import types


def _register_pyroute2_lazily() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return  # the imports below fail with the usual error

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name):
            self.__class__ = types.ModuleType  # load once
            spec.loader.exec_module(self)
            return getattr(self, name)

    package = LazyPackage("pyroute2")
    package.__spec__ = spec
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    package.__loader__ = spec.loader
    package.__package__ = "pyroute2"
    sys.modules["pyroute2"] = package


_register_pyroute2_lazily()

from pyroute2.netlink import (NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,  # noqa: E402
                              NLMSG_DONE, NLMSG_ERROR, nlmsgerr)
from pyroute2.netlink.rtnl import RTM_NEWROUTE  # noqa: E402

from sroamd.wire.rtnetlink import (Route, error_code, messages, parse_route,  # noqa: E402
                                   route_change, route_dump_request)


RCVBUF = 1 << 20
# A datagram read: the kernel makes dump parts of at most 32 KB.  (Not
# RCVBUF: recv(n) allocates n bytes first, a megabyte for every ACK.)
DATAGRAM = 1 << 16
# Route changes sent in one datagram by change_routes: their acknowledgements
# (about 1 KB of receive buffer each, as the kernel counts) fit in RCVBUF.
BATCH = 128
SOL_NETLINK = 270
# Linux 4.20+: dump requests are checked strictly, and their header and
# attributes filter what the kernel sends (e.g. routes of one protocol).
NETLINK_GET_STRICT_CHK = 12


# Offset of rtm_protocol in a route message (after the 16-byte netlink header).
_PROTOCOL_OFFSET = 16 + 5


class RtnlError(OSError):
    """The kernel refused a request: errno and strerror as for OSError."""


class Rtnl:
    def __init__(self, groups: int = 0, strict: bool = False):
        """groups: multicast groups to receive notifications of; strict: ask
        the kernel to filter dumps by the request (self.strict says whether
        it can: older kernels send everything, so callers filter anyway)."""
        self.sock = socket.socket(socket.AF_NETLINK,
                                  socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, groups))
        except OSError:
            self.sock.close()
            raise
        self.strict = False
        if strict:
            try:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
                self.strict = True
            except OSError:
                pass
        self.seq = 0
        self._peek = bytearray(16)  # (read_route_dump: a datagram's length)
        # message type -> pyroute2 class to decode it with; others are skipped
        self.decoders = {NLMSG_ERROR: nlmsgerr}

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg, msg_type: int, flags: int) -> int:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    # -- routes, without pyroute2's classes (issue 11) ------------------------
    #
    # pyroute2's rtmsg costs ~100 us to encode, ~60 us to decode (an ACK as
    # much as a route) and leaves cyclic garbage for the collector: a route
    # per client arriving, two per roam, thousands per reconcile dump.
    # These take sroamd.wire.rtnetlink's flat codecs instead.

    def change_route(self, msg_type: int, flags: int, family: int, dst_len: int, table: int,
                     proto: int, scope: int, rtype: int, dst: bytes, oif: int,
                     priority: int) -> None:
        """RTM_NEWROUTE/RTM_DELROUTE, returning once acknowledged; raises
        RtnlError with the kernel's errno if refused."""
        self.seq = seq = (self.seq + 1) & 0xFFFFFFFF
        self.sock.send(route_change(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, family,
                                    dst_len, table, proto, scope, rtype, dst, oif, priority))
        self._acknowledged(seq)

    def change_routes(self, changes: list[tuple]) -> list[int]:
        """Many route changes (change_route's arguments, each a tuple), sent
        BATCH to a datagram (one sendmsg: the kernel handles the requests
        in turn) and their acknowledgements read after: the errno of each
        (0: done), in order.  For a burst of them (a flooded dump naming
        many clients served here, a link back up, a stop for good): one
        system call per BATCH instead of one per route and one per ack."""
        codes: list[int] = []
        for start in range(0, len(changes), BATCH):
            chunk = changes[start:start + BATCH]
            first = (self.seq + 1) & 0xFFFFFFFF
            data = []
            for (msg_type, flags, family, dst_len, table, proto, scope, rtype, dst, oif,
                 priority) in chunk:
                self.seq = (self.seq + 1) & 0xFFFFFFFF
                data.append(route_change(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq,
                                         family, dst_len, table, proto, scope, rtype, dst, oif,
                                         priority))
            self.sock.send(b"".join(data))
            answers = self._acknowledgements(first, len(chunk))
            codes += [answers.get((first + i) & 0xFFFFFFFF, errno.EIO) for i in range(len(chunk))]
        return codes

    def _acknowledgements(self, first: int, count: int) -> dict[int, int]:
        """seq -> errno of the acknowledgements of count requests numbered
        from first (those that never came are missing)."""
        out: dict[int, int] = {}
        while len(out) < count:
            try:
                data = self.sock.recv(DATAGRAM)
            except BlockingIOError:
                break
            for m in messages(data):
                if m.type == NLMSG_ERROR and (m.seq - first) & 0xFFFFFFFF < count:
                    out[m.seq] = error_code(data, m.offset)
        return out

    def _acknowledged(self, seq: int) -> None:
        while True:
            try:
                data = self.sock.recv(DATAGRAM)
            except BlockingIOError:
                break
            for m in messages(data):
                if m.seq == seq and m.type == NLMSG_ERROR:
                    code = error_code(data, m.offset)
                    if code:
                        raise RtnlError(code, errno_name(code))
                    return
        raise RtnlError(errno.EIO, "no acknowledgement from the kernel")

    def start_route_dump(self, family: int, table: int = 0, proto: int = 0) -> int:
        """Ask for the routes of family (with strict checking, only those of
        table and proto; others may come anyway); read them with
        read_route_dump.  Returns the request's sequence number."""
        from pyroute2.netlink.rtnl import RTM_GETROUTE
        self.seq = seq = (self.seq + 1) & 0xFFFFFFFF
        self.sock.send(route_dump_request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq,
                                          family, table, proto))
        return seq

    def read_route_dump(self, seq: int, proto: int | None = None,
                        size: int = DATAGRAM) -> tuple[list[Route], bool]:
        """One datagram's routes of the dump seq (of protocol proto, if
        given: the others are not decoded) and whether the dump is done.
        The kernel makes the next part as this one is read: one is always
        queued until the end (none is an error).  size: the most read at
        once (the kernel makes its parts no larger than the largest read
        on the socket so far, and never smaller than about a page, up to 8 KB:
        NLMSG_GOODSIZE).  A part larger than size is read whole: its length
        is peeked at first (recv would cut it short without a word, and the
        routes in the rest would be missing: pages over 4 KB, e.g.
        LoongArch's 16 KB, make every part larger than 4 KB)."""
        try:
            length = self.sock.recv_into(self._peek, len(self._peek),
                                         socket.MSG_PEEK | socket.MSG_TRUNC)
            data = self.sock.recv(max(size, length))
        except BlockingIOError:
            raise RtnlError(errno.EIO, "dump ended early") from None
        out = []
        for m in messages(data):
            if m.seq != seq:
                continue
            if m.type == NLMSG_DONE:
                return out, True
            if m.type == NLMSG_ERROR:
                code = error_code(data, m.offset)
                if code:
                    raise RtnlError(code, errno_name(code))
                continue
            if m.type != RTM_NEWROUTE:
                continue
            if proto is not None and data[m.offset + _PROTOCOL_OFFSET] != proto:
                continue
            out.append(parse_route(data, m.offset, m.length))
        return out, False

    def dump_routes(self, family: int, table: int = 0, proto: int | None = None) -> list[Route]:
        """All the routes of a dump at once (see start_route_dump)."""
        seq = self.start_route_dump(family, table, proto or 0)
        out: list[Route] = []
        while True:
            routes, done = self.read_route_dump(seq, proto)
            out += routes
            if done:
                return out

    def dump(self, msg, msg_type: int, keep=None) -> list:
        """All the objects of a dump request (RTM_GETROUTE, RTM_GETADDR...),
        decoded with the class of the request (the answers are RTM_NEW*,
        i.e. msg_type - 2).  keep(data, offset): whether to decode the
        object at offset of the datagram (a cheap look at the raw bytes;
        the others are skipped)."""
        self.decoders[msg_type - 2] = type(msg)
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
        out = []
        for reply in self._replies(seq, keep):
            kind = reply["header"]["type"]
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                self._raise_if_error(reply)
                continue
            out.append(reply)
        raise RtnlError(errno.EIO, "dump ended early")

    def _replies(self, seq: int, keep=None):
        """Parsed messages answering seq, until none is queued."""
        while True:
            try:
                data = self.sock.recv(DATAGRAM)
            except BlockingIOError:
                return
            for reply in self.parse(data, keep):
                if reply["header"]["sequence_number"] == seq:
                    yield reply

    def events(self) -> list:
        """Notifications queued on a socket bound to multicast groups.

        Raises RtnlError(ENOBUFS) if some were lost: the caller then re-reads
        the state it follows with a dump.
        """
        out = []
        while True:
            try:
                data = self.sock.recv(RCVBUF)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    raise RtnlError(errno.ENOBUFS, "netlink notifications lost") from None
                raise
            out.extend(self.parse(data))

    def parse(self, data: bytes, keep=None) -> list:
        """The messages in a datagram, decoded by self.decoders (NLMSG_DONE
        and unknown types as bare headers, with their bytes in "raw");
        keep(data, offset) may skip objects without decoding them."""
        out = []
        offset = 0
        while offset + 16 <= len(data):
            length = int.from_bytes(data[offset:offset + 4], sys.byteorder)
            kind = int.from_bytes(data[offset + 4:offset + 6], sys.byteorder)
            if length < 16 or offset + length > len(data):
                break
            decoder = self.decoders.get(kind)
            if decoder is not None and kind >= 16 and keep is not None \
                    and not keep(data, offset):
                pass  # an object the caller does not want
            elif decoder is not None:
                msg = decoder(data[offset:offset + length])
                msg.decode()
                out.append(msg)
            else:
                out.append({"header": {"type": kind, "length": length,
                                       "sequence_number": int.from_bytes(
                                           data[offset + 8:offset + 12], sys.byteorder)},
                            "raw": data[offset:offset + length]})
            offset += (length + 3) & ~3
        return out

    @staticmethod
    def _raise_if_error(reply) -> None:
        code = -reply["error"]
        if code:
            raise RtnlError(code, errno_name(code))


def errno_name(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
