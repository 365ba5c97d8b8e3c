"""Chaos: sroamd daemons flooding through faulty links converge (issue 10).

Setup
-----
N real daemons (``python3 -m sroamd``; 6 by default) peer *only* through
relays (tests/relay.py): node i is given ``-F`` to a relay in front of node
i+1 (a ring) and, for the first N/2 nodes, to a relay in front of node i+N/2
(chords), so the graph has cycles.  Each relay adds its own delay and jitter
(one link is slow: 1-2 s).  Every node has a fixed ``--node-id`` and its own
``--state-dir``, and ``-P 192.0.2.0/24 -P 2001:db8:4444::/48``.

When the machine allows network namespaces (root, iproute2), two of the
nodes are access points: each runs in a namespace of its own with a roaming
interface ``wl0`` and a stand-in hostapd on a test ubusd
(tests/daemon_netns.py), so that stations associate, roam and are kicked,
and the AP installs proto-44 host routes.  (Relays join the namespaces: a
socket stays in the namespace it was made in.)  Without root the AP part is
left out and the test says so.

Each node is watched by a FloodPeer connected to it directly (a "watch"): it
receives the node's dump and then every change, so the test sees each
node's store as other nodes would.  Test peers (a second FloodPeer per node:
a node never sends a datum back where it came from) inject as other nodes
would: IPv4 and IPv6 leases, claims naming synthetic node ids, re-leases
(seqno + 1, another MAC), releases (empty value), short-lived leases (12-20
s), a key whose seqno wraps past 0xffff, and, on the two sides of a
partition, conflicting values for the same key (same seqno; seqno + 1
against seqno + 2 with a release; seqnos exactly 0x8000 apart; a claim of
one MAC for two node ids; leases of served stations).

Schedule (seeded by SROAMD_CHAOS_SEED, so the same seed gives the same
events, targets and parameters; timing is real): after an initial load,
one chaos event every GAP seconds, drawn from: stall a link (0.5-4 s),
reset a link or every link of a node, change a link's delay, SIGKILL a node
and restart it 0.3-2 s later (same node id), SIGTERM likewise, partition the
nodes into two random halves ("hold": links stop delivering; "drop":
connections are reset and refused) for 2-3 gaps, inject a batch, roam a
station between the APs (with or without a disassociation at the old AP;
there and back within 50-300 ms, silently; across a partition), hand a
station to a synthetic node.  Every run has at least
one SIGKILL and one SIGTERM (of an AP, when there are APs), and two
partitions, the last of which is open when the chaos ends.  At most one
node is down at a time.  Then the *final heal*: every partition and stall
is lifted (delays stay) and any node down is started again.

Invariants, checked after the final heal
----------------------------------------
Remaining times travel as relative whole seconds, and the receiver adds them
to its own clock, so a datum that spent T seconds in transit (a slow link, a
stall, a partition that held the connection) lives T seconds longer there.
TRANSIT is the most a datum can have spent in transit: the n-1 slowest
links plus the two longest holds, plus 3 s (printed as transit_bound_s).
And a node may extend its own data by less than the store's refresh
granularity (sroamd.store.REFRESH_GAIN, 0 if none) without telling anyone.

I0 convergence: within CONVERGE_BOUND seconds of the final heal every
   watch shows the same live store (same keys, seqnos, values; expiry times
   within TRANSIT + refresh granularity) and it stays so for twice the
   slowest link's delay + 1.5 s; the time to agreement is printed
   (converged_s).  Then for QUIET seconds no node sends any update at all
   (nothing re-floods for ever).
I1 identical stores: a fresh connection to each node gets a dump (within 8
   s) with the same keys, seqnos and values as every other node's,
   remaining times within the same tolerance; and what each node holds is
   what it flooded to its watch (no change left unannounced).
I2 no address leased to two MACs: follows from I1 per key; moreover every
   lease's value is a MAC (or release) that a test peer injected for that
   key with that seqno (nothing invented, no value adopted from another
   key), except a new lease an AP gave one of its stations; and, as the
   workload never gives one MAC two keys of one kind, no MAC holds two live
   leases of one kind.
I3 nothing acknowledged is lost: a datum (key, seqno, value) is
   *acknowledged* once the watches of two different nodes have seen it
   live (one node alone may legitimately take it to its grave: nothing is
   persisted, and one node at a time is killed).  Unless its lifetime (as
   injected, or as first seen) ends before the check, the final store holds
   that key with a seqno that is not older (16-bit serial arithmetic) and,
   at an equal seqno, the same value or the value of another acknowledged
   or injected datum of that seqno (it lost a conflict to a real contender).
I4 no datum gains time: on no node does an injected datum (other than a
   station's lease or claim, which the serving AP extends) outlive what it
   was injected with by more than TRANSIT, and the short-lived ones are gone
   from every node.
I5 routes only at the serving AP (with APs): each AP's proto-44 routes are
   exactly the live leases of the stations its hostapd lists whose final
   claim names this AP's node id (as `ubus call sroamd status` reports it).
   Stations: the test's model says where each station last associated (an
   AP, or a synthetic node that a test peer claims it for).  A roam either
   tells the old AP's hostapd (disassoc) or not (the station left silently:
   the old AP must kick it when it learns of the new claim; hostapd's
   del_client removes it).  No AP kicks a station whose latest association
   is with that AP (a wrongly kicked station associates again 1 s later, as
   a real one would, but the kick is a violation; except the one the issue's
   rule for restarts accepts: an AP that restarted just before with the
   station on hostapd's list re-claims it once, and if the station had moved
   on from it right after, the AP it went to kicks it; those are counted in
   the figures as local_truth_kicks); in the end a station is
   listed only by the AP it is on, whose node id its claim names, and a
   station handed to a synthetic node is routed by no AP.  (Not modelled: a
   station that left an AP silently while that AP's sroamd was down; hostapd
   would list it until its inactivity timeout.  The test drops it from that
   hostapd before the restart.)
I6 hygiene: a SIGTERM'd daemon exits 0; no daemon log shows a traceback or
   an internal error.

SROAMD_CHAOS_LONG=1 runs a longer schedule (8 nodes, 60 events);
SROAMD_CHAOS_APS=0 leaves the APs out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from floodpeer import FloodPeer, free_port, wait_listening
from relay import RelayHub, host_listener, host_socket
from sroamd import store as store_module
from sroamd.roaming import LOCAL_TRUTH_MIN
from sroamd.wire.flood import Update

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PREFIX4, PREFIX6 = "192.0.2.0/24", "2001:db8:4444::/48"
GATEWAY = "192.0.2.1"
SEED = int(os.environ.get("SROAMD_CHAOS_SEED", "1"))
LONG = os.environ.get("SROAMD_CHAOS_LONG", "") not in ("", "0")

TOL = 3.0            # seconds: slack for whole-second wire times and scheduling
EDGE = 3.0           # data expiring this soon are not compared (they may be gone on some nodes)
QUIET = 3.0          # seconds of silence required after convergence
# A node may extend its own data (an AP its claims and its clients' leases)
# by less than this without telling anyone (the store's refresh granularity):
# the holder's expiry may be this much later than everyone else's.
REFRESH_GRANULARITY = float(getattr(store_module, "REFRESH_GAIN", 0.0))
AP_FLOOD_PORT = 4444


@dataclass
class Params:
    nodes: int = 6
    aps: int = 2
    events: int = 12
    gap: float = 2.0
    stations: int = 4
    initial_v4: int = 30
    initial_v6: int = 12
    initial_claims: int = 10
    short_lived: int = 4
    converge_bound: float = 30.0


def netns_available() -> bool:
    from netlab import missing_requirements
    return missing_requirements() is None and os.environ.get("SROAMD_CHAOS_APS", "2") != "0"


def make_params() -> Params:
    p = Params(aps=2 if netns_available() else 0)
    if LONG:
        p.nodes, p.events, p.gap, p.stations = 8, 60, 2.5, 6
        p.initial_v4, p.initial_v6, p.initial_claims, p.short_lived = 80, 40, 30, 8
    return p


# -- serial arithmetic (RFC 1982 on 16 bits), as the test reads it ----------

def newer(a: int, b: int) -> bool:
    """a is strictly newer than b (never for seqnos exactly 0x8000 apart)."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def key_text(key: bytes) -> str:
    if key[0] == 0 and len(key) == 5:
        return f"v4 {ipaddress.IPv4Address(key[1:])}"
    if key[0] == 1 and len(key) == 9:
        return f"v6 {ipaddress.IPv6Network((key[1:] + bytes(8), 64))}"
    if key[0] == 2 and len(key) == 7:
        return f"claim {mac_str(key[1:])}"
    return key.hex()


