"""A clock for each router: babeld's local interface, `monitor`, read live.

babeld (-g PATH, or `local-path PATH`) serves a read-only local socket; after
the command `monitor` it writes a line for every change of its interfaces,
neighbours, redistributed routes (xroutes) and learned routes, e.g.

    add xroute 192.0.2.7/32-0.0.0.0/0 prefix 192.0.2.7/32 from 0.0.0.0/0 metric 0
    change route 55d0c8 prefix 192.0.2.7/32 from 0.0.0.0/0 installed yes
        id 02:..:.. metric 96 refmetric 0 via fe80::1c:2ff:fe.. if eth0
    flush xroute 192.0.2.7/32-0.0.0.0/0 prefix 192.0.2.7/32 from ... metric 0

(the format of babeld 1.12's local.c, local_notify_*_1).  BabelMonitor keeps
each line with the time.monotonic() at which it was read, so that a roam can
be told router by router: when the new AP redistributed the client's route,
when the old AP flushed its own, when each other router installed the route
via the new AP.

The lines are read by a thread per router, at once: the times are those at
which babeld wrote them (give or take the scheduler).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from dataclasses import dataclass

_ROUTE = re.compile(r"^(add|change|flush) route (\S+) prefix (\S+) from \S+ installed (yes|no) "
                    r"id \S+ metric (\d+) refmetric \d+ via (\S+) if \S+")
_XROUTE = re.compile(r"^(add|change|flush) xroute \S+ prefix (\S+) from \S+ metric (\d+)")


@dataclass(frozen=True)
class Event:
    at: float          # time.monotonic() when read
    kind: str          # "route" or "xroute"
    op: str            # add, change, flush
    prefix: str        # as babeld prints it: 192.0.2.7/32, 2001:db8:4444:5::/64
    installed: bool    # for routes; True for xroutes (they are ours)
    metric: int
    via: str | None    # next hop (link-local) of a route; None for xroutes
    route_id: str | None


def parse(line: str, at: float) -> Event | None:
    m = _ROUTE.match(line)
    if m:
        op, rid, prefix, installed, metric, via = m.groups()
        return Event(at, "route", op, prefix, installed == "yes", int(metric), via, rid)
    m = _XROUTE.match(line)
    if m:
        op, prefix, metric = m.groups()
        return Event(at, "xroute", op, prefix, True, int(metric), None, None)
    return None


class BabelMonitor:
    """`monitor` on one babeld's local socket, read by a thread."""

    def __init__(self, name: str, path: str, timeout: float = 10.0):
        self.name = name
        self.path = path
        self.events: list[Event] = []
        self.lines = 0
        self._lock = threading.Lock()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"babeld local socket {path} of {name} never answered")
                time.sleep(0.05)
        self.sock.sendall(b"monitor\n")
        self._thread = threading.Thread(target=self._read, name=f"babel-monitor-{name}",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            at = time.monotonic()
            buf += data
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                event = parse(raw.decode(errors="replace"), at)
                with self._lock:
                    self.lines += 1
                    if event is not None:
                        self.events.append(event)

    def since(self, start: float) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.at >= start]

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def first_via(events: list[Event], prefix: str, via: str) -> float | None:
    """When a router first had an installed route to prefix via `via`."""
    for e in events:
        if e.kind == "route" and e.prefix == prefix and e.installed and e.via == via \
                and e.op != "flush":
            return e.at
    return None


def first_xroute(events: list[Event], prefix: str, op: str = "add") -> float | None:
    """When a router redistributed (op add) or stopped redistributing (flush) prefix."""
    for e in events:
        if e.kind == "xroute" and e.prefix == prefix and e.op == op:
            return e.at
    return None


def local_path(ns_dir: str) -> str:
    """Where the rig's babeld in a namespace (its directory) serves `monitor`."""
    return os.path.join(ns_dir, "babeld", "local.sock")
