"""Which clients this node serves, and what follows when that changes.

Protocol logic only: station events and store changes come in, actions go
out through a callback (the daemon carries them out), so it is tested
without sockets or netlink.

  station associates here    -> claim it: association datum = our node id
                                with a new seqno, beating the old holder;
                                then Serve (routes, ARP/NA, RA)
  station leaves here        -> give it up (empty value), Unserve
  another node claims one of -> Unserve and Kick: the station is gone from
  ours                          here, hostapd must forget it too

Claims that cannot lose to a stale one.  A station that bounces A -> B -> A
faster than B's claim reaches A used to be kicked at A: A's claim only
extended its own seqno s, B's claim (s + 1) then arrived and won.  Every
association here is now a new claim, and one for a station we still serve
(a re-association: we have not heard of a claim elsewhere) jumps two
seqnos.  A claim made elsewhere without knowledge of our latest one is at
most one above the claim it saw, so ours beats it; a claim made after
seeing ours is newer than ours and wins, as it should (the station did
leave).  Claims of equal seqno (two nodes claiming a station neither was
serving, on the same old claim) are settled by the store's value order, and
the loser gives the station up.

Local truth after a restart.  Until the store is synced (a peer's dump is
in: well under a second when a peer is up), and for LOCAL_TRUTH_MIN seconds
after the start at least (another peer's dump may come a moment later), the
stations hostapd lists here are ours whatever claim arrives (the claim we
made before restarting, under a node id that may have changed, or another
AP's from before the station came here while we were down): such a claim is
answered with a claim above it, never with a kick.  Once: a claim above our
re-claim was made by a node that had seen it (the station did leave), and
two APs restarting together, each with a stale list, must not fight.  A
station that associates in that window and was claimed on a store that knew
nothing of it gets one such re-claim too (the dumps may bring an older claim
with a greater seqno); one claimed knowing the domain's latest needs none.  The
price: a station that leaves this AP within the window is kicked once from
the AP it went to, and associates again.  Once synced, claims naming this
node for stations that are not here (made before a crash that lost their
give-up) are given up.

A give-up from another node that crosses our claim would leave nobody
holding a station that is here: it is overruled at its own seqno (our id
beats the empty value), not jumped over, which would also beat a claim made
meanwhile elsewhere.

What no node can tell: two APs that each take on a station without having
heard of the other's claim (the station visited both faster than flooding
crosses between them) make claims of the same standing; the store's value
order settles them, and the station may be kicked from the AP it is on, to
associate again (tests/simnet.py counts these as concurrent kicks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from sroamd.store import ASSOCIATION, Datum, Store, association_key, seqno_compare

# Lifetime of an association datum (what C sroamd uses); refreshed for the
# stations still here every ASSOCIATION_REFRESH seconds.
ASSOCIATION_TIME = 5400
ASSOCIATION_REFRESH = ASSOCIATION_TIME // 3
# Local truth after a restart lasts until synced and this long at least.
LOCAL_TRUTH_MIN = 10.0


@dataclass(frozen=True, slots=True)
class Serve:
    ifname: str
    mac: bytes


@dataclass(frozen=True, slots=True)
class Unserve:
    mac: bytes


@dataclass(frozen=True, slots=True)
class Kick:
    ifname: str
    mac: bytes


@dataclass(frozen=True, slots=True)
class Roamed:
    """For the sroamd.roam event: a client arrived here or left for another node."""
    mac: bytes
    arrived: bool
    ifname: str
    other_node: bytes | None  # the node it left for (None: unknown / arrived)


Action = Union[Serve, Unserve, Kick, Roamed]


class Roaming:
    def __init__(self, store: Store, node_id: bytes, act: Callable[[Action], None],
                 syncing: bool = False):
        self.store = store
        self.node_id = node_id
        self.act = act
        self.clients: dict[bytes, str] = {}  # MAC -> roaming interface it is on
        # MAC -> seqno of the latest association datum naming us (our claim).
        self._claims: dict[bytes, int] = {}
        # Stations claimed before the store was synced: local truth (above).
        self._syncing = syncing
        # MAC -> seqno of our own claim as received from the domain.
        self._heard_own: dict[bytes, int] = {}
        # MAC -> re-claims left for a station under local truth (above).
        self._local_truth: dict[bytes, int] = {}
        # (a node that starts synced, with nobody to sync from, has none)
        self._local_truth_until = store.clock() + LOCAL_TRUTH_MIN if syncing else float("-inf")
        self.roams_in = 0
        self.roams_out = 0
        self.reclaims = 0  # claims answered with a claim of ours
        self.stale_claims = 0  # claims of ours for stations not here, given up
        store.listeners.append(self.on_store_change)

    def _local_truth_holds(self) -> bool:
        # Until synced, and LOCAL_TRUTH_MIN after start at least: the first
        # peer's dump may lack a claim that another peer's brings a moment later.
        return self._syncing or self.store.clock() < self._local_truth_until

    def synced(self) -> None:
        """The store holds the peers' data: claims from now on follow the usual
        rules (LOCAL_TRUTH_MIN after start at the earliest), and claims naming
        this node for stations that are not here are given up."""
        self._syncing = False
        for datum in self.store.live_data():
            if datum.kind == ASSOCIATION and datum.value == self.node_id:
                self._give_up_stale(datum.key[1:])

    def _give_up_stale(self, mac: bytes) -> None:
        """A claim of ours for a station that is not here: made before a
        crash, whose give-up was lost with it.  Left alone, the domain would
        believe us for 90 minutes."""
        if mac not in self.clients:
            self.stale_claims += 1
            self.store.put(association_key(mac), b"", ASSOCIATION_TIME)

    def station_associated(self, ifname: str, mac: bytes, listed: bool = False) -> None:
        """A station is authorized here.  listed: hostapd listed it (it was
        already there: at our start, local truth applies to it) rather than
        announced a new association."""
        previous = self.store.live(association_key(mac))
        # (copied now: put() updates the same Datum in place)
        previous_holder = previous.value if previous is not None else b""
        step = 2 if mac in self.clients else 1  # a re-association: see above
        self.clients[mac] = ifname
        uninformed = self.store.get(association_key(mac)) is None
        if (listed and self._local_truth_holds()) or (uninformed and self._syncing):
            # Listed by hostapd at start, or a new association claimed on a
            # store not synced yet that knew nothing of the station: ours
            # above the first claim the dumps bring (which may predate ours).
            # (Once synced, a store that knows nothing of a station knows
            # the domain has no claim for it.)  Once only: a
            # claim above our re-claim was made by a node that had seen it
            # (the station did leave), and two APs restarting together with
            # a stale list each must not fight.  A claim made knowing the
            # domain's latest (the store had one) needs no such help.
            self._local_truth[mac] = 1
        else:
            self._local_truth.pop(mac, None)
        self._claim(mac, step)
        self.act(Serve(ifname, mac))
        if previous_holder not in (b"", self.node_id):
            self.roams_in += 1
            self.act(Roamed(mac, True, ifname, previous_holder))

    def station_disassociated(self, ifname: str, mac: bytes) -> None:
        if self.clients.get(mac) != ifname:
            return  # not ours, or already moved to another of our interfaces
        del self.clients[mac]
        self._claims.pop(mac, None)
        self._heard_own.pop(mac, None)
        self._local_truth.pop(mac, None)
        datum = self.store.get(association_key(mac))
        if datum is not None and datum.value == self.node_id:
            self.store.put(association_key(mac), b"", ASSOCIATION_TIME)
        self.act(Unserve(mac))

    def on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        if datum.kind != ASSOCIATION or len(datum.key) != 7:
            return
        mac = datum.key[1:]
        ifname = self.clients.get(mac)
        if ifname is None:
            if datum.value == self.node_id and not self._syncing:
                self._give_up_stale(mac)
            return
        if datum.value == self.node_id:
            self._claims[mac] = datum.seqno
            if origin is not None:
                self._heard_own[mac] = datum.seqno  # our claim, as the domain has it
            return
        if datum.value == b"":
            # A give-up crossed our claim: nobody would hold a station that
            # is here.  Our id wins over nothing at the same seqno; a jump
            # above it would also beat a claim made meanwhile elsewhere.
            self.reclaims += 1
            self.store.overrule(datum.key, self.node_id, ASSOCIATION_TIME)
            return
        heard = self._heard_own.get(mac)
        if (self._local_truth.get(mac, 0) > 0 and self._local_truth_holds()
                and (heard is None or seqno_compare(datum.seqno, heard) <= 0)):
            # (A claim above our own claim as the domain had it was made by
            # a node that knew ours: the station left after all.)
            # A claim that a restart must not obey.
            self._local_truth[mac] -= 1
            self.reclaims += 1
            self._claim(mac, 1)
            return
        if seqno_compare(datum.seqno, self._claims.get(mac, datum.seqno)) < 0:
            return  # cannot happen (the store ignores older seqnos); be safe
        # Another node holds the client now: it roamed away from us.
        del self.clients[mac]
        self._claims.pop(mac, None)
        self._heard_own.pop(mac, None)
        self._local_truth.pop(mac, None)
        self.roams_out += 1
        self.act(Unserve(mac))
        self.act(Kick(ifname, mac))
        self.act(Roamed(mac, False, ifname, datum.value))

    def refresh(self) -> None:
        """Keep the associations of the stations still here from expiring."""
        for mac in list(self.clients):
            key = association_key(mac)
            datum = self.store.get(key)
            if datum is not None and datum.value == self.node_id:
                self.store.extend(key, ASSOCIATION_TIME)
            else:
                self._claim(mac, 1)

    def _claim(self, mac: bytes, step: int) -> None:
        # put() notifies the listeners, on_store_change records the seqno.
        self.store.put(association_key(mac), self.node_id, ASSOCIATION_TIME, step=step)
