"""The replicated store: keys -> (seqno, value, expiry), merged as C sroamd does.

Protocol logic only: no sockets, no timers. Time comes from an injected clock
(seconds, monotonic), so tests drive it.

Keys (first byte = kind), wire-compatible with C sroamd:
  0 + IPv4 address (4 bytes)  -> value: client MAC (6 bytes)     IPv4 lease
  1 + IPv6 /64 (8 bytes)      -> value: client MAC (6 bytes)     IPv6 lease
  2 + client MAC (6 bytes)    -> value: node id (8 bytes) or b"" association

Merging a received update (upstream semantics, see DESIGN.md 2, with the
changes that make it converge under delay, loss and reordering):
  newer seqno (RFC 1982 serial arithmetic on 16 bits) -> replace value+expiry
  same seqno, same value                            -> a refresh: keep the
      later expiry, but only as news (passed on) when it gains more than
      refresh_gain(); smaller gains are transit delay, and are ignored
  same seqno, other value                           -> conflict: the greater
      value wins on every node, and the loser adopts it;
  older seqno                                       -> ignore.

Why these departures from upstream, which makes the longer remaining time win
conflicts and treats any later expiry as a refresh to flood on:
  * Remaining times travel as whole seconds and the receiver adds them to its
    own clock, so every hop adds its transit delay.  In a graph with cycles a
    datum that goes round comes back "refreshed" by the delay of the loop and
    is flooded again, for ever (upstream and the C sroamd both do this).  A
    refresh must therefore gain more than any plausible transit time to be
    news: a quarter of the remaining time, at least REFRESH_GAIN_MIN and at
    most REFRESH_GAIN seconds, so that a 10 s offer cannot be kept alive by a
    loop of peers with seconds of delay, and a renewal still is news.
  * Comparing remaining times to settle a conflict is unsound for the same
    reason: each side sees the other's time inflated by the transit delay, so
    with delays above any fixed slack both sides can believe they lost (and
    swap values for ever) or both won.  The value order is the same on every
    node whatever the delays, so every node settles on the same value.
    The winner keeps the loser in mind (runner_up): if the winner lapses
    first (a short offer beating a long lease), the node falls back on the
    loser, which the others hold.  Conflicts are rare (sroamd hands out no
    new address before its store is synced); the client service handles the loser of a lease conflict, and
    the roaming engine makes claims that cannot be concurrent with another
    node's (see roaming.py).
  * Seqnos exactly 0x8000 apart are each "newer" than the other in serial
    arithmetic, so two nodes would replace each other's datum for ever; the
    numerically greater one is taken as newer.  An update a quarter of the
    space or more away from a live datum (no node jumps so far) is ignored:
    see seqnos_far_apart().
  * An expired datum is only a memory of its seqno: a live update replaces it
    whatever its seqno (but not one in its last seconds, nor the same datum
    unless it gains refresh_gain()), and an expired update (time 0, as C
    sroamd dumps them) never replaces a live datum.  A datum replaced by a
    newer one that it outlives is kept in mind, and comes back if that one
    lapses first (a short offer over a long lease): nodes that never saw the
    newer one hold it.  Expired data are forgotten after EXPIRED_RETENTION
    seconds.

Local extensions follow the same rule: a datum extended by less than
refresh_gain() since it was last announced is extended here only, and the
next larger extension carries the news (Store._announced tracks that).
"""

from __future__ import annotations

import enum
import heapq
import math
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

log = logging.getLogger("sroamd.store")

IPV4_LEASE = 0
IPV6_LEASE = 1
ASSOCIATION = 2

# Length of a well-formed key per kind; other lengths are stored and
# flooded (we are a relay) but never interpreted.
KEY_LENGTHS = {IPV4_LEASE: 5, IPV6_LEASE: 9, ASSOCIATION: 7}

# A refresh (same seqno and value, later expiry) is news only when it gains
# more than a loop of peers can add in transit (up to seconds per hop): else
# the datum goes round the loop for ever.  A quarter of the remaining time
# between these bounds, so that a renewal of a short lease (T1 = half of it)
# is still news.
REFRESH_GAIN = 30.0
REFRESH_GAIN_MIN = 10.0
TRANSIT_ALLOWANCE = 1.0  # seconds a received datum is taken to have aged in transit
EXPIRED_RETENTION = 600.0
MAC_TUPLE_MAX = 8  # keys of one MAC kept in a tuple (see Store._leases_by_mac)
MAX_TIME = 0xFFFFFFFF


