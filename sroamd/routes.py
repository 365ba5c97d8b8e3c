"""Host routes for the clients served here: /32 and /64, protocol 44.

Babel redistributes routes of protocol 44 (`redistribute proto 44 allow`),
which is how the domain learns where a client is.  Each route points at the
roaming interface the client is on, with metric config.route_metric.

A route that cannot be installed is logged as an error and counted, never
ignored.  The usual cause is EEXIST: babeld already installed a route to the
same prefix with the same metric (its route towards the client's previous
AP); run babeld with 'kernel-priority 256' so that its routes never clash
with ours (DESIGN.md 6).  The caller retries on the client's next renewal.

Note: the kernel turns an IPv6 route metric of 0 into 1024.

Netlink calls are made through sroamd.rtnl (pyroute2's message classes on a
non-blocking socket: works with pyroute2 0.7 and 0.9, and never blocks the
event loop).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter

from sroamd.rtnl import Rtnl  # (first: it keeps pyroute2's package import light)

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL  # noqa: E402
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE  # noqa: E402
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: E402

log = logging.getLogger("sroamd.routes")

PROTO_SROAMD = 44
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1


def _family(address: bytes) -> int:
    return socket.AF_INET if len(address) == 4 else socket.AF_INET6


def route_text(address: bytes, prefixlen: int) -> str:
    return f"{socket.inet_ntop(_family(address), address)}/{prefixlen}"


class RouteManager:
    def __init__(self, metric: int, rtnl: Rtnl | None = None):
        self.metric = metric
        self.rtnl = rtnl or Rtnl()
        # (address bytes, prefixlen) -> ifindex, for the routes we installed.
        self.installed: dict[tuple[bytes, int], int] = {}
        self.added = 0
        self.removed = 0
        self.failures: Counter[str] = Counter()  # errno name -> count

    def _message(self, address: bytes, prefixlen: int, ifindex: int,
                 metric: int | None = None):
        family = _family(address)
        msg = rtmsg()
        msg["family"] = family
        msg["dst_len"] = prefixlen
        msg["table"] = RT_TABLE_MAIN
        msg["proto"] = PROTO_SROAMD
        msg["scope"] = RT_SCOPE_LINK if family == socket.AF_INET else RT_SCOPE_UNIVERSE
        msg["type"] = RTN_UNICAST
        msg["attrs"] = [("RTA_DST", socket.inet_ntop(family, address)),
                        ("RTA_OIF", ifindex),
                        ("RTA_PRIORITY", self.metric if metric is None else metric)]
        return msg

    def add(self, ifindex: int, address: bytes, prefixlen: int, ifname: str = "") -> bool:
        """Install the route (moving it if we had it on another interface);
        True if it is in place."""
        key = (address, prefixlen)
        if self.installed.get(key) == ifindex:
            return True
        if key in self.installed:
            self.remove(address, prefixlen)
        try:
            self.rtnl.request(self._message(address, prefixlen, ifindex), RTM_NEWROUTE,
                              NLM_F_CREATE | NLM_F_EXCL)
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            self.failures[name] += 1
            hint = ""
            if e.errno == errno.EEXIST:
                hint = (" (another route to the same prefix with the same metric exists:"
                        " babeld's? run babeld with 'kernel-priority 256', or change"
                        " --route-metric)")
            log.error("cannot install route %s dev %s proto %d metric %d: %s%s",
                      route_text(address, prefixlen), ifname or ifindex, PROTO_SROAMD,
                      self.metric, e.strerror or e, hint)
            return False
        self.installed[key] = ifindex
        self.added += 1
        return True

    def remove(self, address: bytes, prefixlen: int) -> bool:
        """Remove our route to the prefix; True if one was removed."""
        ifindex = self.installed.pop((address, prefixlen), None)
        if ifindex is None:
            return False
        try:
            self.rtnl.request(self._message(address, prefixlen, ifindex), RTM_DELROUTE)
        except OSError as e:
            if e.errno not in (errno.ESRCH, errno.ENODEV):  # already gone with its link
                self.failures["remove_" + errno.errorcode.get(e.errno, str(e.errno))] += 1
                log.error("cannot remove route %s: %s", route_text(address, prefixlen),
                          e.strerror or e)
            return False
        self.removed += 1
        return True

    def forget_interface(self, ifindex: int) -> None:
        """The interface went away: the kernel dropped its routes already."""
        for key in [k for k, i in self.installed.items() if i == ifindex]:
            del self.installed[key]

    def flush_stale(self, ifindexes: set[int]) -> int:
        """Remove proto-44 routes on these interfaces that we did not install
        (left behind by a crashed instance); returns how many."""
        count = 0
        for family in (socket.AF_INET, socket.AF_INET6):
            request = rtmsg()
            request["family"] = family
            try:
                routes = self.rtnl.dump(request, RTM_GETROUTE)
            except OSError as e:
                log.error("cannot list routes: %s", e)
                continue
            for route in routes:
                if route["proto"] != PROTO_SROAMD or route.get_attr("RTA_OIF") not in ifindexes:
                    continue
                dst = route.get_attr("RTA_DST")
                if dst is None:
                    continue
                address = socket.inet_pton(family, dst)
                if self.installed.get((address, route["dst_len"])) is not None:
                    continue
                stale = self._message(address, route["dst_len"], route.get_attr("RTA_OIF"),
                                      route.get_attr("RTA_PRIORITY") or 0)
                try:
                    self.rtnl.request(stale, RTM_DELROUTE)
                    count += 1
                except OSError as e:
                    log.error("cannot remove stale route %s: %s",
                              route_text(address, route["dst_len"]), e.strerror or e)
        if count:
            log.warning("removed %d stale proto-%d routes (from an earlier run)",
                        count, PROTO_SROAMD)
        return count

    def remove_all(self) -> None:
        for address, prefixlen in list(self.installed):
            self.remove(address, prefixlen)

    def close(self) -> None:
        self.rtnl.close()

    def status(self) -> dict:
        return {"installed": len(self.installed), "added": self.added,
                "removed": self.removed, "failures": dict(self.failures)}
