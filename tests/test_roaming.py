"""The roaming engine: station events and store changes -> actions."""

import pytest

from sroamd.roaming import (ASSOCIATION_TIME, Kick, Roamed, Roaming, Serve, Unserve)
from sroamd.store import Outcome, Store, association_key

ME = bytes.fromhex("aaaaaaaaaaaaaaaa")
OTHER = bytes.fromhex("bbbbbbbbbbbbbbbb")
MAC = bytes.fromhex("020000000042")


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock_pair():
    clock = Clock()
    pair = []
    for node in (ME, OTHER):
        store = Store(clock)
        actions = []
        pair.append((Roaming(store, node, actions.append), store, actions))
    return pair


@pytest.fixture
def setup():
    clock = Clock()
    store = Store(clock)
    actions = []
    return Roaming(store, ME, actions.append), store, actions, clock


def test_association_claims_and_serves(setup):
    roaming, store, actions, _ = setup
    roaming.station_associated("wlan0", MAC)
    datum = store.get(association_key(MAC))
    assert datum.value == ME and store.remaining(datum) == ASSOCIATION_TIME
    assert actions == [Serve("wlan0", MAC)]
    assert roaming.clients == {MAC: "wlan0"}


def test_claim_beats_the_previous_holder(setup):
    roaming, store, actions, _ = setup
    store.receive(association_key(MAC), 41, OTHER, 1000)
    roaming.station_associated("wlan1", MAC)
    datum = store.get(association_key(MAC))
    assert datum.seqno == 42 and datum.value == ME
    assert actions == [Serve("wlan1", MAC), Roamed(MAC, True, "wlan1", OTHER)]
    assert roaming.roams_in == 1


def test_disassociation_gives_up(setup):
    roaming, store, actions, _ = setup
    roaming.station_associated("wlan0", MAC)
    roaming.station_disassociated("wlan0", MAC)
    datum = store.get(association_key(MAC))
    assert datum.value == b"" and datum.seqno == 1
    assert actions[-1] == Unserve(MAC) and roaming.clients == {}


def test_disassociation_of_unknown_or_moved_station_is_ignored(setup):
    roaming, store, actions, _ = setup
    roaming.station_disassociated("wlan0", MAC)
    roaming.station_associated("wlan1", MAC)
    roaming.station_disassociated("wlan0", MAC)  # late event from the old interface
    assert roaming.clients == {MAC: "wlan1"} and actions == [Serve("wlan1", MAC)]


def test_other_node_claiming_our_client_unserves_and_kicks(setup):
    roaming, store, actions, _ = setup
    roaming.station_associated("wlan0", MAC)
    actions.clear()
    store.receive(association_key(MAC), 1, OTHER, ASSOCIATION_TIME, origin="peer")
    assert actions == [Unserve(MAC), Kick("wlan0", MAC), Roamed(MAC, False, "wlan0", OTHER)]
    assert roaming.clients == {} and roaming.roams_out == 1


def test_stale_claim_changes_nothing_and_a_crossing_give_up_is_answered(setup):
    roaming, store, actions, _ = setup
    store.receive(association_key(MAC), 5, OTHER, 100)
    roaming.station_associated("wlan0", MAC)  # claims at 6
    actions.clear()
    store.receive(association_key(MAC), 5, OTHER, 10)  # older seqno: ignored by the store
    assert actions == []
    # A give-up by another node crossed our claim: nobody would hold the
    # station that is here, so it is claimed again.
    store.receive(association_key(MAC), 7, b"", 10)
    datum = store.get(association_key(MAC))
    # (at the give-up's seqno: our id beats nothing there; a jump above it
    # would also beat a claim made meanwhile elsewhere: simulation seed 1530)
    assert actions == [] and datum.value == ME and datum.seqno == 7
    assert roaming.clients == {MAC: "wlan0"}


def test_concurrent_new_claims_are_settled_by_the_store_and_the_loser_yields(setup):
    roaming, store, actions, _ = setup
    store.receive(association_key(MAC), 5, b"", 100)
    roaming.station_associated("wlan0", MAC)  # 6, ME
    actions.clear()
    # OTHER claimed on the same old datum: same seqno, and OTHER > ME.
    store.receive(association_key(MAC), 6, OTHER, ASSOCIATION_TIME)
    assert Kick("wlan0", MAC) in actions and roaming.clients == {}


def test_ping_pong_keeps_the_station_where_it_is(clock_pair):
    """A -> B -> A faster than B's claim reaches A (issue 10, item 3): A's
    re-association beats B's claim, and B gives the station up."""
    (a, store_a, acts_a), (b, store_b, acts_b) = clock_pair
    key = association_key(MAC)

    def deliver(src, dst):
        d = src.get(key)
        dst.receive(key, d.seqno, d.value, src.remaining(d), origin="peer")

    a.station_associated("wlan0", MAC)
    deliver(store_a, store_b)                # B knows A holds it
    b.station_associated("wlan0", MAC)       # the station moves to B ...
    b_claim = (store_b.get(key).seqno, store_b.get(key).value, 5400)
    a.station_associated("wlan0", MAC)       # ... and back, before B's claim reached A
    store_a.receive(key, *b_claim, origin="peer")   # B's claim arrives late
    deliver(store_a, store_b)
    assert a.clients == {MAC: "wlan0"} and not any(isinstance(x, Kick) for x in acts_a)
    assert b.clients == {} and Kick("wlan0", MAC) in acts_b
    assert store_a.get(key).value == store_b.get(key).value == ME