def seqno_compare(a: int, b: int) -> int:
    """Serial-number comparison of 16-bit seqnos: -1 if a < b, 0, 1 if a > b.

    Seqnos exactly 0x8000 apart are undefined in RFC 1982; the numerically
    greater is taken as newer, so that both sides agree."""
    if a == b:
        return 0
    distance = (b - a) & 0xFFFF
    if distance == 0x8000:
        return -1 if a < b else 1
    return -1 if distance < 0x8000 else 1


def seqnos_far_apart(a: int, b: int) -> bool:
    """Seqnos a quarter of the space or more apart (but not exactly half).

    No node makes such a jump (claims and leases advance one or two at a
    time); only a broken or hostile peer sends one.  Serial order is not
    transitive over seqnos spread round the circle (0 < 0x2000 < 0x6000 <
    0xA000 < 0 ...), so several such data can replace each other round a
    loop of peers for ever.  Seqnos pairwise less than a quarter apart lie
    in a half circle, where serial order is transitive; a pair exactly half
    apart is ordered numerically and no third seqno is near both.  So an
    update far from a live datum is ignored: the datum stays until it lapses.
    """
    distance = (a - b) & 0xFFFF
    return 0x4000 <= distance <= 0xC000 and distance != 0x8000


def refresh_gain(remaining: float) -> float:
    """How much later an expiry must be to count as a refresh worth passing on."""
    return min(REFRESH_GAIN, max(REFRESH_GAIN_MIN, remaining / 4))


def ipv4_lease_key(address: bytes) -> bytes:
    return bytes([IPV4_LEASE]) + address


def ipv6_lease_key(prefix64: bytes) -> bytes:
    return bytes([IPV6_LEASE]) + prefix64


def association_key(mac: bytes) -> bytes:
    return bytes([ASSOCIATION]) + mac


def is_lease_key(key: bytes) -> bool:
    """A well-formed IPv4 or IPv6 lease key."""
    return bool(key) and key[0] in (IPV4_LEASE, IPV6_LEASE) and len(key) == KEY_LENGTHS[key[0]]


@dataclass(slots=True)
class Datum:
    """One datum: four slots, 64 bytes (issue 11: memory per datum).  What
    only some data need for a while is kept by the Store beside them
    (_announced, _forget_at, _runners_up)."""
    key: bytes
    seqno: int
    value: bytes
    expires: float  # clock time at which the datum expires

    @property
    def kind(self) -> int:
        return self.key[0] if self.key else -1


class Outcome(enum.Enum):
    """What merging a received update did; tells the flooding layer what to send."""

    IGNORED = "ignored"  # older seqno, or nothing new: send nothing
    CHANGED = "changed"  # new datum, newer seqno, or later expiry: pass on
    CONFLICT_WON = "won"  # ours beat theirs: tell the sender ours
    CONFLICT_LOST = "lost"  # we adopted theirs: pass on, and echo to the sender


# Listener signature: (datum after the change, previous value or None if the
# datum is new, origin of the change: a peer object or None for local).
Listener = Callable[[Datum, "bytes | None", object], None]