def route_of(key: bytes) -> str | None:
    """The proto-44 route destination a lease key makes, as `ip route` prints it."""
    if key[0] == 0 and len(key) == 5:
        return f"{ipaddress.IPv4Address(key[1:])}/32"
    if key[0] == 1 and len(key) == 9:
        return str(ipaddress.IPv6Network((key[1:] + bytes(8), 64)))
    return None


# -- the test's record of what was injected and seen ----------------------

@dataclass
class Injection:
    seqno: int
    value: bytes
    t: float
    time: int
    node: str


@dataclass
class Ack:
    nodes: set = field(default_factory=set)
    first_t: float = 0.0
    min_expires: float = float("inf")


class Ledger:
    def __init__(self):
        self.injected: dict[bytes, list[Injection]] = {}
        self.acks: dict[tuple[bytes, int, bytes], Ack] = {}
        self.history: dict[bytes, list] = {}  # key -> (t, node, update) as the watches saw them

    def inject(self, node: str, u: Update, t: float) -> None:
        self.injected.setdefault(u.key, []).append(Injection(u.seqno, u.value, t, u.time, node))

    def observed(self, node: str, u: Update, t: float) -> None:
        trail = self.history.setdefault(u.key, [])
        if len(trail) < 300:  # (a flood that never stops would fill memory)
            trail.append((t, node, u))
        if u.time <= 0:
            return
        ack = self.acks.get((u.key, u.seqno, u.value))
        if ack is None:
            ack = self.acks[(u.key, u.seqno, u.value)] = Ack(first_t=t)
        ack.nodes.add(node)
        ack.min_expires = min(ack.min_expires, t + u.time)

    def max_seqno(self, key: bytes) -> int | None:
        best = None
        for inj in self.injected.get(key, ()):
            if best is None or newer(inj.seqno, best):
                best = inj.seqno
        return best


class Watch:
    """A FloodPeer on one node: that node's store, as it floods it.

    A node never sends a datum back to the peer it came from, so data are
    injected through a second peer per node (observe=False: what it receives
    is read and dropped), never through the watch.
    """

    def __init__(self, node: "ChaosNode", peer: FloodPeer, observe: bool = True):
        self.node = node
        self.peer = peer
        self.observe = observe
        self.state: dict[bytes, tuple[int, bytes, float]] = {}  # key -> seqno, value, expires
        self.updates = 0
        self.dead = False

    def fileno(self) -> int:
        return self.peer.sock.fileno()

    def read(self, ledger: Ledger) -> None:
        try:
            ok = self.peer.poll(0)
        except OSError:
            ok = False
        if not self.observe:
            self.peer.received.clear()
        for t, u in self.peer.received:
            self.state[u.key] = (u.seqno, u.value, t + u.time)
            ledger.observed(self.node.name, u, t)
            self.updates += 1
        self.peer.received.clear()
        if not ok:
            self.dead = True

    def live(self, now: float) -> dict[bytes, tuple[int, bytes, float]]:
        return {k: v for k, v in self.state.items() if v[2] > now}

    def close(self) -> None:
        self.dead = True
        self.peer.close()


# -- nodes ---------------------------------------------------------------------