def test_genuine_roam_after_our_claim_was_seen_kicks(clock_pair):
    (a, store_a, acts_a), (b, store_b, acts_b) = clock_pair
    key = association_key(MAC)
    a.station_associated("wlan0", MAC)
    d = store_a.get(key)
    store_b.receive(key, d.seqno, d.value, 5400)
    b.station_associated("wlan0", MAC)
    d = store_b.get(key)
    store_a.receive(key, d.seqno, d.value, 5400)
    assert a.clients == {} and Kick("wlan0", MAC) in acts_a
    assert b.clients == {MAC: "wlan0"}


def test_restart_local_truth_reclaims_above_any_claim_until_synced(setup):
    store = Store(setup[3])  # (a store of its own: one roaming engine per node id)
    actions = []
    roaming = Roaming(store, ME, actions.append, syncing=True)
    roaming.station_associated("wlan0", MAC, listed=True)  # hostapd lists it at start
    actions.clear()
    store.receive(association_key(MAC), 900, OTHER, 3000)  # the peers' dump
    datum = store.get(association_key(MAC))
    assert datum.value == ME and datum.seqno == 901 and actions == []
    roaming.synced()
    setup[3].now += 5  # still within LOCAL_TRUTH_MIN of the start, but:
    # a claim above our re-claim was made by a node that had seen it: the
    # station did leave (regression, tests/test_chaos.py seeds 3 and 11: an
    # AP re-claimed a station that had left it, up to 3 times, and the AP it
    # was on kicked it each time).
    store.receive(association_key(MAC), 902, OTHER, 3000)
    assert Kick("wlan0", MAC) in actions


def test_an_informed_claim_gets_no_local_truth(setup):
    """Regression (tests/test_chaos.py seed 6): a station went ap4 -> ap1 ->
    ap4 within 123 ms of ap1's start; ap1 had claimed it knowing ap4's claim,
    yet answered ap4's re-association with a re-claim, and ap4 kicked the
    station that was on it."""
    store = Store(setup[3])
    actions = []
    roaming = Roaming(store, ME, actions.append, syncing=True)
    store.receive(association_key(MAC), 0, OTHER, 5400)  # ap4's claim, known
    roaming.station_associated("wlan0", MAC)  # claims at 1, knowing it
    store.receive(association_key(MAC), 2, OTHER, 5400)  # ap4's re-association
    assert Kick("wlan0", MAC) in actions and roaming.reclaims == 0


def test_reassociation_here_makes_a_new_claim(setup):
    roaming, store, _, _ = setup
    roaming.station_associated("wlan0", MAC)
    assert store.get(association_key(MAC)).seqno == 0
    roaming.station_associated("wlan0", MAC)
    assert store.get(association_key(MAC)).seqno == 2


def test_refresh_keeps_associations_alive(setup):
    roaming, store, actions, clock = setup
    roaming.station_associated("wlan0", MAC)
    clock.now += ASSOCIATION_TIME - 10
    roaming.refresh()
    assert store.remaining(store.get(association_key(MAC))) == ASSOCIATION_TIME
    clock.now += ASSOCIATION_TIME + 10  # long expired: re-claimed with a new seqno
    roaming.refresh()
    datum = store.get(association_key(MAC))
    assert store.live(association_key(MAC)) is not None and datum.seqno == 1


def test_a_claim_of_ours_for_a_station_not_here_is_given_up_once_synced(setup):
    """Regression (simulation seed 17848): a node gave a station up, crashed
    before the give-up was flooded, and came back to find its old claim in
    the peers' dumps; the domain believed it held the station for 90 min."""
    store = Store(setup[3])
    roaming = Roaming(store, ME, [].append, syncing=True)
    store.receive(association_key(MAC), 3, ME, 5000)  # our claim, from a dump
    assert store.get(association_key(MAC)).value == ME  # hostapd may list it yet
    roaming.synced()
    datum = store.get(association_key(MAC))
    assert datum.value == b"" and datum.seqno == 4 and roaming.stale_claims == 1
    store.receive(association_key(MAC), 6, ME, 5000)  # relayed again later
    assert store.get(association_key(MAC)).value == b""


