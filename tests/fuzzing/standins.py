"""The smallest honest stand-ins for sroamd's I/O edges.

Everything else in a harness is the real code: these replace only what
touches the kernel or another process (netlink, packet sockets, the flooding
TCP stream's writer, the clock).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import traceback
from dataclasses import dataclass

from sroamd.links import Link


class Clock:
    """The monotonic clock the store and the services read."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Violation(Exception):
    """An invariant does not hold: kind names which one (a failure class)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class RecordingRtnl:
    """sroamd.rtnl.Rtnl as RouteManager uses it: change_route() and dump_routes(); routes
    are kept in a table (as the kernel would) and every added route is
    checked against the configured prefixes at the moment it is asked for."""

    def __init__(self, prefixes, link_indexes):
        self.prefixes = list(prefixes)
        self.link_indexes = set(link_indexes)
        self.table: dict[tuple[int, str, int], int] = {}  # (family, dst, len) -> oif
        self.violations: list[str] = []
        self.requests = 0

    def change_route(self, msg_type: int, flags: int, family: int, dst_len: int, table: int,
                     proto: int, scope: int, rtype: int, dst: bytes, oif: int,
                     priority: int) -> None:
        from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE
        self.requests += 1
        dst = socket.inet_ntop(family, dst)
        key = (family, dst, dst_len)
        if msg_type == RTM_NEWROUTE:
            self._check(family, dst, dst_len, oif, proto)
            self.table[key] = oif
        elif msg_type == RTM_DELROUTE:
            self.table.pop(key, None)

    def _check(self, family, dst, dst_len, oif, proto) -> None:
        text = f"{dst}/{dst_len} dev {oif} proto {proto}"
        try:
            net = ipaddress.ip_network(f"{dst}/{dst_len}")
        except ValueError:
            self.violations.append(f"not a host route: {text}")
            return
        wanted = 32 if family == socket.AF_INET else 64
        if dst_len != wanted:
            self.violations.append(f"wrong prefix length: {text}")
        if not any(net.version == p.version and net.subnet_of(p) for p in self.prefixes):
            self.violations.append(f"outside the configured prefixes: {text}")
        if oif not in self.link_indexes:
            self.violations.append(f"not on a roaming interface: {text}")

    def change_routes(self, changes: list[tuple]) -> list[int]:
        for change in changes:
            self.change_route(*change)
        return [0] * len(changes)

    def dump(self, msg, msg_type: int, keep=None) -> list:
        return []

    def dump_routes(self, family: int, table: int = 0, proto: int | None = None) -> list:
        return []

    def close(self) -> None:
        pass

    def take_violations(self) -> list[str]:
        out, self.violations = self.violations, []
        return out


class FakeLinks:
    """LinkTable.get(name): the roaming interfaces as the kernel has them."""

    def __init__(self, links: list[Link]):
        self.links = {link.name: link for link in links}

    def get(self, name):
        return self.links.get(name)


class RecordingSender:
    """PacketSender: frames out, counted (the last few kept for checks)."""

    def __init__(self):
        self.count = 0
        self.last: list[tuple[str, bytes]] = []

    def send(self, ifname: str, frame: bytes) -> None:
        self.count += 1
        self.last.append((ifname, frame))
        if len(self.last) > 64:
            del self.last[:32]

    def take(self) -> list[tuple[str, bytes]]:
        out, self.last = self.last, []
        return out

    def close(self) -> None:
        pass


class FakeTransport:
    """What Session uses of an asyncio transport; a peer that reads at once."""

    def __init__(self):
        self.aborted = False
        self.written = 0
        self.buffered = 0  # > 0: a peer that stopped reading

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


class FakeWriter:
    """asyncio.StreamWriter of a flooding session: bytes out are counted."""

    def __init__(self, peername=("198.51.100.7", 40000), sockname=("198.51.100.1", 4444)):
        self.transport = FakeTransport()
        self.extra = {"peername": peername, "sockname": sockname, "socket": None}

    def write(self, data: bytes) -> None:
        self.transport.written += len(data)

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.aborted


@dataclass
class LoggedError:
    kind: str
    detail: str


class ErrorLog(logging.Handler):
    """Collects what sroamd logs with a traceback (log.exception, a contained
    failure): each is a bug the fuzzer found, even when contained."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.found: list[LoggedError] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self.found.append(LoggedError("logged_exception:" + crash_kind(exc),
                                          record.getMessage()[:200] + "\n" + format_exc(exc)))

    def take(self) -> list[LoggedError]:
        out, self.found = self.found, []
        return out


def crash_kind(exc: BaseException) -> str:
    """Type and innermost sroamd function of an exception: stable across
    edits of unrelated lines, distinct per bug."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "/sroamd/" in frame.filename:
            where = f"{frame.filename.rsplit('/sroamd/', 1)[1]}:{frame.name}"
    return f"{type(exc).__name__}@{where}"


def format_exc(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]


def drive(coro):
    """Run a coroutine that never really waits to its end, without a loop;
    returns its result.  One that does wait is a harness error."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine waited on something")