class ChaosNode:
    """One daemon: on loopback, or (ap=True) in a namespace with wl0 and hostapd on ubus."""

    def __init__(self, chaos: "Chaos", index: int, ap=None):
        self.chaos = chaos
        self.index = index
        self.ap = ap
        self.ns = ap.ns if ap is not None else None
        self.name = f"ap{index}" if ap is not None else f"n{index}"
        self.node_id = bytes([0x5A, index]) + chaos.rng.randbytes(6)
        self.state_dir = os.path.join(chaos.dir, self.name)
        os.makedirs(self.state_dir, exist_ok=True)
        self.log = os.path.join(chaos.dir, f"{self.name}.log")
        self.port = AP_FLOOD_PORT if ap is not None else free_port()
        self.peer_ports: list[int] = []
        self.proc = None  # subprocess.Popen (loopback) or netlab.Process (namespace)
        self.generation = 0
        self.reported_ids: list[bytes] = []  # node ids the daemon reported (status), APs
        self.ubus = None
        self.hostapd = None
        self._kick_future = None
        if ap is not None:
            from daemon_netns import UbusThread
            self.ubus = UbusThread(os.path.join(chaos.lab.dir, f"ubus-{self.name}.sock"))
            self.hostapd = self.ubus.fake_hostapd("wl0")
            self._kick_future = asyncio.run_coroutine_threadsafe(self._drain_kicks(),
                                                                 self.ubus.loop)

    def __repr__(self) -> str:
        return f"<{self.name}>"

    async def _drain_kicks(self) -> None:
        """hostapd's del_client: the station is deauthenticated, gone from the AP."""
        while True:
            args = await self.hostapd.del_client.get()
            mac = str(args.get("addr"))
            was_there = self.hostapd.clients.pop(mac, None) is not None
            # Wrong: the station's latest association (the test's model) is here.
            wrong = self.chaos.where.get(bytes.fromhex(mac.replace(":", ""))) is self
            self.chaos.kicks.append((time.monotonic(), self.name, mac, was_there, wrong))

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "sroamd", "-d", "1", "-f", str(self.port),
                "-P", PREFIX4, "-P", PREFIX6,
                "--node-id", self.node_id.hex(), "--state-dir", self.state_dir]
        for port in self.peer_ports:
            args += ["-F", f"127.0.0.1:{port}"]
        if self.ap is not None:
            args += ["--ubus-socket", self.ubus.path, "--station-source", "ubus",
                     "-a", GATEWAY, "wl0"]
        else:
            args += ["--station-source", "none"]
        return args

    def start(self) -> None:
        self.generation += 1
        if self.ap is None:
            with open(self.log, "ab") as log:
                log.write(f"=== start {self.generation}\n".encode())
                self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, start_new_session=True)
        else:
            self.proc = self.ns.spawn(["env", f"PYTHONPATH={REPO}", *self.argv()],
                                      name=f"sroamd-{self.generation}")
        self.chaos.started_pids.append(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self._popen().poll() is None

    def _popen(self) -> subprocess.Popen:
        return self.proc if self.ap is None else self.proc.popen

    def stop(self, signo: int) -> int:
        """Send signo, wait for the exit; returns the exit status."""
        popen = self._popen()
        if popen.poll() is None:
            os.kill(popen.pid, signo)
        try:
            return popen.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(5)
            return -999  # did not stop on signo

    def wait_ready(self, timeout: float = 15.0) -> None:
        if self.ap is None:
            wait_listening(self.port, timeout)
            return
        from daemon_netns import in_netns
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-2000:]}")
            try:
                status = self.ubus.call("sroamd", "status")
                subscribed = self.ubus.run(self._subscribed())
            except Exception:
                status, subscribed = None, False
            if status and subscribed:
                try:
                    in_netns(self.ns.name, lambda: FloodPeer(self.port, "127.0.0.1", 1.0)).close()
                    self.reported_ids.append(bytes.fromhex(status["node_id"]))
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready")
            time.sleep(0.05)

    async def _subscribed(self) -> bool:
        path = self.ubus.broker.paths.get("hostapd.wl0")
        return bool(path is not None and path.subscribers)

    @property
    def current_id(self) -> bytes | None:
        return self.reported_ids[-1] if self.reported_ids else None

    def connect(self) -> FloodPeer:
        if self.ap is None:
            return FloodPeer(self.port, "127.0.0.1", 5.0)
        from daemon_netns import in_netns
        return in_netns(self.ns.name, lambda: FloodPeer(self.port, "127.0.0.1", 5.0))

    def listener(self):
        """A relay listening socket where this node's -F can reach it."""
        if self.ap is None:
            return host_listener()
        from daemon_netns import in_netns
        return in_netns(self.ns.name, host_listener)

    def socket_factory(self):
        """Sockets that reach this node's flood port (for a relay's upstream side)."""
        if self.ap is None:
            return host_socket
        from daemon_netns import in_netns
        name = self.ns.name
        return lambda: in_netns(name, host_socket)

    def routes(self) -> set[str]:
        out = self.ns.ip("-4", "route", "show", "proto", "44") + \
            self.ns.ip("-6", "route", "show", "proto", "44")
        dests = set()
        for line in out.splitlines():
            if line.strip():
                dest = line.split()[0]
                dests.add(dest if "/" in dest else dest + "/32")
        return dests

    # stations (test thread -> hostapd stand-in on the ubus thread)
    def associate(self, mac: bytes) -> None:
        text = mac_str(mac)

        async def go():
            self.hostapd.clients[text] = {"auth": True, "assoc": True, "authorized": True,
                                          "aid": 1}
            await self.hostapd.assoc(text)
        self.ubus.run(go())

    def disassociate(self, mac: bytes) -> None:
        text = mac_str(mac)

        async def go():
            if self.hostapd.clients.pop(text, None) is not None:
                await self.hostapd.disassoc(text)
        self.ubus.run(go())

    def stations(self) -> set[str]:
        async def get():
            return set(self.hostapd.clients)
        return self.ubus.run(get())

    def log_text(self) -> str:
        if self.ap is None:
            try:
                with open(self.log, errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        texts = []
        for proc in self.chaos.lab.processes:
            if proc.ns is self.ns and "sroamd" in " ".join(proc.argv):
                texts.append(f"=== {proc.log}\n" + proc.output())
        return "\n".join(texts)

    def close(self) -> None:
        if self.proc is not None and self.alive():
            self.stop(signal.SIGKILL)
        if self._kick_future is not None:
            self.ubus.loop.call_soon_threadsafe(self._kick_future.cancel)
        if self.ubus is not None:
            self.ubus.close()


# -- the run --------------------------------------------------------------------

class Chaos:
    def __init__(self, seed: int, params: Params, directory: str):
        self.seed = seed
        self.p = params
        self.rng = random.Random(seed)
        self.dir = directory
        self.lab = None
        self.hub = None
        self.nodes: list[ChaosNode] = []
        self.watches: dict[str, Watch | None] = {}
        self.injectors: dict[str, Watch | None] = {}
        self.ledger = Ledger()
        self.started_pids: list[int] = []
        self.links = []  # (link, a, b): a's -F reaches b through link
        self.kicks: list[tuple[float, str, str, bool, bool]] = []
        # (time, node, MACs hostapd listed) of each restart of a daemon
        self.restarts: list[tuple[float, str, set]] = []
        self.local_truth_kicks: list[str] = []
        self.kicks_seen = 0
        self.events: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.pending: list[tuple[float, int, callable]] = []  # due, order, action
        self._order = 0
        self.down: ChaosNode | None = None
        self.partition_links: list = []
        self.partition_sides: tuple[set, set] | None = None
        self.term_status: list[tuple[str, int]] = []
        self.mac_counter = 0
        self.v4_free = [bytes([192, 0, 2, i]) for i in range(10, 251)]
        self.v6_free = [bytes.fromhex("20010db84444") + i.to_bytes(2, "big") for i in range(1, 4096)]
        self.rng.shuffle(self.v4_free)
        self.rng.shuffle(self.v6_free)
        self.stations: list[bytes] = []
        self.where: dict[bytes, object] = {}  # station MAC -> ChaosNode (AP), bytes (synthetic id), None
        self.synthetic_ids = [bytes([0xFE, i]) + bytes(self.rng.randbytes(6)) for i in range(8)]
        self.figures: dict = {}
        self.holds: list[float] = []  # how long a link kept data back (stalls, partitions)
        self.link_max_delay: dict[str, float] = {}

    # -- setup -----------------------------------------------------------------

    def note(self, text: str) -> None:
        self.events.append((time.monotonic() - self.t0, text))

    def setup(self) -> None:
        p = self.p
        self.hub = RelayHub()
        ap_indexes = set()
        if p.aps:
            from netlab import Lab
            self.lab = Lab(dad=False)
            # The switch namespace's bridges and ports must not talk IPv6: a
            # bridge coming up sends Router Solicitations, which an AP would
            # answer with a /64 of its own for a "client" the test never made.
            self.lab.sw.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1")
            # spread the APs around the ring
            ap_indexes = {round(i * p.nodes / p.aps) + 1 for i in range(p.aps)}
        for i in range(p.nodes):
            ap = None
            if i in ap_indexes:
                ap = self.lab.access_point(f"ap{i}")
                ap.ns.addr("wl0", f"{GATEWAY}/24")
                ap.ns.ip("addr", "add", "fe80::44/64", "dev", "wl0")
            self.nodes.append(ChaosNode(self, i, ap))
        n = p.nodes
        pairs = [(i, (i + 1) % n) for i in range(n)] + [(i, (i + n // 2) % n) for i in range(n // 2)]
        slow = self.rng.randrange(len(pairs))
        for k, (i, j) in enumerate(pairs):
            a, b = self.nodes[i], self.nodes[j]
            if k == slow:
                delay, jitter = self.rng.uniform(1.0, 1.8), 0.2
            else:
                delay, jitter = self.rng.uniform(0.005, 0.15), self.rng.uniform(0, 0.1)
            link = self.hub.link(f"{a.name}->{b.name}", ("127.0.0.1", b.port),
                                 listener=a.listener(), connect_socket=b.socket_factory(),
                                 delay=delay, jitter=jitter, seed=self.seed * 1000 + k)
            a.peer_ports.append(link.port)
            self.links.append((link, a, b))
            self.link_max_delay[link.name] = delay + jitter
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
            self.connect_watches(node)
        self.t0 = time.monotonic()
        self.note("started: " + ", ".join(
            f"{l.name} {l.delay * 1000:.0f}+{l.jitter * 1000:.0f}ms" for l, _, _ in self.links))

    def connect_watches(self, node: ChaosNode) -> None:
        self.watches[node.name] = Watch(node, node.connect())
        self.injectors[node.name] = Watch(node, node.connect(), observe=False)

    def close(self) -> None:
        for watch in [*self.watches.values(), *self.injectors.values()]:
            if watch is not None:
                watch.close()
        for node in self.nodes:
            try:
                node.close()
            except Exception as e:  # keep cleaning up
                print(f"closing {node.name}: {e!r}")
        if self.hub is not None:
            self.hub.close()
        if self.lab is not None:
            self.lab.close(raise_errors=False)

    # -- time --------------------------------------------------------------------

    def pump(self, seconds: float) -> None:
        """Read every watch for `seconds` (and run due scheduled actions)."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            while self.kicks_seen < len(self.kicks):
                self.on_kick(*self.kicks[self.kicks_seen])
                self.kicks_seen += 1
            while self.pending and self.pending[0][0] <= now:
                _, _, action = self.pending.pop(0)
                action()
                now = time.monotonic()
            if now >= deadline:
                return
            watches = [w for w in [*self.watches.values(), *self.injectors.values()]
                       if w is not None and not w.dead]
            wait = deadline - now
            if self.pending:
                wait = min(wait, max(0.0, self.pending[0][0] - now))
            wait = min(wait, 0.1)
            if not watches:
                time.sleep(wait)
                continue
            # (poll, not select: descriptors may be numbered past FD_SETSIZE)
            poller = select.poll()
            by_fd = {}
            for watch in watches:
                by_fd[watch.fileno()] = watch
                poller.register(watch.fileno(), select.POLLIN)
            for fd, _ in poller.poll(wait * 1000):
                by_fd[fd].read(self.ledger)

    def later(self, delay: float, action) -> None:
        self._order += 1
        self.pending.append((time.monotonic() + delay, self._order, action))
        self.pending.sort(key=lambda x: (x[0], x[1]))

    # -- injection ------------------------------------------------------------------

    def new_mac(self) -> bytes:
        self.mac_counter += 1
        return bytes([0x02, 0xC4, 0, 0]) + self.mac_counter.to_bytes(2, "big")

    def alive_nodes(self, among=None) -> list[ChaosNode]:
        nodes = among if among is not None else self.nodes
        return [n for n in nodes if n is not self.down and n.alive()
                and self.injectors.get(n.name) is not None and not self.injectors[n.name].dead]

    def inject(self, node: ChaosNode | None, *updates: Update, side=None) -> bool:
        if node is None:
            candidates = self.alive_nodes(side)
            if not candidates:
                return False
            node = self.rng.choice(candidates)
        injector = self.injectors.get(node.name)
        if injector is None or injector.dead:
            return False
        try:
            injector.peer.send(*updates)
        except OSError:
            return False
        t = time.monotonic()
        for u in updates:
            self.ledger.inject(node.name, u, t)
        return True

    def lease_update(self, kind: int, time_left: int, seqno: int | None = None,
                     mac: bytes | None = None) -> Update:
        if kind == 0:
            key = b"\x00" + self.v4_free.pop()
        else:
            key = b"\x01" + self.v6_free.pop()
        if seqno is None:
            seqno = self.rng.randrange(0x10000)
        return Update(key, seqno, mac or self.new_mac(), time_left)

    def known_leases(self) -> list[bytes]:
        """Lease keys injected so far, except the short-lived ones (left to expire)."""
        short = set(getattr(self, "short_keys", ()))
        return sorted(k for k in self.ledger.injected if k[0] in (0, 1) and k not in short)

    def random_batch(self, count: int) -> list[Update]:
        """New leases, re-leases, releases and claims (keys known to the ledger)."""
        out = []
        known = self.known_leases()
        stations = {b"\x02" + mac for mac in self.stations}
        claims = sorted(k for k in self.ledger.injected if k[0] == 2 and k not in stations)
        for _ in range(count):
            r = self.rng.random()
            if r < 0.45 or not known:
                out.append(self.lease_update(self.rng.choice((0, 1)), self.rng.randrange(300, 3601)))
            elif r < 0.65:
                key = self.rng.choice(known)
                out.append(Update(key, (self.ledger.max_seqno(key) + 1) & 0xFFFF, self.new_mac(),
                                  self.rng.randrange(300, 3601)))
            elif r < 0.75:
                key = self.rng.choice(known)
                out.append(Update(key, (self.ledger.max_seqno(key) + 1) & 0xFFFF, b"",
                                  self.rng.randrange(300, 3601)))
            elif r < 0.9 or not claims:
                out.append(Update(b"\x02" + self.new_mac(), self.rng.randrange(0x10000),
                                  self.rng.choice(self.synthetic_ids), self.rng.randrange(300, 3601)))
            else:
                key = self.rng.choice(claims)
                out.append(Update(key, (self.ledger.max_seqno(key) + 1) & 0xFFFF,
                                  self.rng.choice(self.synthetic_ids), self.rng.randrange(300, 3601)))
        return out

    def initial_load(self) -> None:
        p = self.p
        updates = [self.lease_update(0, self.rng.randrange(600, 3601)) for _ in range(p.initial_v4)]
        updates += [self.lease_update(1, self.rng.randrange(600, 3601)) for _ in range(p.initial_v6)]
        updates += [Update(b"\x02" + self.new_mac(), self.rng.randrange(0x10000),
                           self.rng.choice(self.synthetic_ids), self.rng.randrange(600, 3601))
                    for _ in range(p.initial_claims)]
        # a key about to wrap its seqno (updated later by re-leases)
        updates.append(self.lease_update(0, 3000, seqno=0xFFFF))
        self.short_keys = []
        for _ in range(p.short_lived):
            u = self.lease_update(0, self.rng.randrange(12, 21))
            self.short_keys.append(u.key)
            updates.append(u)
        if p.aps:
            for _ in range(p.stations):
                mac = self.new_mac()
                self.stations.append(mac)
                self.where[mac] = None
                updates.append(self.lease_update(0, 3600, mac=mac))
                updates.append(self.lease_update(1, 3600, mac=mac))
        self.rng.shuffle(updates)
        for i in range(0, len(updates), 8):
            self.inject(None, *updates[i:i + 8])
        self.note(f"initial load: {len(updates)} updates")
        self.pump(1.0)
        aps = self.aps()
        for k, mac in enumerate(self.stations):
            ap = aps[k % len(aps)]
            ap.associate(mac)
            self.where[mac] = ap
            self.note(f"station {mac_str(mac)} associates at {ap.name}")
        self.pump(1.0)

    def aps(self) -> list[ChaosNode]:
        return [n for n in self.nodes if n.ap is not None]

    # -- chaos events -----------------------------------------------------------------

    def schedule(self) -> list[tuple[str, dict]]:
        """The chaos events of this seed, drawn up front (targets and parameters too)."""
        p = self.p
        rng = self.rng
        n = p.nodes
        kinds = ["stall", "reset", "reset_node", "delay", "kill", "term", "inject", "roam",
                 "pingpong", "synthetic", "partition"]
        weights = [3, 2, 1, 1, 2, 2, 3, 2, 1, 1, 1]
        if not p.aps:
            kinds, weights = kinds[:7] + kinds[-1:], weights[:7] + weights[-1:]
        ap_idx = [node.index for node in self.nodes if node.ap is not None]
        forced = ["partition", "kill", "term"]
        events = [(k, {}) for k in forced]
        if ap_idx:
            events[1][1]["node"] = rng.choice(ap_idx)
            events[2][1]["node"] = rng.choice(ap_idx)
            events[0][1]["split_aps"] = True
        while len(events) < p.events - 1:
            events.append((rng.choices(kinds, weights)[0], {}))
        rng.shuffle(events)
        events.append(("partition", {"final": True, "split_aps": bool(ap_idx)}))
        for kind, args in events:
            args.setdefault("node", rng.randrange(n))
            args.setdefault("link", rng.randrange(len(self.links)))
            args["seconds"] = rng.uniform(0.5, 4.0) if kind == "stall" else rng.uniform(0.3, 2.0)
            args["delay"] = rng.uniform(1.0, 2.0) if rng.random() < 0.2 else rng.uniform(0.0, 0.3)
            args["jitter"] = rng.uniform(0, 0.15)
            args["mode"] = rng.choice(("hold", "drop"))
            args["gaps"] = rng.choice((2, 3))
            args["side"] = sorted(rng.sample(range(n), rng.randrange(2, n - 1)))
            args["count"] = rng.randrange(4, 12)
            args["station"] = rng.randrange(max(1, p.stations))
            args["pause"] = rng.uniform(0.05, 0.3)
            args["leave"] = rng.random() < 0.5
        return events

    def run(self) -> None:
        p = self.p
        self.initial_load()
        events = self.schedule()
        for k, (kind, args) in enumerate(events):
            getattr(self, "ev_" + kind)(**args)
            self.pump(p.gap if k < len(events) - 1 else 3.0)
        self.final_heal()
        self.converge()

    def node_down(self, node: ChaosNode, signo: int, seconds: float) -> None:
        for table in (self.watches, self.injectors):
            watch = table.get(node.name)
            if watch is not None:
                watch.read(self.ledger)
                watch.close()
            table[node.name] = None
        self.down = node
        status = node.stop(signo)
        if node.ap is not None:  # the dead daemon's ubus objects go with its connection
            deadline = time.monotonic() + 5
            while node.ubus.run(node._subscribed()) and time.monotonic() < deadline:
                time.sleep(0.02)
        if signo == signal.SIGTERM:
            self.term_status.append((node.name, status))
        self.note(f"{node.name}: {signal.Signals(signo).name} (exit {status}); "
                  f"restart in {seconds:.1f} s")
        self.later(seconds, lambda: self.node_up(node))

    def node_up(self, node: ChaosNode) -> None:
        if node.alive():
            return
        if node.ap is not None:
            # Stations that left this AP silently while its sroamd was down
            # would still be listed by a real hostapd (until its inactivity
            # timeout) and re-claimed on start: the test does not model that.
            for text in node.stations():
                mac = bytes.fromhex(text.replace(":", ""))
                if self.where.get(mac) is not node:
                    node.ubus.run(self._forget(node, text))
                    self.note(f"{node.name}: hostapd forgets {text} (left while sroamd was down)")
        # What hostapd lists at the start: stations the restarted sroamd
        # holds on to until synced (roaming.py's local truth).
        listed = {bytes.fromhex(t.replace(":", "")) for t in node.stations()} \
            if node.ap is not None else set()
        self.restarts.append((time.monotonic(), node.name, listed))
        node.start()
        node.wait_ready()
        self.connect_watches(node)
        if self.down is node:
            self.down = None
        extra = f", node id {node.current_id.hex()}" if node.ap is not None else ""
        self.note(f"{node.name}: restarted{extra}")

    @staticmethod
    async def _forget(node: ChaosNode, text: str) -> None:
        node.hostapd.clients.pop(text, None)

    def ev_kill(self, node, seconds, **_):
        self._down(node, signal.SIGKILL, seconds)

    def ev_term(self, node, seconds, **_):
        self._down(node, signal.SIGTERM, seconds)

    def _down(self, index, signo, seconds):
        node = self.nodes[index]
        if self.down is not None:
            self.note(f"({node.name} not stopped: {self.down.name} is down; reset instead)")
            self.ev_reset_node(index)
            return
        self.node_down(node, signo, seconds)

    def ev_stall(self, link, seconds, **_):
        link = self.links[link][0]
        self.hub.stall(link, seconds)
        self.holds.append(seconds)
        self.note(f"{link.name}: stall {seconds:.1f} s")

    def ev_reset(self, link, **_):
        link = self.links[link][0]
        self.hub.reset(link)
        self.note(f"{link.name}: reset")

    def ev_reset_node(self, node, **_):
        node = self.nodes[node]
        for link, a, b in self.links:
            if node in (a, b):
                self.hub.reset(link)
        self.note(f"{node.name}: every link reset")

    def ev_delay(self, link, delay, jitter, **_):
        link = self.links[link][0]
        self.hub.set_delay(link, delay, jitter)
        self.link_max_delay[link.name] = max(self.link_max_delay[link.name], delay + jitter)
        self.note(f"{link.name}: delay {delay * 1000:.0f}+{jitter * 1000:.0f} ms")

    def ev_inject(self, count, **_):
        batch = self.random_batch(count)
        ok = self.inject(None, *batch)
        self.note(f"inject {len(batch)} updates" + ("" if ok else " (failed)"))

    def ev_partition(self, side, mode, gaps, final=False, split_aps=False, **_):
        if self.partition_sides is not None:
            self.note("(partition already open: stall instead)")
            self.ev_stall(self.rng.randrange(len(self.links)), 2.0)
            return
        a = {self.nodes[i] for i in side}
        aps = self.aps()
        if split_aps and len(aps) >= 2:
            # the first AP on side a, the second on side b
            a = (a | {aps[0]}) - {aps[1]}
        b = set(self.nodes) - a
        self.partition_sides = (a, b)
        self.partition_since = time.monotonic()
        self.partition_links = [link for link, x, y in self.links if (x in a) != (y in a)]
        for link in self.partition_links:
            self.hub.partition(link, mode)
        self.note(f"partition ({mode}): {sorted(n.name for n in a)} | {sorted(n.name for n in b)}")
        self.pump(0.3)
        self.conflicts(a, b)
        if not final:
            self.later(gaps * self.p.gap + 0.5, self.heal_partition)

    def heal_partition(self) -> None:
        if self.partition_sides is not None:
            self.holds.append(time.monotonic() - self.partition_since)
        for link in self.partition_links:
            self.hub.heal(link)
        self.note(f"partition healed ({len(self.partition_links)} links)")
        self.partition_links = []
        self.partition_sides = None

    def conflicts(self, a: set, b: set) -> None:
        """Conflicting data injected on the two sides of a partition."""
        rng = self.rng
        side_a, side_b = sorted(a, key=lambda n: n.index), sorted(b, key=lambda n: n.index)
        left, right = [], []
        # the same fresh key, same seqno, two MACs, different times
        for kind in (0, 1):
            u = self.lease_update(kind, rng.randrange(600, 3601))
            left.append(u)
            right.append(Update(u.key, u.seqno, self.new_mac(), rng.randrange(600, 3601)))
        # the same fresh key, seqnos exactly 0x8000 apart
        u = self.lease_update(0, rng.randrange(600, 3601))
        left.append(u)
        right.append(Update(u.key, (u.seqno + 0x8000) & 0xFFFF, self.new_mac(), rng.randrange(600, 3601)))
        # known keys: both sides re-lease at seqno + 1; a release at seqno + 2 on one side
        known = self.known_leases()
        for key in rng.sample(known, min(3, len(known))):
            s = self.ledger.max_seqno(key)
            left.append(Update(key, (s + 1) & 0xFFFF, self.new_mac(), rng.randrange(600, 3601)))
            right.append(Update(key, (s + 1) & 0xFFFF, self.new_mac(), rng.randrange(600, 3601)))
        key = rng.choice(known)
        s = self.ledger.max_seqno(key)
        left.append(Update(key, (s + 1) & 0xFFFF, self.new_mac(), rng.randrange(600, 3601)))
        right.append(Update(key, (s + 2) & 0xFFFF, b"", rng.randrange(600, 3601)))
        # one MAC claimed for two node ids at one seqno
        mac = self.new_mac()
        s = rng.randrange(0x10000)
        left.append(Update(b"\x02" + mac, s, self.synthetic_ids[0], rng.randrange(600, 3601)))
        right.append(Update(b"\x02" + mac, s, self.synthetic_ids[1], rng.randrange(600, 3601)))
        ok_a = self.inject(None, *left, side=side_a)
        ok_b = self.inject(None, *right, side=side_b)
        self.note(f"conflicts injected: {len(left)} keys on both sides"
                  + ("" if ok_a and ok_b else f" (failed: a {ok_a} b {ok_b})"))
        # a station roams across the partition
        aps = self.aps()
        if self.stations and len(aps) >= 2:
            ap_a = [x for x in aps if x in a]
            ap_b = [x for x in aps if x in b]
            if ap_a and ap_b:
                mac = self.stations[rng.randrange(len(self.stations))]
                src = self.where[mac] if self.where[mac] in aps else ap_a[0]
                dst = ap_b[0] if src in a else ap_a[0]
                self.move_station(mac, dst, pause=0.05, leave=rng.random() < 0.5)

    def final_heal(self) -> None:
        if self.partition_sides is not None:
            self.holds.append(time.monotonic() - self.partition_since)
        for link, _, _ in self.links:
            self.hub.heal(link)
        self.partition_links = []
        self.partition_sides = None
        # run anything scheduled (restarts) at once
        for _, _, action in self.pending:
            action()
        self.pending.clear()
        for node in self.nodes:
            if not node.alive():
                self.node_up(node)
        self.t_heal = time.monotonic()
        self.note("final heal: every partition and stall lifted, every node up")

    # stations ---------------------------------------------------------------

    def move_station(self, mac: bytes, dst, pause: float, leave: bool = True) -> None:
        """The station leaves where it is and, `pause` later, associates with dst
        (an AP node) or is claimed by a synthetic node (bytes).

        leave: the old AP's hostapd reports the disassociation; else the
        station left silently (as Wi-Fi stations often do) and the old AP
        learns of the roam only from the new claim, and must kick it."""
        src = self.where[mac]
        if isinstance(src, ChaosNode) and leave:
            src.disassociate(mac)
        self.pump(pause)
        self.where[mac] = dst  # (before the event: a kick judged meanwhile sees the new truth)
        if isinstance(dst, ChaosNode):
            dst.associate(mac)
            what = dst.name
        else:
            key = b"\x02" + mac
            seen = [w.state[key][0] for w in self.watches.values()
                    if w is not None and key in w.state]
            s = max(seen, key=lambda x: (x - seen[0]) & 0xFFFF) if seen else 0
            self.inject(None, Update(key, (s + 2) & 0xFFFF, dst, 3000))
            what = f"synthetic node {dst.hex()}"
        src_name = src.name if isinstance(src, ChaosNode) else "elsewhere"
        self.note(f"station {mac_str(mac)}: {src_name} -> {what} ({pause * 1000:.0f} ms"
                  f"{'' if leave else ', left silently'})")

    def local_truth_kick(self, t: float, name: str, text: str) -> bool:
        """A kick the issue's rule for restarts accepts: another AP restarted
        shortly before (within LOCAL_TRUTH_MIN and the transit bound) with the
        station on hostapd's list, re-claims it above whatever claim arrives
        (issue 10, roaming.py), and the station had moved on from it just
        after: it is kicked once from the AP it went to.  Counted, printed."""
        mac = bytes.fromhex(text.replace(":", ""))
        for when, node, listed in self.restarts:
            if node != name and mac in listed and 0 <= t - when <= LOCAL_TRUTH_MIN + 15:
                self.local_truth_kicks.append(f"{t - self.t0:.1f} {name} {text} "
                                              f"(after {node}'s restart)")
                return True
        return False

    def on_kick(self, t: float, name: str, text: str, was_there: bool, wrong: bool) -> None:
        self.note(f"{name} kicks {text}" + (" WRONGLY: the station is there" if wrong else ""))
        if wrong:  # the station associates again a second later, as a real one would
            node = next(n for n in self.nodes if n.name == name)
            mac = bytes.fromhex(text.replace(":", ""))

            def back():
                if self.where.get(mac) is node and text not in node.stations():
                    node.associate(mac)
                    self.note(f"station {text} associates again at {name}")
            self.later(1.0, back)

    def ev_roam(self, station, pause, leave, **_):
        mac = self.stations[station]
        aps = self.aps()
        here = self.where[mac]
        choices = [ap for ap in aps if ap is not here] or aps
        self.move_station(mac, self.rng.choice(choices), pause, leave)

    def ev_pingpong(self, station, pause, **_):
        mac = self.stations[station]
        aps = self.aps()
        here = self.where[mac] if self.where[mac] in aps else aps[0]
        other = [ap for ap in aps if ap is not here][0]
        if self.where[mac] is not here:
            self.move_station(mac, here, 0.05)
        # there and straight back, silently: issue 10, 3
        self.move_station(mac, other, pause, leave=False)
        self.move_station(mac, here, pause, leave=False)

    def ev_synthetic(self, station, **_):
        mac = self.stations[station]
        self.move_station(mac, self.rng.choice(self.synthetic_ids[2:]), 0.05)

    # -- convergence and checks ------------------------------------------------------

    def transit_bound(self) -> float:
        """The most time a datum can have spent in transit on its way to a node.

        Remaining times travel as relative seconds, and a receiver adds them to
        its own clock: a datum delivered late (a slow link, a stall, a
        partition that held the connection) lives that much longer there.  So
        two nodes' expiry times for one datum may differ by up to this, and a
        datum may outlive its injected lifetime by up to this, but never more
        (more would be time gained going round a cycle).  Bound: the slowest
        simple path (n-1 slowest links) plus the two longest holds.
        """
        delays = sorted(self.link_max_delay.values(), reverse=True)[:len(self.nodes) - 1]
        holds = sorted(self.holds, reverse=True)[:2]
        return sum(delays) + sum(holds) + TOL

    def compare(self, tables: dict[str, dict], now: float) -> list[str]:
        """Differences between the nodes' live stores (key -> seqno, value, expires)."""
        names = sorted(tables)
        keys = set()
        for t in tables.values():
            keys.update(t)
        diffs = []
        for key in sorted(keys):
            entries = {n: tables[n].get(key) for n in names}
            live = {n: e for n, e in entries.items() if e is not None and e[2] > now + EDGE}
            if not live:
                continue
            if len(live) < len(names):
                if all(e[2] <= now + EDGE + self.transit_bound() for e in live.values()):
                    continue  # expiring, gone here and there already
                missing = [n for n in names if n not in live]
                diffs.append(f"{key_text(key)}: missing at {missing}")
                continue
            values = {(e[0], e[1]) for e in live.values()}
            if len(values) > 1:
                diffs.append(f"{key_text(key)}: " + ", ".join(
                    f"{n}=s{e[0]}/{e[1].hex() or '-'}" for n, e in sorted(live.items())))
                continue
            expiries = [e[2] for e in live.values()]
            if max(expiries) - min(expiries) > self.transit_bound() + REFRESH_GRANULARITY:
                diffs.append(f"{key_text(key)}: remaining times " + ", ".join(
                    f"{n}={e[2] - now:.1f}" for n, e in sorted(live.items())))
        return diffs

    def expected_routes(self, table: dict, now: float) -> dict[str, set[str]]:
        """Per AP: the routes it should have, from a converged store `table`."""
        expected = {}
        for ap in self.aps():
            here = {bytes.fromhex(m.replace(":", "")) for m in ap.stations()}
            routes = set()
            for key, (seqno, value, expires) in table.items():
                if expires <= now or route_of(key) is None or value not in here:
                    continue
                claim = table.get(b"\x02" + value)
                if claim is not None and claim[2] > now and claim[1] == ap.current_id:
                    routes.add(route_of(key))
            expected[ap.name] = routes
        return expected

    def converge(self) -> None:
        p = self.p
        max_delay = max(l.delay + l.jitter for l, _, _ in self.links)
        stable_for = 2 * max_delay + 1.5
        deadline = self.t_heal + p.converge_bound + stable_for
        agreed_since = None
        routes_ok_since = None
        self.last_diffs = []
        self.last_route_diffs = []
        next_route_check = 0.0
        while time.monotonic() < deadline:
            self.pump(0.1)
            now = time.monotonic()
            if any(w is None or w.dead for w in self.watches.values()):
                agreed_since = None
                continue
            tables = {name: w.state for name, w in self.watches.items()}
            diffs = self.compare(tables, now)
            self.last_diffs = diffs
            if diffs:
                agreed_since = None
                routes_ok_since = None
                continue
            if agreed_since is None:
                agreed_since = now
            if self.aps() and now >= next_route_check:
                next_route_check = now + 0.3
                table = next(iter(tables.values()))
                expected = self.expected_routes(table, now)
                route_diffs = [f"{ap.name}: has {sorted(ap.routes() - expected[ap.name])}, "
                               f"lacks {sorted(expected[ap.name] - ap.routes())}"
                               for ap in self.aps() if ap.routes() != expected[ap.name]]
                self.last_route_diffs = route_diffs
                if route_diffs:
                    routes_ok_since = None
                elif routes_ok_since is None:
                    routes_ok_since = now
            if now - agreed_since >= stable_for and \
                    (not self.aps() or (routes_ok_since is not None
                                        and now - routes_ok_since >= 1.0)):
                break
        self.figures["stable_window_s"] = round(stable_for, 2)
        self.figures["transit_bound_s"] = round(self.transit_bound(), 1)
        self.figures["converged_s"] = (round(agreed_since - self.t_heal, 2)
                                       if agreed_since is not None
                                       and time.monotonic() - agreed_since >= stable_for else None)
        if self.aps():
            self.figures["routes_settled_s"] = (round(routes_ok_since - self.t_heal, 2)
                                                if routes_ok_since is not None else None)

    def fresh_dumps(self) -> dict[str, dict]:
        """A new connection to each node, its dump read for a moment."""
        dumps = {}
        self.dump_sizes = {}
        for node in self.nodes:
            try:
                peer = node.connect()
            except OSError:
                dumps[node.name] = {}
                self.dump_sizes[node.name] = (0, 0, False, True)
                continue
            try:
                peer.wait_for(lambda p: p.handshake and p.received, timeout=3)
                last = len(peer.received)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:  # until 0.3 s pass with nothing new
                    peer.wait_for(lambda p: False, timeout=0.3)
                    if len(peer.received) == last:
                        break
                    last = len(peer.received)
                dumps[node.name] = {u.key: (u.seqno, u.value, t + u.time)
                                    for t, u in peer.received if u.time > 0}
                self.dump_sizes[node.name] = (len(peer.received), len(dumps[node.name]),
                                              peer.handshake, peer.closed)
            finally:
                peer.close()
        return dumps

    def check(self) -> tuple[list[str], dict]:
        p = self.p
        violations = []
        f = self.figures
        if f.get("converged_s") is None or f["converged_s"] > p.converge_bound:
            gone = [name for name, w in self.watches.items() if w is None or w.dead]
            violations.append(f"I0: no convergence within {p.converge_bound} s of the final heal; "
                              + (f"watches lost (node down?): {gone}; " if gone else "")
                              + f"still differing: {self.last_diffs[:12]}"
                              + (f"; routes: {self.last_route_diffs}" if self.last_route_diffs else ""))
        # I0 quiescence
        before = {name: w.updates for name, w in self.watches.items() if w is not None}
        self.pump(QUIET)
        chatter = {name: w.updates - before.get(name, 0) for name, w in self.watches.items()
                   if w is not None and w.updates != before.get(name, 0)}
        f["updates_in_quiet_window"] = sum(chatter.values())
        if chatter:
            violations.append(f"I0: updates still flowing {QUIET:.0f} s after convergence: {chatter}")
        # I1
        dumps = self.fresh_dumps()
        now = time.monotonic()
        silent = [name for name, (_, _, handshake, _) in self.dump_sizes.items() if not handshake]
        if silent:
            violations.append(f"I1: no dump from {silent} within 8 s of connecting (overloaded?)")
        answered = [name for name in dumps if name not in silent]
        diffs = self.compare({name: dumps[name] for name in answered}, now)
        if diffs:
            violations.append(f"I1: stores differ ({len(diffs)} keys): {diffs[:12]}")
        if answered:
            final = dumps[answered[0]]
        else:  # judge the rest on what the first node flooded to its watch
            final = {k: v for k, v in self.watches[self.nodes[0].name].state.items() if v[2] > now}
            dumps = {name: {k: v for k, v in w.state.items() if v[2] > now}
                     for name, w in self.watches.items()}
        for name, watch in self.watches.items():
            if name in silent:
                continue
            # What the node flooded to its watch must be what it holds.
            flooded = {k: v for k, v in watch.state.items() if v[2] > now + EDGE}
            held = {k: v for k, v in dumps[name].items() if v[2] > now + EDGE}
            unflooded = [f"{key_text(k)}: dump s{held[k][0]}/{held[k][1].hex() or '-'}, flooded "
                         + (f"s{flooded[k][0]}/{flooded[k][1].hex() or '-'}" if k in flooded else "nothing")
                         for k in sorted(held) if k not in flooded or flooded[k][:2] != held[k][:2]]
            unflooded += [f"{key_text(k)}: flooded but not held" for k in sorted(flooded)
                          if k not in held]
            if unflooded:
                violations.append(f"I1: {name} holds other data than it flooded to its peer: "
                                  f"{unflooded[:8]}")
        f["final_keys"] = len(final)
        f["dumps"] = self.dump_sizes
        # I2
        mac_leases: dict[tuple[bytes, int], list[bytes]] = {}
        for key, (seqno, value, expires) in final.items():
            if key[0] not in (0, 1) or expires <= now + EDGE:
                continue
            injected = {(i.seqno, i.value) for i in self.ledger.injected.get(key, ())}
            if value in self.stations and not injected:
                continue  # an AP gave its client a new address (it lost one in a conflict)
            if (seqno, value) not in injected:
                violations.append(f"I2: {key_text(key)} holds s{seqno}/{value.hex() or '-'}, "
                                  f"never injected (injected: {sorted(injected)})")
            if value:
                mac_leases.setdefault((value, key[0]), []).append(key)
        for (mac, kind), keys in mac_leases.items():
            if len(keys) > 1:
                violations.append(f"I2: {mac_str(mac)} holds {len(keys)} leases of kind {kind}: "
                                  f"{[key_text(k) for k in keys]}")
        # I3
        acked = 0
        for (key, seqno, value), ack in self.ledger.acks.items():
            if len(ack.nodes) < 2:
                continue
            lifetime_end = ack.min_expires
            for inj in self.ledger.injected.get(key, ()):
                if (inj.seqno, inj.value) == (seqno, value):
                    lifetime_end = min(lifetime_end, inj.t + inj.time)
            if lifetime_end <= now + EDGE + TOL:
                continue
            acked += 1
            got = final.get(key)
            desc = (f"{key_text(key)} s{seqno}/{value.hex() or '-'} (seen at {sorted(ack.nodes)}; "
                    f"{self.trail(key)})")
            if got is None:
                violations.append(f"I3: lost {desc}: the key is gone")
            elif (got[0], got[1]) not in self.successors(key, seqno, value):
                violations.append(f"I3: lost {desc}: final s{got[0]}/{got[1].hex() or '-'} "
                                  "does not supersede it")
        f["acknowledged_checked"] = acked
        # I4
        gained = []
        station_keys = {b"\x02" + mac for mac in self.stations}
        for name, dump in sorted(dumps.items()):
            for key, (seqno, value, expires) in dump.items():
                if value in self.stations or key in station_keys:
                    continue  # the serving AP extends these
                injected = [i for i in self.ledger.injected.get(key, ())
                            if (i.seqno, i.value) == (seqno, value)]
                if injected:
                    allowed = max(i.t + i.time for i in injected)
                    if expires > allowed + self.transit_bound():
                        gained.append(f"{key_text(key)} at {name} +{expires - allowed:.1f} s")
        if gained:
            violations.append(f"I4: data outlive their injected lifetime: {gained[:12]}")
        alive_short = [f"{key_text(k)}: " + ", ".join(
                           f"{n}={d[k][2] - now:.1f}" for n, d in sorted(dumps.items()) if k in d)
                       + "; " + self.trail(k)
                       for k in self.short_keys if any(k in d for d in dumps.values())]
        if alive_short:
            violations.append(f"I4: short-lived data still alive: {alive_short}")
        # I5
        if self.aps():
            expected = self.expected_routes(final, now)
            for ap in self.aps():
                have = ap.routes()
                if have - expected[ap.name]:
                    violations.append(f"I5: {ap.name} routes {sorted(have - expected[ap.name])} "
                                      "without serving them")
                if expected[ap.name] - have:
                    violations.append(f"I5: {ap.name} serves but lacks routes "
                                      f"{sorted(expected[ap.name] - have)}")
            wrong = [f"{t - self.t0:.1f} {n} {m}" for t, n, m, _, w in self.kicks
                     if w and not self.local_truth_kick(t, n, m)]
            if wrong:
                macs = sorted({m for t, n, m, _, w in self.kicks if w})
                trails = "; ".join(f"claim {m}: " + self.trail(b"\x02" + bytes.fromhex(m.replace(":", "")))
                                   for m in macs)
                violations.append(f"I5: stations kicked from the AP they were on: {wrong} "
                                  f"({', '.join(f'{ap.name}={ap.current_id.hex()}' for ap in self.aps())}; "
                                  f"{trails})")
            for mac in self.stations:
                at = self.where[mac]
                claim = final.get(b"\x02" + mac)
                holder = claim[1].hex() if claim else None
                for ap in self.aps():
                    if ap is not at and mac_str(mac) in ap.stations():
                        violations.append(f"I5: {ap.name} still lists station {mac_str(mac)}, "
                                          f"which moved on (never kicked); claim: {holder}")
                if isinstance(at, ChaosNode):
                    if mac_str(mac) not in at.stations():
                        violations.append(f"I5: station {mac_str(mac)} at {at.name} is not "
                                          "associated there any more")
                    elif claim is None or claim[1] != at.current_id:
                        violations.append(f"I5: station {mac_str(mac)} at {at.name} "
                                          f"({at.current_id.hex()}) but claimed by {holder}")
                else:
                    routed = [ap.name for ap in self.aps()
                              if any(route_of(k) in ap.routes() for k, e in final.items()
                                     if e[1] == mac and route_of(k))]
                    if routed:
                        violations.append(f"I5: station {mac_str(mac)} is elsewhere but routed "
                                          f"at {routed}")
            f["kicks"] = len(self.kicks)
        # I6
        for name, status in self.term_status:
            if status != 0:
                violations.append(f"I6: {name} exited {status} on SIGTERM")
        for node in self.nodes:
            text = node.log_text()
            if "Traceback" in text or "internal error" in text:
                at = text.find("Traceback") if "Traceback" in text else text.find("internal error")
                violations.append(f"I6: {node.name} log: {text[max(0, at - 200):at + 1500]}")
        return violations, f

    def successors(self, key: bytes, seqno: int, value: bytes) -> set[tuple[int, bytes]]:
        """(seqno, value) of key that legitimately supersede (seqno, value), step by step.

        One step: a newer seqno; a seqno exactly 0x8000 away (the pair is
        ordered by a rule the test does not presume); the same seqno with
        another value (a conflict).  The steps go through data a test peer
        injected or a watch saw (an AP's claims, its new leases), so that a
        datum beaten in a 0x8000 tie, then re-leased at the winner's seqno + 1,
        counts as superseded and not lost.
        """
        known = {(s, v) for (k, s, v) in self.ledger.acks if k == key}
        known |= {(i.seqno, i.value) for i in self.ledger.injected.get(key, ())}
        reached = {(seqno, value)}
        frontier = [(seqno, value)]
        while frontier:
            s1, v1 = frontier.pop()
            for s2, v2 in known:
                if (s2, v2) in reached:
                    continue
                if newer(s2, s1) or (s2 - s1) & 0xFFFF == 0x8000 or (s2 == s1 and v2 != v1):
                    reached.add((s2, v2))
                    frontier.append((s2, v2))
        return reached

    def trail(self, key: bytes) -> str:
        """What was injected for key and what the watches saw, in order."""
        items = [(i.t, f"inject@{i.node} s{i.seqno}/{i.value[-2:].hex() or '-'} {i.time}s")
                 for i in self.ledger.injected.get(key, ())]
        items += [(t, f"{n} s{u.seqno}/{u.value[-2:].hex() or '-'} {u.time}s")
                  for t, n, u in self.ledger.history.get(key, ())]
        return ", ".join(f"{t - self.t0:.1f} {text}" for t, text in sorted(items, key=lambda x: x[0]))

    def report(self) -> str:
        lines = [f"events (seed {self.seed}):"]
        lines += [f"  {t:6.2f}  {text}" for t, text in self.events]
        lines.append("relays: " + json.dumps(self.hub.stats()))
        return "\n".join(lines)

    def keep_logs(self) -> str:
        """Every daemon's whole log into a directory that outlives the test."""
        keep = tempfile.mkdtemp(prefix=f"sroamd-chaos-seed{self.seed}-")
        for node in self.nodes:
            with open(os.path.join(keep, f"{node.name}.log"), "w") as f:
                f.write(node.log_text())
        with open(os.path.join(keep, "events.txt"), "w") as f:
            f.write(self.report() + "\n")
        return keep

    def log_tails(self) -> str:
        out = []
        for node in self.nodes:
            text = node.log_text()
            interesting = [l for l in text.splitlines()
                           if "WARNING" in l or "ERROR" in l or "===" in l or "refus" in l]
            out.append(f"--- {node.name} ({len(text.splitlines())} lines) ---")
            out += interesting[-25:]
        return "\n".join(out)


def test_chaos(capsys):
    params = make_params()
    directory = tempfile.mkdtemp(prefix="sroamd-chaos-")
    chaos = Chaos(SEED, params, directory)
    started = time.monotonic()
    try:
        chaos.setup()
        if not params.aps:
            print("chaos: no network namespaces here: the AP part (routes, stations) is left out")
        chaos.run()
        violations, figures = chaos.check()
        figures.update(seed=SEED, nodes=params.nodes, aps=params.aps, events=params.events,
                       runtime_s=round(time.monotonic() - started, 1),
                       local_truth_kicks=chaos.local_truth_kicks)
        summary = "chaos: " + json.dumps(figures)
        print(chaos.report())
        with capsys.disabled():  # the figures belong in the CI log, pass or fail
            print(f"\n{summary}")
        if violations:
            kept = chaos.keep_logs()
            pytest.fail("\n".join([summary, *violations, chaos.report(), chaos.log_tails(),
                                   f"(whole logs in {kept})"]), pytrace=False)
    finally:
        chaos.close()
        subprocess.run(["rm", "-rf", directory])