class Store:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._data: dict[bytes, Datum] = {}
        # MAC -> the key (bytes) of the lease datum whose value is that MAC,
        # or a tuple of keys when there are several: the O(1) lookup of a
        # client's leases (upstream scans the whole store).  Nearly always
        # one key (the client's IPv4 or IPv6 lease) or two: a lone key costs
        # nothing beyond the dict entry, where a list would cost 90 bytes a
        # lease (a tuple of two, 56).  The MAC is the datum's value object.
        # (Past MAC_TUPLE_MAX keys, a list: tuples grow by copying.)
        # Made at the first lookup: a node that serves no clients (a relay)
        # never looks a MAC up, and spares its ~46 bytes a lease.
        self._leases_by_mac: dict[bytes, bytes | tuple[bytes, ...] | list[bytes]] | None = None
        # The expiry calendar: whole second -> the keys whose next expiry
        # event (Store._next_event) falls in it, and a min-heap of those
        # seconds.  A key costs 8 bytes in a list, where a (time, key) heap
        # entry cost 64 (issue 11: memory per datum).  Entries left behind
        # by a change of time are stale and skipped; they are counted, and
        # the calendar is rebuilt before they pile up.
        self._calendar: dict[int, list[bytes]] = {}
        self._seconds: list[int] = []
        self._entries = 0
        # Beside the data, only where it differs from the usual (a slot in
        # every Datum would cost 8 bytes a datum):
        # - the expiry last passed on to the peers, where a local extension
        #   smaller than refresh_gain() was kept here (else datum.expires);
        self._announced: dict[bytes, float] = {}
        # - the time of an expired datum's next event, its forgetting
        #   (expires + EXPIRED_RETENTION; a live datum's is its expiry);
        self._forget_at: dict[bytes, float] = {}
        # - (seqno, value, expires) of the datum one beat in a conflict, for
        #   as long as it lives: taken back if the winner lapses first.
        self._runners_up: dict[bytes, tuple] = {}
        self.listeners: list[Listener] = []
        self.listener_errors = 0

    # -- reading -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Datum]:
        return iter(list(self._data.values()))

    def live_data(self) -> Iterator[Datum]:
        """The data that have not expired (what a new peer is sent)."""
        now = self.clock()
        return (d for d in list(self._data.values()) if d.expires > now)

    def get(self, key: bytes) -> Datum | None:
        """The datum for key, expired or not."""
        return self._data.get(key)

    def live(self, key: bytes) -> Datum | None:
        """The datum for key if it has not expired."""
        datum = self._data.get(key)
        if datum is None or datum.expires <= self.clock():
            return None
        return datum

    def remaining(self, datum: Datum, now: float | None = None) -> int:
        """Whole seconds left, as sent on the wire (0 when expired); now: the
        clock's time, when the caller has it (a batch of data)."""
        left = datum.expires - (self.clock() if now is None else now)
        if left <= 0:
            return 0
        # Rounded down, so that data never gain time going around a loop of
        # peers; the 10 ms allowance lets a datum just set for 1800 s say
        # 1800, as C sroamd does, not 1799.
        return min(int(left + 0.01), MAX_TIME)

    def leases_of(self, mac: bytes, kind: int) -> list[Datum]:
        """Live leases (IPV4_LEASE or IPV6_LEASE) whose value is mac, smallest key first."""
        now = self.clock()
        found = []
        if self._leases_by_mac is None:
            self._leases_by_mac = {}
            for datum in self._data.values():
                self._index(datum)
        keys = self._leases_by_mac.get(mac, ())
        for key in (keys,) if type(keys) is bytes else keys:
            datum = self._data[key]
            if datum.kind == kind and datum.expires > now:
                found.append(datum)
        found.sort(key=lambda d: d.key)
        return found

    def lease_of(self, mac: bytes, kind: int) -> Datum | None:
        """The client's lease of that kind (the smallest address, as upstream)."""
        leases = self.leases_of(mac, kind)
        return leases[0] if leases else None

    # -- merging received updates -----------------------------------------

    def receive(self, key: bytes, seqno: int, value: bytes, remaining: int,
                origin: object = None) -> tuple[Outcome, Datum | None]:
        """Merge an update from a peer; returns what happened and the datum now held."""
        now = self.clock()
        # A received datum has aged in transit by an unknown delay, and its
        # remaining time was rounded down to whole seconds: count a second of
        # transit, so that data lose time going round a loop of peers instead
        # of gaining what the loop's links add (see refresh_gain()).
        if remaining > 0:
            remaining = max(remaining - TRANSIT_ALLOWANCE, 0)
        expires = now + remaining
        datum = self._data.get(key)
        if datum is None:
            if remaining <= 0:
                # Nothing to learn from an expired datum we never had.
                return Outcome.IGNORED, None
            datum = self._insert(key, seqno, value, expires)
            self._notify(datum, None, origin)
            return Outcome.CHANGED, datum

        ours_live = datum.expires > now
        theirs_live = remaining > 0
        if ours_live and not theirs_live:
            return Outcome.IGNORED, datum
        if theirs_live and not ours_live:
            if seqno_compare(seqno, datum.seqno) <= 0 and not self._revives(
                    datum, seqno, value, expires, remaining):
                return Outcome.IGNORED, datum
            self._runners_up.pop(key, None)
            self._replace(datum, seqno, value, expires, origin)
            return Outcome.CHANGED, datum

        if seqnos_far_apart(seqno, datum.seqno):
            return Outcome.IGNORED, datum
        order = seqno_compare(seqno, datum.seqno)
        if order < 0:
            if expires > datum.expires:
                # An older datum that outlives ours: kept in mind as a node
                # that saw it first keeps it (below), so that when ours lapses
                # every node falls back on it alike (simulation seed 4440: it
                # came 0.25 s before ours lapsed, and this node alone lost it).
                self._keep_runner_up(datum, (seqno, value, expires))
            return Outcome.IGNORED, datum
        if order > 0:
            # Ours, if it outlives the newer datum, is kept in mind: should
            # that one lapse first (a short offer over a long lease), the
            # others, which may never have seen it, still hold ours.
            outlived = (datum.seqno, datum.value, datum.expires)
            self._replace(datum, seqno, value, expires, origin)
            if outlived[2] > expires:
                self._runners_up[key] = outlived
            else:
                self._runners_up.pop(key, None)
            return Outcome.CHANGED, datum
        if value == datum.value:
            if expires > datum.expires + refresh_gain(remaining):
                self._set_expiry(datum, expires)
                self._notify(datum, datum.value, origin)
                return Outcome.CHANGED, datum
            # Transit delay or a small local extension elsewhere: not news.
            return Outcome.IGNORED, datum
        if datum.value > value:
            # Kept in mind: should ours lapse first (a short offer beating a
            # long lease), the domain still holds theirs (see expire()).
            self._keep_runner_up(datum, (seqno, value, expires))
            return Outcome.CONFLICT_WON, datum
        ours = (datum.seqno, datum.value, datum.expires)
        self._replace(datum, seqno, value, expires, origin)
        self._keep_runner_up(datum, ours)
        return Outcome.CONFLICT_LOST, datum

    def runner_up(self, key: bytes) -> tuple | None:
        """(seqno, value, expires) of the loser kept in mind for key, if any."""
        return self._runners_up.get(key)

    def _keep_runner_up(self, datum: Datum, loser: tuple) -> None:
        """Keep in mind the loser of a conflict: of several, the one the
        others settle on once the winner is gone, by the same order as every
        merge (newer seqno, then greater value; the later expiry of the same
        datum).  Not the longest-lived: a node that fell back on a loser the
        others had overruled (an older seqno, or a lesser value of the same
        seqno) was the only one holding it (simulation seeds 3552, 10547)."""
        kept = self._runners_up.get(datum.key)
        if kept is None:
            self._runners_up[datum.key] = loser
            return
        order = seqno_compare(loser[0], kept[0])
        if (order > 0 or (order == 0 and loser[1] > kept[1])
                or (order == 0 and loser[1] == kept[1] and loser[2] > kept[2])):
            self._runners_up[datum.key] = loser

    @staticmethod
    def _revives(datum: Datum, seqno: int, value: bytes, expires: float,
                 remaining: int) -> bool:
        """Whether a live update that is not newer may replace a datum that
        lapsed here.  Copies of data in their last seconds stay live
        elsewhere by the transit delays they gained; taken back, they go
        round a loop of peers, each node reviving what lapsed at the one
        before, for ever.  (Two values of a conflict cannot chase each other
        so: the winner, once in its last seconds, no longer revives; the loser
        takes its place, as on the node that fell back on it, see expire().)"""
        if remaining < REFRESH_GAIN_MIN:
            return False  # in its last seconds: not worth reviving a key
        if seqno == datum.seqno and value == datum.value:
            # Our own datum coming round, unless its holder refreshed it.
            return expires > datum.expires + refresh_gain(remaining)
        # The loser of a conflict with it, or an older datum, still live
        # elsewhere (a node that never saw the lapsed one, a partition, a C
        # sroamd that restarted a forgotten key at seqno 0): what the others
        # hold, so taken (as the runner-up is, see expire()).
        return True

    # -- local changes -----------------------------------------------------

    def put(self, key: bytes, value: bytes, lifetime: float, step: int = 0) -> Datum:
        """Set key to value for lifetime seconds, as this node's own decision.

        A changed value gets the next seqno so that it beats what the others
        hold; the same value is only extended.  step > 0 forces a new seqno
        that many above the current one, value changed or not (a new claim
        that must beat claims made concurrently elsewhere, see roaming.py).
        """
        now = self.clock()
        datum = self._data.get(key)
        if datum is None:
            datum = self._insert(key, 0, value, now + lifetime)
            self._notify(datum, None, None)
            return datum
        if datum.value == value and step == 0:
            self.extend(key, lifetime)
            return datum
        self._runners_up.pop(key, None)
        self._replace(datum, (datum.seqno + max(step, 1)) & 0xFFFF, value,
                      now + lifetime, None)
        return datum

    def overrule(self, key: bytes, value: bytes, lifetime: float) -> Datum:
        """Set key to value at its current seqno, for a value that wins the
        conflict with the current one (it is greater): every node adopts it
        as a conflict, and no claim made concurrently at the next seqno is
        beaten by it (see roaming.py: a give-up that crossed our claim)."""
        datum = self._data[key]
        assert value > datum.value
        self._replace(datum, datum.seqno, value, self.clock() + lifetime, None)
        return datum

    def extend(self, key: bytes, lifetime: float) -> bool:
        """Make key live at least lifetime more seconds; True if it changed.

        Extending an expired datum bumps its seqno (as upstream), so that the
        renewed datum beats stale copies elsewhere.
        """
        datum = self._data[key]
        now = self.clock()
        announced = self._announced.get(key, datum.expires)
        if datum.expires <= now:
            datum.seqno = (datum.seqno + 1) & 0xFFFF
            announced = 0.0  # the others hold it expired: this is news
        if datum.expires < now + lifetime:
            self._set_expiry(datum, now + lifetime)
            if datum.expires > announced + refresh_gain(lifetime):
                self._notify(datum, datum.value, None)
            else:
                self._announced[key] = announced
            return True
        return False

    # -- expiry ------------------------------------------------------------

    def next_expiry(self) -> float | None:
        """Clock time of the next expiry or forget event, for the caller's timer."""
        while self._seconds:
            second = self._seconds[0]
            times = [self._next_event(datum) for datum in self._current(second)]
            if times:
                return min(times)
            heapq.heappop(self._seconds)
            self._entries -= len(self._calendar.pop(second))
        return None

    def _current(self, second: int) -> list[Datum]:
        """The data whose next event falls in second (stale entries and
        repeated keys left out)."""
        data = self._data
        forget_at = self._forget_at
        seen = set()
        found = []
        for key in self._calendar[second]:
            datum = data.get(key)
            if (datum is not None and key not in seen
                    and math.floor(forget_at.get(key, datum.expires)) == second):
                seen.add(key)
                found.append(datum)
        return found

    def expire(self) -> list[Datum]:
        """Process due expiries: returns data that just expired; forgets old ones.

        Events are handled in time order (then key order, as the heap of
        (time, key) this replaced did), second by second of the calendar."""
        now = self.clock()
        expired = []
        later = []  # entries of the current second not due yet: put back at the end
        while self._seconds and self._seconds[0] <= now:
            second = self._seconds[0]
            current = self._current(second)
            heapq.heappop(self._seconds)
            self._entries -= len(self._calendar.pop(second))
            due = []
            for datum in current:
                when = self._next_event(datum)
                if when <= now:
                    due.append((when, datum.key, datum))
                else:
                    later.append(datum)
            due.sort(key=lambda entry: entry[:2])
            for when, key, datum in due:
                if self._data.get(key) is not datum or self._next_event(datum) != when:
                    continue  # changed meanwhile (a listener of an earlier event)
                if when == datum.expires:
                    runner_up = self._runners_up.pop(key, None)
                    if runner_up is not None and runner_up[2] > now + REFRESH_GAIN_MIN:
                        # The loser of a conflict outlived the winner: the others
                        # hold it, so does this node now.
                        self._replace(datum, runner_up[0], runner_up[1], runner_up[2], None)
                        continue
                    expired.append(datum)
                    self._push_heap(datum, datum.expires + EXPIRED_RETENTION)
                else:
                    self._remove(datum)
        for datum in later:
            second = math.floor(self._next_event(datum))
            if self._data.get(datum.key) is datum and second == math.floor(now):
                self._file(datum.key, second)
        return expired

    # -- internals ---------------------------------------------------------

    def _next_event(self, datum: Datum) -> float:
        """The time of datum's next expiry event: its expiry while live, its
        forgetting once expired (an entry of the calendar in another second
        is stale)."""
        return self._forget_at.get(datum.key, datum.expires)

    def _push_heap(self, datum: Datum, when: float) -> None:
        """datum's next expiry event is at when (in the calendar)."""
        if when == datum.expires:
            self._forget_at.pop(datum.key, None)
        else:
            self._forget_at[datum.key] = when
        self._file(datum.key, math.floor(when))
        if self._entries > 2 * len(self._data) + 64:
            # Refreshes leave stale entries behind; rebuild before they pile up.
            self._calendar, self._seconds, self._entries = {}, [], 0
            for d in self._data.values():
                self._file(d.key, math.floor(self._next_event(d)))

    def _file(self, key: bytes, second: int) -> None:
        keys = self._calendar.get(second)
        if keys is None:
            self._calendar[second] = [key]
            heapq.heappush(self._seconds, second)
        else:
            keys.append(key)
        self._entries += 1

    def _insert(self, key: bytes, seqno: int, value: bytes, expires: float) -> Datum:
        datum = Datum(key, seqno & 0xFFFF, bytes(value), expires)
        self._data[key] = datum
        self._index(datum)
        self._push_heap(datum, expires)
        return datum

    def _replace(self, datum: Datum, seqno: int, value: bytes, expires: float,
                 origin: object) -> None:
        old = datum.value
        self._unindex(datum)
        datum.seqno = seqno & 0xFFFF
        datum.value = bytes(value)
        self._index(datum)
        self._set_expiry(datum, expires)
        self._notify(datum, old, origin)

    def _set_expiry(self, datum: Datum, expires: float) -> None:
        datum.expires = expires
        self._push_heap(datum, expires)

    def _remove(self, datum: Datum) -> None:
        self._unindex(datum)
        del self._data[datum.key]
        for beside in (self._announced, self._forget_at, self._runners_up):
            beside.pop(datum.key, None)

    def _index(self, datum: Datum) -> None:
        index = self._leases_by_mac
        if index is not None and datum.kind in (IPV4_LEASE, IPV6_LEASE) and len(datum.value) == 6:
            keys = index.get(datum.value)
            if keys is None:
                index[datum.value] = datum.key
                return
            # The client's other leases hold the same MAC: one bytes object
            # for all (40 bytes a lease spared).
            datum.value = self._data[keys if type(keys) is bytes else keys[0]].value
            if type(keys) is bytes:
                index[datum.value] = (keys, datum.key)
            elif type(keys) is tuple and len(keys) < MAC_TUPLE_MAX:
                index[datum.value] = keys + (datum.key,)
            elif type(keys) is tuple:
                # Many leases for one MAC (only a broken or hostile peer
                # sends so many): a list, appended to in place.
                index[datum.value] = [*keys, datum.key]
            else:
                keys.append(datum.key)

    def _unindex(self, datum: Datum) -> None:
        index = self._leases_by_mac
        if index is None:
            return
        keys = index.get(datum.value)
        if keys is None:
            return
        if type(keys) is bytes:
            if keys == datum.key:
                del index[datum.value]
            return
        if datum.key not in keys:
            return
        if type(keys) is list:
            keys.remove(datum.key)
            rest = keys
        else:
            rest = tuple(k for k in keys if k != datum.key)
        index[datum.value] = rest[0] if len(rest) == 1 else rest

    def _notify(self, datum: Datum, old: bytes | None, origin: object) -> None:
        self._announced.pop(datum.key, None)  # (announced: datum.expires)
        for listener in self.listeners:
            # One failing listener must not keep the change from the others
            # (flooding, roaming, the client service each need every one).
            try:
                listener(datum, old, origin)
            except Exception:
                self.listener_errors += 1
                if self.listener_errors == 1 or self.listener_errors % 1000 == 0:
                    log.exception("store listener %r failed (%d so far)", listener,
                                  self.listener_errors)
