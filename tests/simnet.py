"""A discrete-event simulation of sroamd's replicated store and flooding.

Every simulated node runs the real protocol code: a sroamd.store.Store on a
simulated clock, a real sroamd.flood.Flooder (its receive() and store
listener are plain synchronous methods), sroamd.roaming.Roaming and
sroamd.leases.Leases, composed as sroamd/daemon.py composes them (and the
startup sync, when the code has one).  Only the TCP sessions are simulated:
a SimSession offers what the Flooder uses of a Session (established,
closed, name, send_updates) and, like the real one, builds the wire bytes
with sroamd.wire.flood.build_update at send time (remaining seconds counted
then); the receiver parses them with parse_tlvs and calls its
Flooder.receive.  No event loop, no sleeping: one heap of timed events.

The network: nodes joined by links (lines, rings, random graphs with
cycles).  A link carries one TCP connection at a time: per direction in
order, each message with its own random delay (base + jitter, so a later
message is held behind an earlier slow one, as TCP does); reordering comes
from different paths.  Loss is a connection reset (what is in flight is
lost; the link reconnects later, both ends send their handshake and their
dump, as real sessions do).  Partitions cut every link across a random cut
and heal.  A restarted node comes back with an empty store, with its node id
or a new one; what it had written to its sockets is still delivered (the
kernel flushes on exit), what was in flight to it is lost.

The workload: stations associate, roam (with or without a prompt
disassociation event at the old AP; without one, hostapd there reports it
when its inactivity timer runs out), bounce between two APs, leave; DHCP
exchanges through Leases (10 s offers, then the lease; offers never taken;
renewals, releases), IPv6 /64s; the same address requested on both sides
of a partition; updates from foreign peers (C sroamd): on addresses no
node here hands out, with any seqno and pairs exactly 0x8000 apart, and
leases of the pool at seqnos 0-2 that conflict with ours.  The daemon's
glue is mirrored: sync before serving (StartupSync, Leases
allocation_allowed, Roaming syncing) when the code has it, hostapd's
stations claimed again at start.

At the schedule's end the network heals (links up, nodes up), the
workload stops, and the simulation runs until nothing is in flight.  Then
the invariants (check_invariants):

  quiescence     no message in flight QUIESCE_BOUND simulated seconds after
                 the last external event (workload, link or node change);
  identical      every node holds the same live data: same keys, seqnos,
                 values, expiries within tolerance (transit over any simple
                 path, plus twice the store's refresh threshold);
  single_holder  no lease key live with two different MACs on two nodes;
                 and, at any time, no node hands an address to a new MAC
                 while a DHCP ACK for it that the node knows of still runs
                 (unless released, or lost to a concurrent allocation);
  lost           a write (a node's own change or a DHCP ACK, tracked with
                 its causal history) that no later write superseded and
                 that should still be live is live everywhere, with its
                 value (unless a concurrent write with another value could
                 beat it) and, for leases, its expiry;
  expiry         nothing is sent about a key, nor held live, longer than its
                 latest intended expiry plus tolerance (no lifetime gained
                 in transit, expired data stop travelling);
  roaming        a station is served only by the AP it is associated with,
                 and every store names that AP;
  kick           no AP kicks a station associated with it, except after
                 concurrent claims (two APs that each took the station on
                 without knowing of the other's claim: counted in
                 Result.concurrent_kicks, a limit roaming.py states).

Deterministic: everything follows from the schedule's seed.  Replay one:

    python3 tests/simnet.py --seed 1234 --trace
"""

from __future__ import annotations

import argparse
import heapq
import inspect
import ipaddress
import itertools
import os
import random
import sys
from dataclasses import dataclass, field

import sroamd.flood as flood_mod
import sroamd.leases as leases_mod
import sroamd.roaming as roaming_mod
import sroamd.store as store_mod
import sroamd.wire.flood as wire
from sroamd.config import Config

try:  # sync before serving (absent from older code: serve at once)
    from sroamd.startup_sync import StartupSync
    if os.path.dirname(sys.modules[StartupSync.__module__].__file__) != os.path.dirname(
            store_mod.__file__):
        StartupSync = None  # (another checkout's: an editable install's finder)
except ImportError:  # pragma: no cover - depends on the code under test
    StartupSync = None
ROAMING_SYNCING = "syncing" in inspect.signature(roaming_mod.Roaming).parameters
LOCAL_TRUTH_MIN = getattr(roaming_mod, "LOCAL_TRUTH_MIN", 0.0)
# hostapd's list at start: marked as such where the code knows the flag
LISTED = ({"listed": True} if "listed" in inspect.signature(
    roaming_mod.Roaming.station_associated).parameters else {})

IFNAME = "wlan0"
QUIESCE_BOUND = 120.0  # simulated seconds after the last external event
MAX_DELIVERIES = 10000  # per schedule: a flood that never stops is cut here
SYNC_TICK = 0.25  # as the daemon
LEASE_MACS = 64
EMPTY = frozenset()
INVARIANTS = ("quiescence", "identical", "single_holder", "lost", "expiry", "roaming", "kick")
REUSE_TOLERANCE = 2.0  # s: rounding to whole seconds on a few hops

IPV4_PREFIX = ipaddress.IPv4Network("192.0.2.0/28")
FOREIGN_HOSTS = (13, 14)  # addresses only a foreign peer sends (reserved here)
IPV6_PREFIX = ipaddress.IPv6Network("2001:db8:4444::/60")
GATEWAY = ipaddress.IPv4Address("192.0.2.1")


# -- the wire, as the real Session uses it ---------------------------------
# build_update and parse_tlvs are pure functions: their results are cached,
# which saves most of construct's cost (the same datum goes to several
# peers).  The functions are looked up at call time, so the simulation uses
# whatever sroamd.wire.flood provides.

_built: dict = {}
_parsed: dict = {}


def build_update(update: "wire.Update") -> bytes:
    data = _built.get(update)
    if data is None:
        if len(_built) > 200000:
            _built.clear()
        data = _built[update] = wire.build_update(update)
    return data


def parse_stream(data: bytes):
    """(updates, dump markers met) in data, as the real Session's read loop
    sees them (parse_stream, or parse_tlvs for code without dump markers)."""
    result = _parsed.get(data)
    if result is None:
        if len(_parsed) > 100000:
            _parsed.clear()
        if hasattr(wire, "parse_stream"):
            updates, _, markers = wire.parse_stream(data)
        else:
            updates, _ = wire.parse_tlvs(data)
            markers = []
        result = _parsed[data] = (updates, markers)
    return result


# The dump markers (PadN TLVs around a dump), if the code has them.
DUMP_BEGIN = getattr(wire, "DUMP_BEGIN", b"")
DUMP_END = getattr(wire, "DUMP_END", b"")
DUMP_END_BODY = getattr(wire, "DUMP_END_BODY", None)
DUMP_UNSYNCED = getattr(wire, "DUMP_UNSYNCED", DUMP_END)  # (older code: no such marker)
DUMP_UNSYNCED_BODY = getattr(wire, "DUMP_UNSYNCED_BODY", None)
FLOODER_TAKES_CONFIG = "config" in inspect.signature(flood_mod.Flooder).parameters


# -- discrete events -------------------------------------------------------