def test_local_truth_re_claims_are_bounded(setup):
    """Regression (simulation seed 318): two APs restarting together, a
    station associating with each in turn: both re-claimed it above the
    other's claim, for ever.  (Seed 73: a station that associated with a
    restarted AP before it synced, on an empty store, lost to an older claim
    from the dump: it gets one re-claim.)"""
    store = Store(setup[3])
    actions = []
    roaming = Roaming(store, ME, actions.append, syncing=True)
    roaming.station_associated("wlan0", MAC)  # announced while syncing
    store.receive(association_key(MAC), 5, OTHER, 5400)  # from the dump
    assert store.get(association_key(MAC)).value == ME and roaming.reclaims == 1
    store.receive(association_key(MAC), 7, OTHER, 5400)  # it fights back
    assert Kick("wlan0", MAC) in actions and roaming.reclaims == 1


def test_ping_pong_soon_after_start_keeps_the_station_where_it_is():
    """Regression (tests/test_restart_e2e.py ping-pong, 1 run in 3): B had
    started less than LOCAL_TRUTH_MIN before, A a little longer ago.  The
    station associated with B (claimed knowing A's claim), went back to A
    (A's window over), and A's newer claim reached B within B's window: B
    took it for a claim that a restart must not obey and claimed above it,
    and A kicked the station that was there.  A claim made knowing the
    domain's latest gets no local truth (module docstring)."""
    clock = Clock()
    key = association_key(MAC)
    nodes = []
    for node_id in (ME, OTHER):  # A, then B two seconds later
        store = Store(clock)
        actions = []
        roaming = Roaming(store, node_id, actions.append, syncing=True)
        outbox = []
        # What the node floods: its own changes (in the daemon, the flooder).
        store.listeners.append(lambda d, old, origin, outbox=outbox:
                               origin is None and outbox.append((d.seqno, d.value)))
        roaming.synced()  # a peer's dump is in
        nodes.append((roaming, store, actions, outbox))
        clock.now += 2
    (a, store_a, acts_a, out_a), (b, store_b, acts_b, out_b) = nodes

    def flush(src, dst):
        """Deliver src's flooded changes to dst; a conflict dst wins is
        answered to src (flood.py)."""
        (_, src_store, _, src_out), (_, dst_store, _, _) = src, dst
        while src_out:
            seqno, value = src_out.pop(0)
            outcome, datum = dst_store.receive(key, seqno, value, ASSOCIATION_TIME,
                                               origin="peer")
            if outcome == Outcome.CONFLICT_WON:
                src_store.receive(key, datum.seqno, datum.value, ASSOCIATION_TIME,
                                  origin="peer")

    a.station_associated("wlan0", MAC)  # 4 s after A's start, 2 s after B's
    flush(nodes[0], nodes[1])
    # A -> B -> A with nothing crossing between A and B meanwhile.
    a.station_disassociated("wlan0", MAC)
    clock.now += 1
    b.station_associated("wlan0", MAC)
    clock.now += 5.5  # back at A 10.5 s after A's start, 8.5 s after B's
    a.station_associated("wlan0", MAC)
    assert store_a.get(key).seqno == 2 and store_b.get(key).seqno == 1
    for _ in range(3):  # the link heals: both ways, until quiet
        flush(nodes[1], nodes[0])
        flush(nodes[0], nodes[1])
    assert not out_a and not out_b
    assert a.clients == {MAC: "wlan0"} and not any(isinstance(x, Kick) for x in acts_a)
    assert b.clients == {} and Kick("wlan0", MAC) in acts_b
    assert store_a.get(key).value == store_b.get(key).value == ME


def test_local_truth_obeys_a_claim_made_knowing_ours(setup):
    """Regression (tests/test_chaos.py seeds 3, 11): an AP restarted with a
    station on hostapd's list; the peers' dump brought its own claim (s1);
    the station then moved on, and the new AP claimed it at s2, knowing s1.
    Re-claiming above that kicked the station from the AP it was on."""
    store = Store(setup[3])
    actions = []
    roaming = Roaming(store, ME, actions.append, syncing=True)
    roaming.station_associated("wlan0", MAC, listed=True)  # s0 on an empty store
    store.receive(association_key(MAC), 1, ME, 5390, origin="peer")  # ours, from the dump
    store.receive(association_key(MAC), 2, OTHER, 5400, origin="peer")
    assert Kick("wlan0", MAC) in actions and roaming.reclaims == 0


def test_a_new_association_after_sync_gets_no_local_truth(setup):
    """Regression (tests/test_roaming_e2e.py): in a domain just started, the
    first claim for a station is made on a store that knows nothing of it;
    once synced that means nobody claims it, and a roam seconds later must be
    obeyed, not answered with a re-claim that kicked the station at its new AP."""
    store = Store(setup[3])
    actions = []
    roaming = Roaming(store, ME, actions.append, syncing=True)
    roaming.synced()  # within LOCAL_TRUTH_MIN of the start
    roaming.station_associated("wlan0", MAC)
    store.receive(association_key(MAC), 1, OTHER, 5400, origin="peer")
    assert Kick("wlan0", MAC) in actions and roaming.reclaims == 0
