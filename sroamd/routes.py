"""Host routes for the clients served here: /32 and /64, protocol 44.

Babel redistributes routes of protocol 44 (`redistribute proto 44 allow`),
which is how the domain learns where a client is.  Each route points at the
roaming interface the client is on, with metric config.route_metric.

The kernel is the truth, not a cache of what we once installed: the routes
of an interface vanish when it goes down (even if it comes back up with the
same index), and anyone may delete a route by hand.  So the manager keeps
what it *wants* (add/remove) apart from what it last *saw* in the kernel,
and reconcile() compares the two with one netlink dump of the proto-44
routes (filtered by the kernel where it can: Linux 4.20+), re-adding wanted
routes that are missing and removing proto-44 routes on our interfaces that
nobody wants.  The client service calls it when a link changes and every
few seconds.

Restarts: procd restarts sroamd on every `uci commit`.  The routes stay in
the kernel when sroamd stops (clients keep being routed here), and at start
the proto-44 routes found on our interfaces are adopted: kept, even when
nothing wants them yet (hold), until the store is synced and the clients are
known again (release()); only then is the rest removed.  remove_all() is for
a stop for good.

A route that cannot be installed is logged as an error (once, until it
succeeds) and counted, never ignored, and tried again at each reconcile.
The usual cause is EEXIST: babeld already installed a route to the same
prefix with the same metric (its route towards the client's previous AP);
run babeld with 'kernel-priority 256' so that its routes never clash with
ours (DESIGN.md 6).  Once babeld's route goes, ours gets in.

Note: the kernel turns an IPv6 route metric of 0 into 1024.

Withdrawing a route so that Babel hears of it (retract_proto).  babeld
1.12.1 (Debian's; tests/test_babel_retraction.py shows it) does not retract
a redistributed route that leaves the kernel: its flush sends the
retraction for ::/0 instead of the route's prefix (`Sending update to eth0
for ::/0 from ::/0.` at debug 2), for a /32 as for a /64, alone or not.
The other routers keep the old AP's route for a client that left it, and
switch only when that AP re-announces the route it learned from the new AP,
or when the stale route expires.  babeld does announce a route whose
protocol changes, with the right prefix: so before deleting one of ours we
add a "shadow" route to the same prefix, of protocol retract_proto, on the
same interface, one metric below ours in rank (metric + 1: no clash, and
ours carries the traffic while both are there), delete ours, and delete the
shadow SHADOW_HOLD (50 ms) later.  babeld, told to redistribute that
protocol with 'redistribute proto 45 metric 65534', reads a change of the
route to metric 65534 (queued as an update for the right prefix: with a
link's cost added, beyond the metric babeld calls infinite, a retraction in
effect), then its end (the broken flush, whose urgent ::/0 retraction sends
the queue at once; our prefix has neither an xroute nor a route by then, so
babeld sends a real retraction for it if the update had not left yet).  The
hold: babeld 1.12 appears to read the routing table again after a change
it is told of rather than the change itself: a shadow deleted at once was
missed in most tries in the rig (no "change xroute" on its local
interface), one held 50 ms never was.  If babeld does not redistribute protocol 45 the shadow is
ignored and the withdrawal is what it was; retract_proto 0 turns this off.

Netlink calls are made through sroamd.rtnl (pyroute2's message classes on a
non-blocking socket: works with pyroute2 0.7 and 0.9, and never blocks the
event loop).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from typing import Awaitable, Callable, Iterator

from sroamd.rtnl import Rtnl, errno_name  # (first: it keeps pyroute2's package import light)

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL  # noqa: E402
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE  # noqa: E402

log = logging.getLogger("sroamd.routes")

PROTO_SROAMD = 44
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1

Key = tuple[bytes, int]  # (address: 4 or 16 bytes, prefix length)
# How long a shadow route stays (the module doc): babeld 1.12 appears to
# read the routing table again after a change it is told of, so the shadow
# must still be there when it does; sroamd would be done with add, delete
# and delete again in well under a millisecond.
SHADOW_HOLD = 0.05
# A reconcile in steps (reconcile_in_steps) reads the dump this many bytes
# at a time (the kernel's smallest part: about 50 routes) and compares this
# many routes per step: under a millisecond each here (4,000 routes: 100
# steps, 40 ms in all), so that a DHCP exchange waits at most that long.
STEP_BYTES = 4096
STEP_KEYS = 200


def _family(address: bytes) -> int:
    return socket.AF_INET if len(address) == 4 else socket.AF_INET6


def route_text(address: bytes, prefixlen: int) -> str:
    return f"{socket.inet_ntop(_family(address), address)}/{prefixlen}"


class RouteManager:
    def __init__(self, metric: int, rtnl: Rtnl | None = None, hold: bool = False,
                 retract_proto: int = 0,
                 later: Callable[[float, Callable[[], None]], object] | None = None):
        self.metric = metric
        # Protocol of the shadow route added before a withdrawal (0: none).
        self.retract_proto = retract_proto
        # later(delay, fn): runs fn after delay seconds (the event loop's
        # call_later); None: shadows go at once (what babeld may miss).
        self.later = later
        self.pending_shadows: set[tuple[bytes, int, int, int]] = set()
        self.shadows = 0  # withdrawals made with a shadow route
        self.stale_shadows = 0  # shadow routes found in the kernel (a crash mid-withdrawal)
        self.rtnl = rtnl or Rtnl(strict=True)
        # What the client service wants: (address, prefixlen) -> (ifindex, ifname).
        self.wanted: dict[Key, tuple[int, str]] = {}
        # Proto-44 routes on our interfaces as last seen in (or done to) the
        # kernel: (address, prefixlen) -> {(ifindex, metric)}.
        self.present: dict[Key, set[tuple[int, int]]] = {}
        # Keep proto-44 routes nobody wants (adopted at start) until release().
        self.holding = hold
        self.held = 0  # how many such routes the last reconcile kept
        self.failing: set[Key] = set()  # wanted, but the kernel refused them
        self.added = 0
        self.removed = 0
        self.repaired = 0  # wanted routes found missing and put back
        self.reconciles = 0
        self.failures: Counter[str] = Counter()  # errno name -> count
        # Keys changed while reconcile_in_steps reads its dump (None: none is).
        self.touched: set[Key] | None = None

    # -- what is wanted ----------------------------------------------------

    def add(self, ifindex: int, address: bytes, prefixlen: int, ifname: str = "") -> bool:
        """Want the route on ifindex (moving it if it was on another interface)
        and install it; True if it is in place."""
        key = (address, prefixlen)
        self.wanted[key] = (ifindex, ifname)
        return self._install(key)

    def remove(self, address: bytes, prefixlen: int) -> bool:
        """Want no route to the prefix any more; True if one was removed."""
        key = (address, prefixlen)
        self.wanted.pop(key, None)
        self.failing.discard(key)
        removed = False
        for ifindex, metric in self.present.pop(key, ()):
            removed |= self._withdraw(address, prefixlen, ifindex, metric)
        return removed

    def add_many(self, routes: list[tuple[int, bytes, int, str]]) -> None:
        """add() of each (ifindex, address, prefixlen, ifname), the route
        changes batched (a burst: many clients' leases flooded in at once, a
        link back up)."""
        keys = []
        for ifindex, address, prefixlen, ifname in routes:
            key = (address, prefixlen)
            self.wanted[key] = (ifindex, ifname)
            keys.append(key)
        self._install_many(keys)

    def remove_many(self, keys: list[Key]) -> None:
        """remove() of each (address, prefixlen), the route changes batched."""
        withdrawals = []
        for key in keys:
            self.wanted.pop(key, None)
            self.failing.discard(key)
            withdrawals += [(*key, ifindex, metric)
                            for ifindex, metric in self.present.pop(key, ())]
        self._withdraw_many(withdrawals)

    def release(self) -> None:
        """The store is synced: routes nobody wants go at the next reconcile."""
        self.holding = False

    def forget_interface(self, ifindex: int) -> None:
        """The interface went away or down: the kernel dropped its routes already."""
        for key in list(self.present):
            routes = self.present[key]
            routes -= {r for r in routes if r[0] == ifindex}
            if not routes:
                del self.present[key]

    # -- the kernel --------------------------------------------------------

    def reconcile(self, ifindexes: set[int]) -> bool:
        """Make the kernel's proto-44 routes on these interfaces (those that
        are up) what is wanted; False if the routes could not be listed."""
        kernel = self._dump(ifindexes)
        if kernel is None:
            return False
        for _ in self._apply(kernel, ifindexes, set()):
            pass
        return True

    async def reconcile_in_steps(self, ifindexes: set[int],
                                 pause: Callable[[], Awaitable[None]]) -> bool:
        """reconcile(), in steps with `await pause()` between them, so that
        the event loop goes on serving clients (issue 11: 4,000 routes took
        a quarter of a second at once): the dump is read STEP_BYTES at a
        time (the kernel makes its parts no larger than what is read), and
        compared STEP_KEYS routes at a time.  Routes changed meanwhile (add,
        remove, another reconcile) may or may not be in the dump: they are
        left as this manager last saw them.  The dump has a socket of its
        own (a request on the shared one would read, and drop, parts of the
        dump), closed after."""
        dumper = Rtnl(strict=True)
        self.touched = touched = set()
        try:
            kernel: dict[Key, set[tuple[int, int]]] = {}
            for family in (socket.AF_INET, socket.AF_INET6):
                filtered = dumper.strict
                seq = dumper.start_route_dump(family, RT_TABLE_MAIN if filtered else 0,
                                              PROTO_SROAMD if filtered else 0)
                while True:
                    routes, done = dumper.read_route_dump(seq, PROTO_SROAMD, STEP_BYTES)
                    _collect(kernel, routes, ifindexes, PROTO_SROAMD)
                    if done:
                        break
                    await pause()
            dumper.close()
            for _ in self._apply(kernel, ifindexes, touched):
                await pause()
        except OSError as e:
            log.error("cannot list routes: %s", e)
            return False
        finally:
            if self.touched is touched:
                self.touched = None
            dumper.close()
        return True

    def _apply(self, kernel: dict[Key, set[tuple[int, int]]], ifindexes: set[int],
               touched: set[Key]) -> Iterator[None]:
        """reconcile() on a dump of the kernel's routes, yielding every
        STEP_KEYS routes; the keys in touched changed after the dump began
        (it grows while this runs, between steps): what this manager knows
        of them stands."""
        for key in touched:
            if key in self.present:
                kernel[key] = set(self.present[key])
            else:
                kernel.pop(key, None)
        self.present = kernel
        held = 0
        withdrawals: list[tuple[bytes, int, int, int]] = []  # (batched, per step)
        for step, (key, routes) in enumerate(list(kernel.items()), 1):
            if step % STEP_KEYS == 0:
                self._own_changes(self._withdraw_many, withdrawals)
                withdrawals.clear()
                yield
            if key in touched or kernel.get(key) is not routes:
                continue
            want = self.wanted.get(key)
            ours = (want[0], self._metric_of(key[0])) if want is not None else None
            if ours in routes:
                self.failing.discard(key)  # (it got in after all, e.g. by hand)
            for ifindex, metric in list(routes):
                if (ifindex, metric) == ours:
                    continue
                if self.holding:
                    held += 1
                    continue
                log.info("removing unwanted route %s dev %d proto %d metric %d",
                         route_text(*key), ifindex, PROTO_SROAMD, metric)
                withdrawals.append((key[0], key[1], ifindex, metric))
                routes.discard((ifindex, metric))
            if not routes:
                del kernel[key]
        self._own_changes(self._withdraw_many, withdrawals)
        if held != self.held and self.holding:
            log.warning("keeping %d proto-%d routes found in the kernel (from before a restart)"
                        " until the store is synced", held, PROTO_SROAMD)
        self.held = held
        repairs: list[tuple[Key, bool]] = []  # (key, counted as repaired), batched per step

        def install_repairs() -> None:
            done = self._own_changes(self._install_many, [key for key, _ in repairs])
            self.repaired += sum(1 for (_, counted), ok in zip(repairs, done) if counted and ok)
            repairs.clear()

        for step, (key, (ifindex, ifname)) in enumerate(list(self.wanted.items()), 1):
            if step % STEP_KEYS == 0:
                install_repairs()
                yield
            if key in touched or self.wanted.get(key) != (ifindex, ifname):
                continue
            if ifindex not in ifindexes or \
                    (ifindex, self._metric_of(key[0])) in kernel.get(key, ()):
                continue
            if key not in self.failing:
                log.warning("route %s dev %s was missing from the kernel (interface down and up,"
                            " or deleted by hand?): adding it again", route_text(*key),
                            ifname or ifindex)
                repairs.append((key, True))
            else:
                repairs.append((key, False))  # refused before (EEXIST...): again, quietly
        install_repairs()
        if self.retract_proto:
            self._remove_stale_shadows(ifindexes)
        self.reconciles += 1

    def _own_changes(self, change: Callable, *args):
        """change(*args), a reconcile's own route changes: not counted as
        changes made meanwhile (touched), which the reconcile would then
        leave alone; the present routes it keeps are updated by them already.
        (A removal of ours on another interface used to keep the wanted
        route to the same prefix from being put back in the same reconcile.)"""
        touched, self.touched = self.touched, None
        try:
            return change(*args)
        finally:
            self.touched = touched

    def _remove_stale_shadows(self, ifindexes: set[int]) -> None:
        """A shadow route lives for microseconds; one still there (sroamd
        killed between its add and its delete) would have babeld announce
        the client from here for ever."""
        for key, routes in (self._dump(ifindexes, self.retract_proto) or {}).items():
            for ifindex, metric in routes:
                if (*key, ifindex, metric) in self.pending_shadows:
                    continue  # (its time is not up yet)
                log.warning("removing a shadow route %s dev %d proto %d metric %d left behind",
                            route_text(*key), ifindex, self.retract_proto, metric)
                self.stale_shadows += 1
                self._delete(key[0], key[1], ifindex, metric, self.retract_proto)

    def remove_all(self, ifindexes: set[int]) -> None:
        """Stop for good: no proto-44 route left on these interfaces."""
        self.wanted.clear()
        self.failing.clear()
        self.holding = False
        if not self.reconcile(ifindexes):
            for key in list(self.present):
                self.remove(*key)

    def _dump(self, ifindexes: set[int],
              proto: int = PROTO_SROAMD) -> dict[Key, set[tuple[int, int]]] | None:
        out: dict[Key, set[tuple[int, int]]] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                routes = self.rtnl.dump_routes(family, RT_TABLE_MAIN, proto)
            except OSError as e:
                log.error("cannot list routes: %s", e)
                return None
            _collect(out, routes, ifindexes, proto)
        return out

    def _metric_of(self, address: bytes) -> int:
        """Our metric as the kernel shows it (IPv6: 0 becomes 1024)."""
        if len(address) == 16 and self.metric == 0:
            return 1024
        return self.metric

    def _spec(self, msg_type: int, flags: int, address: bytes, prefixlen: int, ifindex: int,
              metric: int | None = None, proto: int = PROTO_SROAMD) -> tuple:
        """The arguments of Rtnl.change_route for one change (noted as
        touched while a reconcile in steps reads its dump)."""
        family = _family(address)
        if self.touched is not None:
            self.touched.add((address, prefixlen))
        return (msg_type, flags, family, prefixlen, RT_TABLE_MAIN, proto,
                RT_SCOPE_LINK if family == socket.AF_INET else RT_SCOPE_UNIVERSE, RTN_UNICAST,
                address, ifindex, self.metric if metric is None else metric)

    def _change(self, msg_type: int, flags: int, address: bytes, prefixlen: int,
                ifindex: int, metric: int | None = None, proto: int = PROTO_SROAMD) -> None:
        """One route change, acknowledged (RtnlError if refused)."""
        self.rtnl.change_route(*self._spec(msg_type, flags, address, prefixlen, ifindex, metric,
                                           proto))

    def _changes(self, specs: list[tuple]) -> list[int]:
        """Many (_spec), batched (Rtnl.change_routes): the errno of each."""
        return self.rtnl.change_routes(specs) if specs else []

    def _install(self, key: Key) -> bool:
        spec = self._install_spec(key)
        if spec is None:
            return True
        try:
            self.rtnl.change_route(*spec)
        except OSError as e:
            return self._installed(key, e.errno)
        return self._installed(key, 0)

    def _install_many(self, keys: list[Key]) -> list[bool]:
        """_install of each key, the route changes batched: whether each is
        in place."""
        specs = [self._install_spec(key) for key in keys]
        codes = iter(self._changes([spec for spec in specs if spec is not None]))
        return [True if spec is None else self._installed(key, next(codes))
                for key, spec in zip(keys, specs)]

    def _install_spec(self, key: Key) -> tuple | None:
        """The change that installs a wanted route, None if it is in place.
        Ours on another interface is deleted first (a move: rare, not batched)."""
        ifindex, ifname = self.wanted[key]
        address, prefixlen = key
        routes = self.present.setdefault(key, set())
        metric = self._metric_of(address)
        if (ifindex, metric) in routes:
            return None
        for other in [r for r in routes if r[1] == metric]:
            # Ours on another interface: moving.
            self._delete(address, prefixlen, *other)
            routes.discard(other)
        return self._spec(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, address, prefixlen, ifindex)

    def _installed(self, key: Key, code: int) -> bool:
        """The kernel's answer (an errno, 0: done) to installing key."""
        ifindex, ifname = self.wanted.get(key, (None, ""))
        address, prefixlen = key
        routes = self.present.setdefault(key, set())
        if code:
            if not routes:
                del self.present[key]
            if key not in self.failing:
                self.failing.add(key)
                name = errno.errorcode.get(code, str(code))
                self.failures[name] += 1
                hint = ""
                if code == errno.EEXIST:
                    hint = (" (another route to the same prefix with the same metric exists:"
                            " babeld's? run babeld with 'kernel-priority 256', or change"
                            " --route-metric)")
                log.error("cannot install route %s dev %s proto %d metric %d: %s%s"
                          " (will try again)", route_text(address, prefixlen), ifname or ifindex,
                          PROTO_SROAMD, self.metric, errno_name(code), hint)
            return False
        if key in self.failing:
            self.failing.discard(key)
            log.warning("route %s dev %s installed now", route_text(address, prefixlen),
                        ifname or ifindex)
        routes.add((ifindex, self._metric_of(address)))
        self.added += 1
        return True

    def _withdraw(self, address: bytes, prefixlen: int, ifindex: int, metric: int) -> bool:
        """Delete one of our routes so that babeld retracts it (see the module
        doc: the shadow route of protocol retract_proto, deleted SHADOW_HOLD
        later when a scheduler was given, at once otherwise)."""
        return self._withdraw_many([(address, prefixlen, ifindex, metric)])[0]

    def _withdraw_many(self, routes: list[tuple[bytes, int, int, int]]) -> list[bool]:
        """_withdraw of each (address, prefixlen, ifindex, metric), the route
        changes batched: the shadows first, then ours, whether each went."""
        shadowed = []
        if self.retract_proto:
            candidates = [r for r in routes if r[3] < 0xFFFFFFFF]
            specs = [self._spec(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, a, p, i, m + 1,
                                self.retract_proto) for a, p, i, m in candidates]
            # (one left by a crash: EEXIST, fine; another error: a plain delete)
            shadowed = [(a, p, i, m + 1) for (a, p, i, m), code
                        in zip(candidates, self._changes(specs)) if code in (0, errno.EEXIST)]
        codes = self._changes([self._spec(RTM_DELROUTE, 0, a, p, i, m) for a, p, i, m in routes])
        deleted = [self._deleted(a, p, PROTO_SROAMD, code)
                   for (a, p, _, _), code in zip(routes, codes)]
        if shadowed:
            self.shadows += len(shadowed)
            if self.later is None:
                self._drop_shadows(shadowed)
            else:
                self.pending_shadows.update(shadowed)
                self.later(SHADOW_HOLD, lambda: self._drop_shadows(
                    [shadow for shadow in shadowed if shadow in self.pending_shadows]))
        return deleted

    def drop_shadows(self) -> None:
        """The shadows whose time is not up, now (at stop: no loop after)."""
        self._drop_shadows(list(self.pending_shadows))

    def _drop_shadows(self, shadows: list[tuple[bytes, int, int, int]]) -> None:
        """Delete these shadow routes (batched; an error is logged and
        counted).  Only those still pending when their time comes: after
        drop_shadows() at stop, a timer that still fires finds none (it
        used to delete them again, on the closed socket: EBADF)."""
        self.pending_shadows.difference_update(shadows)
        specs = [self._spec(RTM_DELROUTE, 0, *shadow, self.retract_proto) for shadow in shadows]
        for (address, prefixlen, _, _), code in zip(shadows, self._changes(specs)):
            self._deleted(address, prefixlen, self.retract_proto, code)

    def _delete(self, address: bytes, prefixlen: int, ifindex: int, metric: int,
                proto: int = PROTO_SROAMD) -> bool:
        try:
            self._change(RTM_DELROUTE, 0, address, prefixlen, ifindex, metric, proto)
        except OSError as e:
            return self._deleted(address, prefixlen, proto, e.errno)
        return self._deleted(address, prefixlen, proto, 0)

    def _deleted(self, address: bytes, prefixlen: int, proto: int, code: int) -> bool:
        """The kernel's answer (an errno, 0: done) to a deletion."""
        if code:
            if code not in (errno.ESRCH, errno.ENODEV):  # already gone with its link
                self.failures["remove_" + errno.errorcode.get(code, str(code))] += 1
                log.error("cannot remove route %s: %s", route_text(address, prefixlen),
                          errno_name(code))
            return False
        if proto == PROTO_SROAMD:
            self.removed += 1  # (shadows are counted apart)
        return True

    def close(self) -> None:
        self.rtnl.close()

    def status(self) -> dict:
        return {"installed": sum(1 for key, (ifindex, _) in self.wanted.items()
                                 if (ifindex, self._metric_of(key[0]))
                                 in self.present.get(key, ())),
                "wanted": len(self.wanted), "failing": len(self.failing),
                "held": self.held if self.holding else 0,
                "added": self.added, "removed": self.removed, "repaired": self.repaired,
                "shadows": self.shadows, "stale_shadows": self.stale_shadows,
                "reconciles": self.reconciles, "failures": dict(self.failures)}


def _collect(out: dict[Key, set[tuple[int, int]]], routes, ifindexes: set[int],
             proto: int) -> None:
    """The routes (sroamd.wire.rtnetlink.Route) of proto in the main table on
    these interfaces, into out: (address, prefixlen) -> {(ifindex, metric)}."""
    for route in routes:
        if route.proto != proto or route.table != RT_TABLE_MAIN \
                or route.oif not in ifindexes or route.dst is None:
            continue
        out.setdefault((route.dst, route.dst_len), set()).add((route.oif, route.priority))