class Sim:
    __slots__ = ("now", "_queue", "_count")

    def __init__(self):
        self.now = 0.0
        self._queue: list = []
        self._count = itertools.count()

    def at(self, when: float, fn, *args) -> None:
        heapq.heappush(self._queue, (max(when, self.now), next(self._count), fn, args))

    def after(self, delay: float, fn, *args) -> None:
        self.at(self.now + delay, fn, *args)

    def next_time(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def step(self) -> None:
        when, _, fn, args = heapq.heappop(self._queue)
        self.now = when
        fn(*args)

    def pending(self) -> int:
        return len(self._queue)


# -- the schedule ----------------------------------------------------------

@dataclass
class LinkSpec:
    a: int
    b: int
    base: float  # seconds every message takes at least
    jitter: float  # plus uniform(0, jitter)


@dataclass
class Schedule:
    seed: int
    nodes: int
    links: list[LinkSpec]
    duration: float  # workload and disturbances happen before; then all heals
    actions: list[tuple]  # (time, kind, *args), sorted by time
    stations: int = 0
    lease_time: int = 1800
    topology: str = ""
    max_delay: float = 0.0
    tolerance: float | None = None  # expiry tolerance; None: derived

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for action in self.actions:
            kinds[action[1]] = kinds.get(action[1], 0) + 1
        return (f"seed={self.seed} {self.topology} nodes={self.nodes} links={len(self.links)} "
                f"max_delay={self.max_delay:g}s duration={self.duration:.0f}s "
                f"lease_time={self.lease_time} stations={self.stations} "
                + " ".join(f"{k}={v}" for k, v in sorted(kinds.items())))


def address(host: int) -> bytes:
    return (int(IPV4_PREFIX.network_address) + host).to_bytes(4, "big")


def station_mac(i: int) -> bytes:
    return bytes([0x02, 0x5E, 0, 0, 0, i + 1])


def foreign_mac(i: int) -> bytes:
    return bytes([0x02, 0xF0, 0, 0, 0, i + 1])


def topology(rng: random.Random, n: int, kind: str) -> list[tuple[int, int]]:
    if kind == "line":
        return [(i, i + 1) for i in range(n - 1)]
    if kind == "ring":
        return [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(0, 1)]
    if kind == "complete":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    # random connected graph with cycles: a random tree plus extra edges
    order = list(range(n))
    rng.shuffle(order)
    edges = set()
    for i in range(1, n):
        j = order[rng.randrange(i)]
        edges.add((min(order[i], j), max(order[i], j)))
    extra = rng.randint(1, max(1, n // 2 + 1))
    for _ in range(extra * 4):
        if extra == 0:
            break
        a, b = rng.sample(range(n), 2)
        edge = (min(a, b), max(a, b))
        if edge not in edges:
            edges.add(edge)
            extra -= 1
    return sorted(edges)


def make_schedule(seed: int) -> Schedule:
    """A random schedule: topology, delays, workload and disturbances."""
    rng = random.Random(seed)
    n = rng.choice([3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 10, 12])
    kind = rng.choice(["line", "ring", "ring", "random", "random", "random"]
                      + (["complete"] if n <= 5 else []))
    max_delay = rng.choice([0.0, 0.02, 0.2, 0.5, 1.0, 2.0])
    links = []
    for a, b in topology(rng, n, kind):
        base = rng.uniform(0, max_delay)
        links.append(LinkSpec(a, b, base, rng.uniform(0, max_delay - base)))
    duration = rng.uniform(20, 90)
    lease_time = rng.choice([1800, 1800, 120, 40])
    stations = rng.randint(1, 5)
    actions: list[tuple] = []

    def when(lo=0.0, hi=None):
        return rng.uniform(lo, duration if hi is None else hi)

    for s in range(stations):
        t = when(0, duration * 0.3)
        actions.append((t, "assoc", s, rng.randrange(n)))
        for _ in range(rng.randint(1, 8)):
            t = when(t, min(duration, t + duration / 3))
            op = rng.choices(
                ["dhcp", "v6", "roam", "pingpong", "renew", "offer_only", "release", "leave"],
                [5, 2, 4, 2, 3, 2, 1, 1])[0]
            if op in ("roam", "pingpong"):
                actions.append((t, op, s, rng.randrange(n), rng.uniform(0.02, 1.5),
                                rng.random() < 0.5))
            else:
                actions.append((t, op, s))
            if op == "leave":
                if rng.random() < 0.5:
                    break
                t = when(t, min(duration, t + 10))
                actions.append((t, "assoc", s, rng.randrange(n)))

    for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
        actions.append((when(), "flap", rng.randrange(len(links)), rng.uniform(0.1, 20)))
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        t = when(0, duration * 0.8)
        length = rng.uniform(3, 40)
        side = [i for i in range(n) if rng.random() < 0.5] or [0]
        if len(side) == n:
            side = side[1:]
        actions.append((t, "partition", side, length))
        if stations >= 1 and rng.random() < 0.7:
            # the same address requested on both sides (a conflict)
            host = rng.randrange(2, FOREIGN_HOSTS[0])
            other = [i for i in range(n) if i not in side]
            t1 = rng.uniform(t + 0.5, t + length * 0.8)
            actions.append((t1, "request_on", rng.choice(side), 40 + rng.randrange(8), host))
            actions.append((rng.uniform(t + 0.5, t + length * 0.8), "request_on",
                            rng.choice(other), 48 + rng.randrange(8), host))
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        actions.append((when(), "restart", rng.randrange(n), rng.uniform(0.5, 15),
                        rng.random() < 0.7))
    if rng.random() < 0.25:
        # Data from outside (a C sroamd peer) on addresses no node here hands
        # out (FOREIGN_HOSTS): any seqno, and sometimes the same key with a
        # seqno exactly 0x8000 apart on another node (serial arithmetic
        # makes each the newer: the store must still pick one).  (Seqnos a
        # quarter of the space apart otherwise come only from a broken or
        # hostile peer; the store ignores them and lets the data lapse.)
        for k, host in enumerate(FOREIGN_HOSTS):
            if rng.random() < 0.5:
                continue
            key = store_mod.ipv4_lease_key(address(host))
            seqno = rng.randrange(0x10000)
            lifetime = rng.choice([10, 60, 600])
            t = when(0, duration * 0.7)
            actions.append((t, "foreign", rng.randrange(n), key, seqno, foreign_mac(2 * k),
                            lifetime))
            if rng.random() < 0.6:
                actions.append((t + rng.uniform(0, 2), "foreign", rng.randrange(n), key,
                                (seqno + 0x8000) & 0xFFFF, foreign_mac(2 * k + 1), lifetime))
    if rng.random() < 0.25:
        # A C sroamd AP handing out addresses of the pool too: its new
        # leases start at seqno 0 as ours do, and may conflict with ours.
        for k in range(rng.randint(1, 3)):
            key = store_mod.ipv4_lease_key(address(rng.randrange(2, FOREIGN_HOSTS[0])))
            actions.append((when(0, duration * 0.8), "foreign", rng.randrange(n), key,
                            rng.randrange(3), foreign_mac(10 + k),
                            rng.choice([10, 60, lease_time])))
    actions = [a for a in actions if a[0] < duration]
    actions.sort(key=lambda a: a[0])
    return Schedule(seed, n, links, duration, actions, stations, lease_time, kind, max_delay)


# -- the simulated network -------------------------------------------------

@dataclass(slots=True)
class Write:
    """A node's own change to its store (a DHCP lease, a claim, ...)."""
    id: int
    node: int
    incarnation: int
    time: float
    key: bytes
    seqno: int
    value: bytes
    expires: float  # simulated time
    supersedes: frozenset  # ids of the writes its node knew of (causal past)
    reached: bool = False  # another node (or incarnation) learned of it
    # (node, incarnation) of every store that held it: when all of them have
    # crashed since (a simulated restart keeps no snapshot), nothing can
    # bring it back
    holders: set = field(default_factory=set)
    ack: bool = False  # a DHCP ACK: the client holds the address until expires
    reassociation: bool = False  # a claim for a station its node still served
    during_sync: bool = False  # made by a node not synced yet since its start
    listed: bool = False  # a restarted node's claim of a station hostapd listed


class SimSession:
    """One end of a simulated flooding connection: what Flooder uses of a Session."""

    __slots__ = ("net", "node", "conn", "end", "peer", "name", "outgoing", "established",
                 "closed", "since", "updates_in", "updates_out", "refused", "dump_sent",
                 "dump_received", "end_sent", "peer_unsynced", "uid", "__weakref__")

    def __init__(self, net: "Net", node: "Node", conn: "Conn", end: int, name: str):
        self.net = net
        self.node = node
        self.conn = conn
        self.end = end
        self.peer: SimSession | None = None
        self.name = name
        self.outgoing = end == 0
        self.established = False
        self.closed = False
        self.since = net.sim.now
        self.updates_in = 0
        self.updates_out = 0
        self.refused = 0
        self.dump_sent = False
        self.dump_received = False
        self.end_sent = False
        self.peer_unsynced = False
        self.uid = next(net.uids)

    # Deterministic set order in Flooder.sessions (the default hash is the
    # object's address, which differs from run to run).
    def __hash__(self) -> int:
        return self.uid

    def __eq__(self, other) -> bool:
        return self is other

    def __repr__(self) -> str:
        return f"<SimSession {self.name}>"

    def send_updates(self, data, begin: bytes = b"", end: bytes = b"") -> None:
        if self.closed:
            return
        node = self.node
        store = node.store
        net = self.net
        chunks = [begin]
        knowledge = []
        for datum in data:
            remaining = store.remaining(datum)
            try:
                chunks.append(build_update(wire.Update(datum.key, datum.seqno, datum.value,
                                                       remaining)))
            except wire.FloodFormatError:
                continue
            knowledge.append(node.knowledge.get(datum.key, EMPTY))
            net.on_send(self, datum, remaining)
        self.updates_out += len(knowledge)
        chunks.append(end)
        payload = b"".join(chunks)
        if payload:
            net.transmit(self, "data", payload, knowledge)

    def _queue(self, data: bytes) -> None:
        """Raw output (the end marker sent once the node is synced)."""
        if not self.closed:
            self.net.transmit(self, "data", data, [])

    def close(self) -> None:
        """The flooding code gives up on the peer: a reset of the connection."""
        if not self.closed:
            self.net.trace_line(f"{self.node.name} closes {self.name}")
            self.net.reset(self.conn.link, "closed")


class ForeignPeer:
    """A peer outside the simulation (a C sroamd) whose updates are injected;
    what the node sends back to it is dropped."""

    established = True
    closed = False
    name = "foreign"
    updates_in = updates_out = refused = 0

    def send_updates(self, data) -> None:
        pass


FOREIGN = ForeignPeer()


class Conn:
    __slots__ = ("link", "ends", "last")

    def __init__(self, link: "Link"):
        self.link = link
        self.ends: list[SimSession] = []
        self.last = [0.0, 0.0]  # per direction (from end i): last delivery time


class Link:
    def __init__(self, net: "Net", index: int, spec: LinkSpec):
        self.net = net
        self.index = index
        self.a = net.nodes[spec.a]
        self.b = net.nodes[spec.b]
        self.base = spec.base
        self.jitter = spec.jitter
        self.blocked: dict[str, int] = {}  # reasons the link is down (flap, partition)
        self.conn: Conn | None = None
        self.connecting = False

    @property
    def name(self) -> str:
        return f"{self.a.name}-{self.b.name}"

    def wanted(self) -> bool:
        return not self.blocked and self.a.up and self.b.up

    def delay(self) -> float:
        return self.base + (self.net.rng.random() * self.jitter if self.jitter else 0.0)


class Node:
    """One sroamd, composed of the real parts as sroamd/daemon.py does."""

    def __init__(self, net: "Net", index: int):
        self.net = net
        self.index = index
        self.name = f"n{index}"
        self.up = False
        self.incarnation = 0
        self.node_id: bytes | None = None
        self.offset = 0.0
        self.started_at = 0.0
        self.links: list[Link] = []
        self.store = self.flooder = self.roaming = self.leases = self.sync = None
        self.knowledge: dict[bytes, frozenset] = {}

    def clock(self) -> float:
        return self.net.sim.now + self.offset

    def sessions_up(self) -> int:
        if hasattr(self.flooder, "sessions_with_synced_peers"):
            return self.flooder.sessions_with_synced_peers()
        return sum(1 for s in self.flooder.sessions if s.established)

    def start(self, keep_id: bool) -> None:
        net = self.net
        self.incarnation += 1
        if self.node_id is None or not keep_id:
            self.node_id = bytes(net.rng.getrandbits(8) for _ in range(8))
        # A monotonic clock of its own (any origin), running at the same rate.
        self.offset = net.rng.uniform(0, 10000)
        self.up = True
        self.started_at = net.sim.now
        self.knowledge = {}
        store = self.store = store_mod.Store(clock=self.clock)
        store.listeners.append(self._on_change)  # first: before the Flooder sends
        self.sync = None
        if StartupSync is not None:
            self.sync = StartupSync(self.clock, net.config.sync_grace, has_peers=True)
        if FLOODER_TAKES_CONFIG:  # (validates what it receives against the config)
            self.flooder = flood_mod.Flooder(store, None, [], net.config)
        else:
            self.flooder = flood_mod.Flooder(store, None, [])
        roaming_args = {}
        if self.sync is not None and ROAMING_SYNCING:
            roaming_args["syncing"] = not self.sync.synced
        self.roaming = roaming_mod.Roaming(store, self.node_id, self._act, **roaming_args)
        self.leases = leases_mod.Leases(store, net.config, rng=random.Random(net.rng.random()))
        self.leases.reserve_ipv4([address(host) for host in FOREIGN_HOSTS])
        if self.sync is not None:
            self.leases.allocation_allowed = self.sync.synced
            if hasattr(self.flooder, "mark_store_synced"):
                self.flooder.mark_store_synced(self.sync.synced)
            on_synced = getattr(self.flooder, "on_synced", None)
            if on_synced is not None:
                on_synced.append(self._dump_complete)
            net.sim.after(SYNC_TICK, self._sync_tick, self.incarnation)
        net.trace_line(f"{self.name} starts (incarnation {self.incarnation}, "
                       f"id {self.node_id.hex()})")
        # hostapd still lists the stations associated here: the station
        # source reports them at start.
        for station in net.stations:
            if station.at == self.index:
                net.listing = True
                try:
                    self.roaming.station_associated(IFNAME, station.mac, **LISTED)
                finally:
                    net.listing = False

    def stop(self) -> None:
        self.up = False
        self.net.trace_line(f"{self.name} stops")

    # -- the daemon's glue -------------------------------------------------

    def _dump_complete(self, peer: object = "a peer") -> None:
        if self.sync is not None and self.sync.dump_complete(str(peer)):
            self._synced()

    def _synced(self) -> None:
        self.net.trace_line(f"{self.name} synced ({self.sync.how})")
        synced = getattr(self.roaming, "synced", None)
        if synced is not None:
            synced()
        self.leases.allocation_allowed = True
        if hasattr(self.flooder, "mark_store_synced"):
            self.flooder.mark_store_synced()

    def _sync_tick(self, incarnation: int) -> None:
        if not self.up or incarnation != self.incarnation or self.sync.synced:
            return
        if self.sync.tick(self.sessions_up()):
            self._synced()
        else:
            self.net.sim.after(SYNC_TICK, self._sync_tick, incarnation)

    def _act(self, action) -> None:
        if isinstance(action, roaming_mod.Kick):
            self.net.kicked(self, action.mac)

    def _on_change(self, datum, old, origin) -> None:
        if origin is None:
            self.net.record_write(self, datum, old)
        elif origin is FOREIGN:
            self.net.record_write(self, datum, old, foreign=True)

    def expire(self) -> None:
        self.store.expire()


@dataclass
class Station:
    index: int
    mac: bytes
    at: int | None = None  # the AP it is associated with (hostapd's truth)
    address: bytes | None = None  # the IPv4 address it was ACKed
    kicks: int = 0


@dataclass
class Result:
    seed: int
    failures: dict[str, list[str]] = field(default_factory=dict)
    messages: int = 0  # TLV-carrying messages delivered
    updates: int = 0  # Update TLVs sent
    lost_messages: int = 0  # dropped by resets
    writes: int = 0
    simulated: float = 0.0  # simulated seconds
    converged_after: float | None = None  # last delivery - heal time
    concurrent_kicks: int = 0  # stations kicked after concurrent claims (see kicked())
    lost_with_crashes: int = 0  # writes every holder of which crashed since (see check)
    checked: bool = False
    summary: str = ""
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, invariant: str, message: str) -> None:
        items = self.failures.setdefault(invariant, [])
        if len(items) < 5:
            items.append(message)

    def report(self, trace_lines: int = 40) -> str:
        lines = [f"schedule {self.summary}"]
        for name, messages in self.failures.items():
            for message in messages:
                lines.append(f"  FAIL {name}: {message}")
        if self.trace:
            lines.append(f"  last {min(trace_lines, len(self.trace))} of {len(self.trace)} "
                         "trace lines:")
            lines.extend("    " + line for line in self.trace[-trace_lines:])
        if self.summary.split()[1] == "scripted":
            lines.append("  (a scripted schedule: run its test again)")
        else:
            lines.append(f"  replay: python3 tests/simnet.py --seed {self.seed} --trace")
        return "\n".join(lines)


class Net:
    def __init__(self, schedule: Schedule, trace: bool = False):
        self.schedule = schedule
        self.sim = Sim()
        self.rng = random.Random(schedule.seed * 7919 + 17)
        self.uids = itertools.count(1)
        self.tracing = trace
        self.trace: list[str] = []
        self.config = Config(ipv4_prefix=IPV4_PREFIX, ipv6_prefix=IPV6_PREFIX, gateway=GATEWAY,
                             lease_time=schedule.lease_time)
        self.nodes = [Node(self, i) for i in range(schedule.nodes)]
        self.links = [Link(self, i, spec) for i, spec in enumerate(schedule.links)]
        for link in self.links:
            link.a.links.append(link)
            link.b.links.append(link)
        self.stations = [Station(i, station_mac(i)) for i in range(max(schedule.stations, 0))]
        self.extra_stations: dict[bytes, Station] = {}
        self.writes: dict[bytes, list[Write]] = {}
        self.write_by_id: dict[int, Write] = {}
        self.max_expiry: dict[bytes, float] = {}  # key -> latest intended expiry (sim time)
        self.write_ids = itertools.count(1)
        self.in_flight = 0
        self.deliveries = 0
        self.updates_sent = 0
        self.lost_messages = 0
        self.last_delivery = 0.0
        self.last_external = 0.0
        self.kicks_present: list[str] = []
        self.reassociating = False  # (while a station associates again where it is served)
        self.listing = False  # (while a restarted node claims hostapd's list)
        self.concurrent_kicks = 0
        self.far_keys: dict[bytes, float] = {}  # key -> when its far datum lapses
        self.reuses: list[str] = []
        self.zombies: list[str] = []
        self.expired_sends = 0
        self.cut = False
        self.max_delay = max([l.base + l.jitter for l in self.links] or [0.0])
        gain = getattr(store_mod, "REFRESH_GAIN", 0.5)
        if schedule.tolerance is not None:
            self.tolerance = schedule.tolerance
        else:
            # Transit over any simple path; twice the refresh the store
            # keeps to itself (an extension too small to be news at the
            # origin, and an announced one too small to be news at a node
            # that got a later copy first); whole-second rounding.
            self.tolerance = (max(1, schedule.nodes - 1) * self.max_delay + 2 * gain + 2.0)

    # -- tracing -----------------------------------------------------------

    def trace_line(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.sim.now:9.3f} {text}")

    # -- writes and what each node knows of them ----------------------------

    def record_write(self, node: Node, datum, old: bytes | None = None,
                     ack_until: float | None = None, foreign: bool = False) -> Write:
        now = self.sim.now
        key = datum.key
        known = node.knowledge.get(key, EMPTY)
        if foreign:
            # written by a peer outside that knew nothing of ours: concurrent
            write = Write(next(self.write_ids), node.index, node.incarnation, now, key,
                          datum.seqno, datum.value, datum.expires - node.offset, EMPTY)
            node.knowledge[key] = known | {write.id}
            write.holders.add((node.index, node.incarnation))
            self.writes.setdefault(key, []).append(write)
            self.write_by_id[write.id] = write
            self.max_expiry[key] = max(write.expires, self.max_expiry.get(key, -1.0))
            return write
        if (ack_until is None and old != datum.value and len(datum.value) == 6
                and datum.value != leases_mod.DECLINED and store_mod.is_lease_key(key)):
            self.check_reuse(node, key, datum.value, known)
        write = Write(next(self.write_ids), node.index, node.incarnation, now, key, datum.seqno,
                      datum.value, datum.expires - node.offset if ack_until is None
                      else ack_until, known, ack=ack_until is not None)
        write.reassociation = self.reassociating
        write.listed = self.listing
        write.during_sync = node.sync is not None and (
            not node.sync.synced or now < node.started_at + LOCAL_TRUTH_MIN)
        write.holders.add((node.index, node.incarnation))
        node.knowledge[key] = known | {write.id}
        self.writes.setdefault(key, []).append(write)
        self.write_by_id[write.id] = write
        if write.expires > self.max_expiry.get(key, -1.0):
            self.max_expiry[key] = write.expires
        if ack_until is None:
            self.trace_line(f"{node.name} writes {fmt_key(key)} s={datum.seqno} "
                            f"v={datum.value.hex() or '-'} for "
                            f"{datum.expires - node.clock():.1f}s")
        return write

    def check_reuse(self, node: Node, key: bytes, mac: bytes, known: frozenset) -> None:
        """A new holder for an address: no client ACKed for it (that this
        node knows of) may still hold it, unless it gave it back or lost it
        to a concurrent allocation."""
        now = self.sim.now
        for wid in known:
            ack = self.write_by_id[wid]
            if not ack.ack or ack.value == mac or ack.expires <= now + REUSE_TOLERANCE:
                continue
            ended = False
            for oid in known:
                other = self.write_by_id[oid]
                if other.value == ack.value:
                    continue
                if other.time >= ack.time and (other.value in (leases_mod.RELEASED,
                                                               leases_mod.DECLINED)):
                    ended = True  # released or declined since
                elif ack.id not in other.supersedes and other.id not in ack.supersedes:
                    ended = True  # a concurrent allocation: one of them loses
                if ended:
                    break
            if not ended and len(self.reuses) < 5:
                self.reuses.append(
                    f"{node.name} gives {fmt_key(key)} to {mac.hex()} at {now:.1f} while "
                    f"{ack.value.hex()} holds it until {ack.expires:.1f} (ACKed by "
                    f"{self.nodes[ack.node].name} at {ack.time:.1f})")

    def learn(self, node: Node, key: bytes, ids: frozenset) -> None:
        known = node.knowledge.get(key, EMPTY)
        if not ids <= known:
            for wid in ids - known:
                self.write_by_id[wid].reached = True
                self.write_by_id[wid].holders.add((node.index, node.incarnation))
            node.knowledge[key] = known | ids

    # -- links -------------------------------------------------------------

    def connect_later(self, link: Link, delay: float | None = None) -> None:
        if link.conn is not None or link.connecting or not link.wanted():
            return
        link.connecting = True
        if delay is None:
            delay = self.rng.uniform(0.1, 3.0)
        self.sim.after(delay, self._connect, link)

    def _connect(self, link: Link) -> None:
        link.connecting = False
        if link.conn is not None or not link.wanted():
            return
        self.last_external = self.sim.now
        conn = link.conn = Conn(link)
        a = SimSession(self, link.a, conn, 0, f"{link.a.name}>{link.b.name}")
        b = SimSession(self, link.b, conn, 1, f"{link.b.name}<{link.a.name}")
        a.peer, b.peer = b, a
        conn.ends = [a, b]
        link.a.flooder.sessions.add(a)
        link.b.flooder.sessions.add(b)
        self.trace_line(f"link {link.name} connects")
        self.transmit(a, "handshake", b"", ())
        self.transmit(b, "handshake", b"", ())

    def reset(self, link: Link, why: str) -> None:
        """The connection breaks: what is in flight both ways is lost."""
        conn = link.conn
        if conn is None:
            return
        link.conn = None
        self.trace_line(f"link {link.name} reset ({why})")
        for end in conn.ends:
            self._close_end(end)
        self.connect_later(link)

    def _close_end(self, end: SimSession) -> None:
        if end.closed:
            return
        end.closed = True
        end.established = False
        if end.node.flooder is not None:
            end.node.flooder.sessions.discard(end)

    def transmit(self, session: SimSession, kind: str, payload: bytes, knowledge) -> None:
        conn = session.conn
        direction = session.end
        when = max(self.sim.now + conn.link.delay(), conn.last[direction])
        conn.last[direction] = when
        self.in_flight += 1
        self.sim.at(when, self._deliver, session.peer, kind, payload, knowledge)

    def _deliver(self, session: SimSession, kind: str, payload: bytes, knowledge) -> None:
        self.in_flight -= 1
        if session.closed:
            self.lost_messages += 1
            return
        node = session.node
        if kind == "handshake":
            session.established = True
            self._send_dump(session)
            return
        if kind == "dump_end":  # code without dump markers: told directly
            self._dump_received(session)
            return
        self.deliveries += 1
        self.last_delivery = self.sim.now
        node.expire()
        updates, markers = parse_stream(payload)
        flooder = node.flooder
        for update, ids in zip(updates, knowledge):
            if session.closed:
                break
            if self.tracing:
                self.trace_line(f"{session.peer.node.name}->{node.name} {fmt_key(update.key)} "
                                f"s={update.seqno} v={update.value.hex() or '-'} t={update.time}")
            self.learn(node, update.key, ids)
            session.updates_in += 1
            flooder.receive(update, session)
        if DUMP_UNSYNCED_BODY is not None and DUMP_UNSYNCED_BODY in markers:
            session.peer_unsynced = True
        if DUMP_END_BODY in markers:
            session.peer_unsynced = False
        if DUMP_END_BODY in markers and not session.closed and not session.dump_received:
            self._dump_received(session)

    def _send_dump(self, session: SimSession) -> None:
        # As Session.run: once the peer's handshake is in, the whole store
        # (what has not expired), between the dump markers.
        node = session.node
        node.expire()
        store = node.store
        live = [d for d in store if store.remaining(d) > 0]
        # A node not synced itself ends its dump unsynced (flood.py), and
        # sends the end marker once synced (Flooder.mark_store_synced).
        session.end_sent = getattr(node.flooder, "store_synced", True)
        session.send_updates(live, DUMP_BEGIN, DUMP_END if session.end_sent else DUMP_UNSYNCED)
        session.dump_sent = True
        if not DUMP_END:
            # No markers in this code: the simulation tells the receiver.
            self.transmit(session, "dump_end", b"", ())

    def _dump_received(self, session: SimSession) -> None:
        session.dump_received = True
        flooder = session.node.flooder
        if hasattr(flooder, "_dump_received"):
            flooder._dump_received(session)  # what Session does at the end marker
            return
        for callback in list(getattr(flooder, "on_synced", ())):
            callback(session.name)

    def on_send(self, session: SimSession, datum, remaining: int) -> None:
        self.updates_sent += 1
        if remaining <= 0:
            self.expired_sends += 1
        limit = self.max_expiry.get(datum.key)
        if limit is not None and self.sim.now > limit + self.tolerance and len(self.zombies) < 5:
            self.zombies.append(
                f"{session.node.name} sends {fmt_key(datum.key)} s={datum.seqno} "
                f"(remaining {remaining} s) at {self.sim.now:.1f}, "
                f"{self.sim.now - limit:.1f} s after its latest intended expiry")

    # -- nodes -------------------------------------------------------------

    def node_down(self, node: Node) -> None:
        """The daemon exits: its sockets close; what it wrote is still delivered."""
        if not node.up:
            return
        node.stop()
        self.last_external = self.sim.now
        for link in node.links:
            conn = link.conn
            if conn is None:
                continue
            link.conn = None
            for end in conn.ends:
                if end.node is node:
                    self._close_end(end)
                else:
                    # The peer sees the connection end after the data in flight.
                    self.sim.at(conn.last[1 - end.end] + 1e-6, self._close_end, end)

    def node_up(self, node: Node, keep_id: bool) -> None:
        if node.up:
            return
        self.last_external = self.sim.now
        node.start(keep_id)
        for link in node.links:
            self.connect_later(link)

    def kicked(self, node: Node, mac: bytes) -> None:
        station = self.station_by_mac(mac)
        self.trace_line(f"{node.name} kicks {mac.hex()}")
        if station is None or station.at != node.index:
            return  # it had left: the kick is right
        why = self.why_kicked(node, mac)
        if self.claims_were_concurrent(node, mac):
            # Claims made concurrently by APs that each took the station on
            # without knowing of the other's claim (the station visited
            # them faster than flooding crosses between them): nothing a
            # node knows tells which association came last, and the store's
            # value order settles it.  Counted, not failed: roaming.py and
            # the README state this limit.  Not excused: a claim made
            # before this node started (a restart obeys no such claim,
            # issue 10, 1), and a lost re-association of a station the node
            # still served (the ping-pong, issue 10, 3).
            self.concurrent_kicks += 1
            self.trace_line(f"  (concurrent claims: {why})")
        else:
            self.kicks_present.append(f"{node.name} kicked station {mac.hex()} associated with "
                                      f"it at {self.sim.now:.1f} ({why})")
        # The station is disconnected and associates again.
        station.kicks += 1
        station.at = None
        station.address = None
        if station.kicks <= 3:
            self.sim.after(self.rng.uniform(1, 3), self.op_assoc, station.index, node.index)

    def claims_were_concurrent(self, node: Node, mac: bytes) -> bool:
        """Whether the claim that beat node's own was written without
        knowledge of it (node's claim is not in its causal past), by a node
        that could not know better: not a claim made before node started,
        nor one that beat node's re-association (see kicked())."""
        key = store_mod.association_key(mac)
        datum = node.store.get(key)
        writes = self.writes.get(key, ())
        own = [w for w in writes if w.node == node.index and w.incarnation == node.incarnation
               and w.value == node.node_id]
        winners = [w for w in writes if datum is not None and w.seqno == datum.seqno
                   and w.value == datum.value]
        if not own or not winners:
            return False
        ours, theirs = own[-1], winners[-1]
        if theirs.during_sync and theirs.value != node.node_id and theirs.time >= ours.time:
            # Local truth of a restarted node (roaming.py, issue 10): until
            # synced it re-claims the stations hostapd listed at its start
            # above whatever claim arrives.  A station that left it within
            # that window is kicked once from the AP it went to.
            return True
        if ours.listed:
            # Issue 10, 1: a station hostapd lists at a restart is never
            # kicked by the claims the dumps bring.
            return False
        if theirs.id in ours.supersedes:
            return False  # ours was made knowing theirs: it had to win
        if ours.reassociation and not theirs.reassociation:
            # A re-association here must beat a claim made elsewhere without
            # knowledge of it (issue 10, 3: the ping-pong).  Two concurrent
            # re-associations (the station bounced back to each AP before
            # either heard of the other) are as undecidable as two claims.
            return False
        return ours.id not in theirs.supersedes

    def why_kicked(self, node: Node, mac: bytes) -> str:
        key = store_mod.association_key(mac)
        datum = node.store.get(key)
        own = [w for w in self.writes.get(key, ()) if w.node == node.index
               and w.incarnation == node.incarnation and w.value == node.node_id]
        if datum is None or not own:
            return "no claim of its own"
        holder = next((n.name for n in self.nodes if n.node_id == datum.value), "?")
        if datum.seqno == own[-1].seqno:
            return (f"its claim s={own[-1].seqno} lost to {holder}'s claim of the same seqno, "
                    "made without knowledge of it")
        return f"{holder}'s claim s={datum.seqno} is newer than its own s={own[-1].seqno}"

    def station_by_mac(self, mac: bytes) -> Station | None:
        for station in self.stations:
            if station.mac == mac:
                return station
        return self.extra_stations.get(mac)

    # -- the workload ------------------------------------------------------

    def station(self, index) -> Station:
        if isinstance(index, int) and 0 <= index < len(self.stations):
            return self.stations[index]
        mac = station_mac(index) if isinstance(index, int) else index
        if mac not in self.extra_stations:
            self.extra_stations[mac] = Station(-1, mac)
        return self.extra_stations[mac]

    def serving(self, station: Station) -> Node | None:
        if station.at is None:
            return None
        node = self.nodes[station.at]
        return node if node.up else None

    def op_assoc(self, s, where: int, disassoc_old: bool = True) -> None:
        self.last_external = self.sim.now
        station = self.station(s)
        old = station.at
        if old == where:
            # associates again with the same AP (after a kick, or a reconnect)
            pass
        station.at = where
        node = self.nodes[where]
        self.trace_line(f"station {station.mac.hex()} associates with {node.name}")
        if node.up:
            self.reassociating = station.mac in node.roaming.clients
            node.roaming.station_associated(IFNAME, station.mac)
            self.reassociating = False
        if old is not None and old != where:
            # hostapd at the old AP reports the station gone: at once when
            # it said goodbye, else when its inactivity timer runs out
            # (ap_max_inactivity, 300 s by default; shortened here).
            delay = self.rng.uniform(0, 2) if disassoc_old else self.rng.uniform(20, 60)
            self.sim.after(delay, self._disassoc_event, station, old,
                           self.nodes[old].incarnation)

    def _disassoc_event(self, station: Station, where: int, incarnation: int) -> None:
        node = self.nodes[where]
        if not node.up or node.incarnation != incarnation or station.at == where:
            return
        self.trace_line(f"{node.name}: station {station.mac.hex()} disassociated")
        node.roaming.station_disassociated(IFNAME, station.mac)

    def op_leave(self, s) -> None:
        self.last_external = self.sim.now
        station = self.station(s)
        node = self.serving(station)
        old = station.at
        station.at = None
        station.address = None
        if old is not None:
            self.trace_line(f"station {station.mac.hex()} leaves {self.nodes[old].name}")
        if node is not None:
            node.roaming.station_disassociated(IFNAME, station.mac)

    def op_roam(self, s, where: int, back_after: float, disassoc_old: bool) -> None:
        self.op_assoc(s, where, disassoc_old)

    def op_pingpong(self, s, where: int, back_after: float, disassoc_old: bool) -> None:
        station = self.station(s)
        home = station.at
        self.op_assoc(s, where, disassoc_old)
        if home is not None and home != where:
            self.sim.after(back_after, self.op_assoc, s, home, disassoc_old)

    def op_dhcp(self, s, requested: bytes | None = None, offer_only: bool = False) -> None:
        """DISCOVER at the station's AP, then REQUEST there (as DhcpServer does)."""
        self.last_external = self.sim.now
        station = self.station(s)
        node = self.serving(station)
        if node is None:
            return
        datum = node.leases.ipv4_lease(station.mac, requested, leases_mod.OFFER_TIME)
        if datum is None:
            self.trace_line(f"{node.name}: no offer for {station.mac.hex()}")
            return
        address = datum.key[1:]
        if not offer_only:
            self.sim.after(self.rng.uniform(0.005, 0.5), self._request, station, node,
                           node.incarnation, address)

    def _request(self, station: Station, node: Node, incarnation: int, address: bytes) -> None:
        self.last_external = self.sim.now
        if station.at != node.index or not node.up or node.incarnation != incarnation:
            return
        leases = node.leases
        own = leases.ipv4_leases(station.mac)
        if own and all(d.key[1:] != address for d in own):
            datum = None
        else:
            datum = leases.claim_ipv4(station.mac, address, self.schedule.lease_time)
        if datum is None:
            self.trace_line(f"{node.name}: NAK {station.mac.hex()} for {fmt_addr(address)}")
            station.address = None
            return
        for other in own:
            if other is not datum:
                leases.release_ipv4(station.mac, other.key[1:])
        station.address = address
        self.record_write(node, datum, ack_until=self.sim.now + self.schedule.lease_time)
        self.trace_line(f"{node.name}: ACK {station.mac.hex()} {fmt_addr(address)}")

    def op_offer_only(self, s) -> None:
        """A DISCOVER whose offer is never taken (the 10 s offer must expire)."""
        self.op_dhcp(s, offer_only=True)

    def op_renew(self, s) -> None:
        station = self.station(s)
        node = self.serving(station)
        if node is None or station.address is None:
            return self.op_dhcp(s)
        self._request(station, node, node.incarnation, station.address)

    def op_release(self, s) -> None:
        self.last_external = self.sim.now
        station = self.station(s)
        node = self.serving(station)
        if node is None or station.address is None:
            return
        node.leases.release_ipv4(station.mac, station.address)
        station.address = None

    def op_v6(self, s) -> None:
        self.last_external = self.sim.now
        station = self.station(s)
        node = self.serving(station)
        if node is not None:
            node.leases.ipv6_lease(station.mac)

    def op_request_on(self, where: int, mac_index: int, host: int) -> None:
        """A client of its own on node `where` asks for a given address."""
        self.last_external = self.sim.now
        node = self.nodes[where]
        if not node.up:
            return
        station = self.station(station_mac(mac_index))
        station.at = where
        datum = node.leases.ipv4_lease(station.mac, address(host), leases_mod.OFFER_TIME)
        if datum is not None:
            self.sim.after(self.rng.uniform(0.005, 0.3), self._request, station, node,
                           node.incarnation, datum.key[1:])

    def op_foreign(self, where: int, key: bytes, seqno: int, value: bytes, lifetime: int) -> None:
        """An update from a peer outside the simulation (a C sroamd)."""
        self.last_external = self.sim.now
        node = self.nodes[where]
        if node.up:
            node.expire()
            known = [d.seqno for n in self.nodes if n.up
                     for d in [n.store.live(key)] if d is not None]
            known += [w.seqno for w in self.writes.get(key, ())]
            far_apart = getattr(store_mod, "seqnos_far_apart", None)  # (newer code only)
            if far_apart is not None and any(far_apart(seqno, k) for k in known):
                # Only a broken or hostile peer jumps a quarter of the
                # seqno space: the store ignores such an update where a
                # live datum holds the key (store.seqnos_far_apart), so the
                # nodes may disagree on this key until the far datum lapses.
                # What must hold for it is quiescence and expiry, checked
                # as for any key; agreement is not asked before it lapses.
                self.far_keys[key] = max(self.far_keys.get(key, 0.0),
                                         self.sim.now + lifetime)
            self.trace_line(f"foreign->{node.name} {fmt_key(key)} s={seqno} v={value.hex()} "
                            f"t={lifetime}")
            node.flooder.receive(wire.Update(key, seqno, value, lifetime), FOREIGN)

    def op_put(self, where: int, key: bytes, value: bytes, lifetime: float) -> None:
        self.last_external = self.sim.now
        node = self.nodes[where]
        if node.up:
            node.store.put(key, value, lifetime)

    def op_flap(self, link_index: int, down_for: float) -> None:
        link = self.links[link_index]
        self.last_external = self.sim.now
        self.reset(link, "flap")
        self._block(link, "flap")
        self.sim.after(down_for, self._unblock, link, "flap")

    def op_partition(self, side: list[int], length: float) -> None:
        self.last_external = self.sim.now
        side = set(side)
        cut = [l for l in self.links if (l.a.index in side) != (l.b.index in side)]
        self.trace_line(f"partition {sorted(side)} for {length:.1f}s")
        for link in cut:
            self.reset(link, "partition")
            self._block(link, "partition")
        for link in cut:
            self.sim.after(length, self._unblock, link, "partition")

    def op_restart(self, where: int, down_for: float, keep_id: bool) -> None:
        node = self.nodes[where]
        self.node_down(node)
        self.sim.after(down_for, self._restart_up, node, node.incarnation, keep_id)

    def _restart_up(self, node: Node, incarnation: int, keep_id: bool) -> None:
        if not node.up and node.incarnation == incarnation:
            self.node_up(node, keep_id)

    def _block(self, link: Link, reason: str) -> None:
        link.blocked[reason] = link.blocked.get(reason, 0) + 1

    def _unblock(self, link: Link, reason: str) -> None:
        count = link.blocked.get(reason, 0) - 1
        if count <= 0:
            link.blocked.pop(reason, None)
        else:
            link.blocked[reason] = count
        self.last_external = self.sim.now
        self.connect_later(link)

    def heal(self) -> None:
        """End of the schedule: every link and node comes back."""
        self.trace_line("heal")
        self.last_external = self.sim.now
        for link in self.links:
            link.blocked.clear()
        for node in self.nodes:
            if not node.up:
                self.node_up(node, True)
        for link in self.links:
            self.connect_later(link)

    # -- running -----------------------------------------------------------

    def run(self) -> Result:
        schedule = self.schedule
        result = Result(schedule.seed, summary=schedule.summary())
        for node in self.nodes:
            node.start(True)
        for link in self.links:
            self.connect_later(link, self.rng.uniform(0, 0.5))
        for action in schedule.actions:
            self.sim.at(action[0], getattr(self, "op_" + action[1]), *action[2:])
        self.sim.at(schedule.duration, self.heal)
        sim = self.sim
        # Run until nothing is left to happen, or until the network has
        # been busy QUIESCE_BOUND seconds after the last external event.
        def drain() -> None:
            while sim.pending():
                when = sim.next_time()
                if when > schedule.duration and when > self.last_external + QUIESCE_BOUND:
                    break
                if self.deliveries >= MAX_DELIVERIES:
                    break
                sim.step()

        drain()
        # The daemon sweeps expiries every second (daemon.py EXPIRY_TICK); a
        # sweep may change data (a conflict's runner-up taking the place of
        # a lapsed winner) and send them: sweep, and let that settle too.
        # A winner in its last seconds falls back on its runner-up only when
        # it lapses: move time past those lapses (the checks excuse such
        # transients, not the nodes that wait for the fallback to reach them).
        for _ in range(3):
            due = [d.expires - node.offset for node in self.nodes if node.up
                   for d in node.store
                   if node.store.runner_up(d.key) is not None
                   and 0 < d.expires - node.clock() <= store_mod.REFRESH_GAIN_MIN]
            if due and max(due) > sim.now:
                sim.now = max(due) + 0.001
            sent = self.updates_sent
            for node in self.nodes:
                if node.up:
                    node.expire()
            if self.updates_sent == sent and not due:
                break
            drain()
        result.messages = self.deliveries
        result.updates = self.updates_sent
        result.lost_messages = self.lost_messages
        result.writes = len(self.write_by_id)
        result.simulated = sim.now
        if self.in_flight:
            result.fail("quiescence",
                        f"{self.in_flight} messages still in flight at {sim.now:.1f} s "
                        f"({sim.now - self.last_external:.1f} s after the last external event, "
                        f"{self.deliveries} delivered)")
        else:
            result.converged_after = max(0.0, self.last_delivery - schedule.duration)
            result.checked = True
            self.check_invariants(result)
        if self.zombies:
            for text in self.zombies:
                result.fail("expiry", text)
        for text in self.kicks_present:
            result.fail("kick", text)
        result.concurrent_kicks = self.concurrent_kicks
        for text in self.reuses:
            result.fail("single_holder", text)
        result.trace = self.trace
        return result

    # -- the invariants ----------------------------------------------------

    def check_invariants(self, result: Result) -> None:
        now = self.sim.now
        tol = self.tolerance
        nodes = [n for n in self.nodes if n.up]
        for node in nodes:
            node.expire()
        held: list[dict[bytes, tuple[int, bytes, float]]] = []
        for node in nodes:
            held.append({d.key: (d.seqno, d.value, d.expires - node.offset)
                         for d in node.store.live_data()})

        # identical (and single_holder)
        keys = set().union(*held) if held else set()
        for key in sorted(keys):
            if self.far_keys.get(key, 0.0) + tol > now:
                continue  # a far seqno jump still live somewhere: see op_foreign
            present = [(node, h[key]) for node, h in zip(nodes, held) if key in h]
            latest = max(expires for _, (_, _, expires) in present)
            if len(present) < len(nodes) and latest > now + tol:
                missing = [n.name for n, h in zip(nodes, held) if key not in h]
                result.fail("identical", f"{fmt_key(key)} live on "
                            f"{[n.name for n, _ in present]} until {latest:.1f} "
                            f"but not on {missing} (at {now:.1f})")
            # (a copy in its last seconds is a transient: as it lapses its
            # node falls back on what the others hold, see Store.expire(); the
            # run went past the fallbacks due, see run().  When every copy is
            # in its last seconds, all of them are gone within seconds.)
            lasting = [p for p in present
                       if p[1][2] > now + store_mod.REFRESH_GAIN_MIN]
            if not lasting:
                continue
            versions = {(seqno, value) for _, (seqno, value, _) in lasting}
            if len(versions) > 1:
                result.fail("identical", f"{fmt_key(key)} differs: " + ", ".join(
                    f"{n.name}=s{s}/{v.hex() or '-'}" for n, (s, v, _) in present))
            spread = latest - min(expires for _, (_, _, expires) in lasting)
            if spread > tol:
                result.fail("identical", f"{fmt_key(key)} expiries differ by {spread:.1f} s "
                            f"(tolerance {tol:.1f})")
            if store_mod.is_lease_key(key):
                macs = {value for _, (_, value, _) in lasting
                        if len(value) == 6 and value != leases_mod.DECLINED}
                if len(macs) > 1:
                    result.fail("single_holder", f"{fmt_key(key)} leased to "
                                + " and ".join(m.hex() for m in sorted(macs)))

        # expiry: nothing held beyond its latest intended expiry
        for node, h in zip(nodes, held):
            for key, (seqno, value, expires) in h.items():
                limit = self.max_expiry.get(key)
                if limit is not None and expires > limit + tol:
                    result.fail("expiry", f"{node.name} holds {fmt_key(key)} s={seqno} until "
                                f"{expires:.1f}, {expires - limit:.1f} s after its latest "
                                "intended expiry")

        # lost: the writes nothing superseded are there, with their value
        # (unless a concurrent write with another value could have beaten
        # them: a conflict, settled by the store's rules) and their expiry
        for key, writes in self.writes.items():
            superseded = set()
            for write in writes:
                superseded |= write.supersedes
            maximal = [w for w in writes if w.id not in superseded]
            allowed = {w.value for w in maximal}
            for w in maximal:
                if w.expires <= now + tol or not (
                        w.reached or self.nodes[w.node].incarnation == w.incarnation):
                    continue
                if not any(self.nodes[n].incarnation == inc for n, inc in w.holders):
                    # Every store that held it crashed since (in a partition
                    # that kept the others from learning it): the daemon saves
                    # its store at a clean stop only.  Counted, not failed.
                    result.lost_with_crashes += 1
                    continue
                rivals = [r for r in writes if r.value != w.value and r.id not in w.supersedes
                          and w.id not in r.supersedes]
                for node, h in zip(nodes, held):
                    got = h.get(key)
                    if got is not None and got[2] <= now + store_mod.REFRESH_GAIN_MIN:
                        continue  # in its last seconds: a transient (see identical)
                    if got is None:
                        if not rivals:
                            result.fail("lost", f"{node.name} lacks {fmt_key(key)}: written by "
                                        f"{self.nodes[w.node].name} at {w.time:.1f} (s={w.seqno} "
                                        f"v={w.value.hex() or '-'} until {w.expires:.1f})")
                        continue
                    seqno, value, expires = got
                    if rivals:
                        if value not in allowed and value not in {r.value for r in rivals}:
                            result.fail("lost", f"{node.name} holds {fmt_key(key)} = "
                                        f"{value.hex() or '-'}, written by nobody lately")
                        continue
                    if value != w.value:
                        result.fail("lost", f"{node.name} holds {fmt_key(key)} = "
                                    f"{value.hex() or '-'}, not {w.value.hex() or '-'} written "
                                    f"by {self.nodes[w.node].name} at {w.time:.1f}")
                    elif store_mod.is_lease_key(key) and expires < w.expires - tol:
                        # (claims are refreshed by their holder: their value matters)
                        result.fail("lost", f"{node.name} holds {fmt_key(key)} until "
                                    f"{expires:.1f}, written to last until {w.expires:.1f}")

        # roaming: served where it is, and only there
        for station in itertools.chain(self.stations, self.extra_stations.values()):
            if station.index < 0:
                continue  # a DHCP-only client (request_on): not associated for real
            serving = [n.name for n in nodes if station.mac in n.roaming.clients]
            if station.at is None:
                if serving:
                    result.fail("roaming", f"station {station.mac.hex()} has left, "
                                f"still served by {serving}")
                continue
            home = self.nodes[station.at]
            if serving != [home.name]:
                result.fail("roaming", f"station {station.mac.hex()} is on {home.name}, "
                            f"served by {serving}")
            key = store_mod.association_key(station.mac)
            for node, h in zip(nodes, held):
                got = h.get(key)
                if got is None or got[1] != home.node_id:
                    result.fail("roaming", f"{node.name} says {station.mac.hex()} is held by "
                                f"{got[1].hex() if got else None}, it is on {home.name}")


def fmt_addr(address: bytes) -> str:
    return str(ipaddress.IPv4Address(address))


def fmt_key(key: bytes) -> str:
    if len(key) == 5 and key[0] == store_mod.IPV4_LEASE:
        return "v4:" + fmt_addr(key[1:])
    if len(key) == 9 and key[0] == store_mod.IPV6_LEASE:
        return "v6:" + key[1:].hex()
    if len(key) == 7 and key[0] == store_mod.ASSOCIATION:
        return "assoc:" + key[1:].hex()
    return key.hex()


def scripted(nodes: int, links: list[tuple], actions: list[tuple], duration: float,
             stations: int = 0, lease_time: int = 1800, seed: int = 0,
             name: str = "scripted") -> Schedule:
    """A schedule written by hand: links as (a, b, base delay, jitter)."""
    specs = [LinkSpec(a, b, base, jitter) for a, b, base, jitter in links]
    return Schedule(seed, nodes, specs, duration, sorted(actions, key=lambda a: a[0]),
                    stations, lease_time, name,
                    max([l.base + l.jitter for l in specs] or [0.0]))


def run_schedule(schedule: Schedule | int, trace: bool = False) -> Result:
    if isinstance(schedule, int):
        schedule = make_schedule(schedule)
    return Net(schedule, trace=trace).run()


def replay(seed: int, trace_lines: int = 40) -> str:
    """A failed schedule again, traced: what the tests print."""
    return run_schedule(make_schedule(seed), trace=True).report(trace_lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run one simulated schedule.")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--trace", action="store_true", help="print the whole trace")
    args = parser.parse_args(argv)
    result = run_schedule(make_schedule(args.seed), trace=args.trace)
    print(result.report(trace_lines=len(result.trace) if args.trace else 0))
    print(f"ok={result.ok} messages={result.messages} updates={result.updates} "
          f"simulated={result.simulated:.1f}s converged_after={result.converged_after}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
