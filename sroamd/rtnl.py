"""A rtnetlink socket used from the event loop without ever blocking it.

pyroute2's IPRoute cannot serve here: since 0.9 its synchronous API drives
an asyncio loop of its own and refuses to run inside ours, and its async API
does not exist in 0.7 (what OpenWrt ships).  What both versions share, and
what this module uses, are pyroute2's message classes (rtmsg, ifinfmsg,
ifaddrmsg) and its parser (MarshalRtnl).

Why no waiting is needed: the kernel handles an rtnetlink request inside
sendmsg() (under the RTNL lock) and has queued the answer (ACK/error, or the
first part of a dump) by the time send() returns; each further recv() of a
dump produces the next part.  So a request is a send() and a few
non-blocking recv()s, tens of microseconds, and an answer that is not there
is an error, not a reason to wait.
"""

from __future__ import annotations

import errno
import os
import socket

from pyroute2.netlink import (NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE,
                              NLMSG_ERROR)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

RCVBUF = 1 << 20


class RtnlError(OSError):
    """The kernel refused a request: errno and strerror as for OSError."""


class Rtnl:
    def __init__(self, groups: int = 0):
        self.sock = socket.socket(socket.AF_NETLINK,
                                  socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, groups))
        except OSError:
            self.sock.close()
            raise
        self.marshal = MarshalRtnl()
        self.seq = 0

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

    def request(self, msg, msg_type: int, flags: int = 0) -> None:
        """Send a change (new/del route, ...) and return once it is acknowledged;
        raises RtnlError with the kernel's errno if refused."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)
        for reply in self._replies(seq):
            if reply["header"]["type"] == NLMSG_ERROR:
                self._raise_if_error(reply)
                return
        raise RtnlError(errno.EIO, "no acknowledgement from the kernel")

    def dump(self, msg, msg_type: int) -> list:
        """All the objects of a dump request (routes, links, addresses)."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
        out = []
        for reply in self._replies(seq):
            kind = reply["header"]["type"]
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                self._raise_if_error(reply)
                continue
            out.append(reply)
        raise RtnlError(errno.EIO, "dump ended early")

    def _replies(self, seq: int):
        """Parsed messages answering seq, until none is queued."""
        while True:
            try:
                data = self.sock.recv(RCVBUF)
            except BlockingIOError:
                return
            for reply in self.marshal.parse(data):
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
            out.extend(self.marshal.parse(data))

    @staticmethod
    def _raise_if_error(reply) -> None:
        error = reply["header"].get("error")
        if error is not None:
            code = getattr(error, "code", errno.EIO) or errno.EIO
            raise RtnlError(code, errno_name(code))


def errno_name(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
