"""The replicated store's merge rules, driven by a fake clock."""

import pytest

from sroamd.store import (ASSOCIATION, EXPIRED_RETENTION, IPV4_LEASE, IPV6_LEASE,
                          REFRESH_GAIN, Outcome, Store, association_key, ipv4_lease_key,
                          ipv6_lease_key, is_lease_key, refresh_gain, seqno_compare)

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
NODE_1 = bytes.fromhex("1111111111111111")
NODE_2 = bytes.fromhex("2222222222222222")
KEY = ipv4_lease_key(bytes([192, 0, 2, 10]))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    s = Store(clock)
    s.changes = []
    s.listeners.append(lambda d, old, origin: s.changes.append((d.key, d.seqno, d.value, old, origin)))
    return s


# -- serial numbers ---------------------------------------------------------

@pytest.mark.parametrize("a,b,expected", [
    (0, 0, 0), (1, 0, 1), (0, 1, -1),
    (0, 65535, 1),        # wrap-around: 0 comes after 65535
    (65535, 0, -1),
    (65535, 65534, 1),
    (100, 100 + 0x7FFF, -1),  # within half the space: later
    (100, 100 + 0x8001 & 0xFFFF, 1),  # beyond half the space: earlier
    # exactly half the space apart: undefined in RFC 1982, so both sides saw
    # the other as newer and replaced each other for ever; the greater wins.
    (0, 0x8000, -1), (0x8000, 0, 1), (0x7FFF, 0xFFFF, -1), (0xFFFF, 0x7FFF, 1),
])
def test_seqno_compare(a, b, expected):
    assert seqno_compare(a, b) == expected


def test_key_helpers():
    assert ipv4_lease_key(b"\xc0\x00\x02\x01") == b"\x00\xc0\x00\x02\x01"
    assert ipv6_lease_key(bytes(8))[0] == IPV6_LEASE
    assert association_key(MAC_A) == b"\x02" + MAC_A
    assert is_lease_key(KEY) and is_lease_key(ipv6_lease_key(bytes(8)))
    assert not is_lease_key(association_key(MAC_A))
    assert not is_lease_key(b"\x00\x01") and not is_lease_key(b"")


# -- receiving --------------------------------------------------------------

def test_new_datum_is_inserted_and_passed_on(store):
    outcome, datum = store.receive(KEY, 5, MAC_A, 100, origin="p1")
    assert outcome is Outcome.CHANGED
    # A second is taken as spent in transit (TRANSIT_ALLOWANCE).
    assert (datum.seqno, datum.value, store.remaining(datum)) == (5, MAC_A, 99)
    assert store.changes == [(KEY, 5, MAC_A, None, "p1")]


def test_expired_unknown_datum_is_ignored(store):
    assert store.receive(KEY, 5, MAC_A, 0) == (Outcome.IGNORED, None)
    assert len(store) == 0 and store.changes == []


def test_newer_seqno_replaces_value_and_expiry(store):
    store.receive(KEY, 5, MAC_A, 100)
    outcome, datum = store.receive(KEY, 6, MAC_B, 50, origin="p2")
    assert outcome is Outcome.CHANGED
    assert (datum.seqno, datum.value, store.remaining(datum)) == (6, MAC_B, 49)
    assert store.changes[-1] == (KEY, 6, MAC_B, MAC_A, "p2")


def test_newer_seqno_across_wraparound(store):
    store.receive(KEY, 65535, MAC_A, 100)
    outcome, datum = store.receive(KEY, 0, MAC_B, 100)
    assert outcome is Outcome.CHANGED and datum.seqno == 0 and datum.value == MAC_B
    assert store.receive(KEY, 65535, MAC_A, 100)[0] is Outcome.IGNORED
    assert store.get(KEY).value == MAC_B


def test_older_seqno_is_ignored(store):
    store.receive(KEY, 6, MAC_A, 100)
    store.changes.clear()
    outcome, datum = store.receive(KEY, 5, MAC_B, 1000)
    assert outcome is Outcome.IGNORED
    assert datum.value == MAC_A and store.changes == []


def test_same_seqno_same_value_keeps_later_expiry(store, clock):
    store.receive(KEY, 3, MAC_A, 100)
    store.changes.clear()
    assert store.receive(KEY, 3, MAC_A, 50)[0] is Outcome.IGNORED
    assert store.remaining(store.get(KEY)) == 99
    outcome, datum = store.receive(KEY, 3, MAC_A, 300, origin="p")
    assert outcome is Outcome.CHANGED and store.remaining(datum) == 299
    assert store.changes == [(KEY, 3, MAC_A, MAC_A, "p")]


def test_refresh_within_rounding_is_not_a_change(store, clock):
    # Remaining times travel as whole seconds: 99.6 s held, 100 s received.
    store.receive(KEY, 3, MAC_A, 100)
    clock.now += 0.4
    assert store.receive(KEY, 3, MAC_A, 100)[0] is Outcome.IGNORED


def test_conflict_greater_value_wins_and_is_adopted(store):
    store.receive(KEY, 3, MAC_A, 100)
    outcome, datum = store.receive(KEY, 3, MAC_B, 50, origin="p")
    assert outcome is Outcome.CONFLICT_LOST
    # upstream keeps its own value here; we adopt the winner's.
    assert datum.value == MAC_B and datum.seqno == 3
    assert store.remaining(datum) == 49
    assert store.changes[-1] == (KEY, 3, MAC_B, MAC_A, "p")


def test_conflict_we_win_with_the_greater_value_whatever_the_times(store):
    store.receive(KEY, 3, MAC_B, 20)
    store.changes.clear()
    outcome, datum = store.receive(KEY, 3, MAC_A, 5000)
    assert outcome is Outcome.CONFLICT_WON
    assert datum.value == MAC_B and store.changes == []


@pytest.mark.parametrize("ours,theirs", [(MAC_A, MAC_B), (MAC_B, MAC_A)])
@pytest.mark.parametrize("their_time", [20, 100, 3000])
def test_conflict_is_decided_the_same_way_everywhere(clock, ours, theirs, their_time):
    s = Store(clock)
    s.receive(KEY, 7, ours, 100)
    outcome, datum = s.receive(KEY, 7, theirs, their_time)
    assert datum.value == max(MAC_A, MAC_B)
    assert outcome is (Outcome.CONFLICT_WON if ours > theirs else Outcome.CONFLICT_LOST)


def test_conflict_under_transit_delay_does_not_swap_values(clock):
    """Regression: with the longer time winning (and 2 s of slack), each side
    saw the other's time inflated by a 3 s transit and adopted it: the two
    values swapped at every exchange."""
    n1, n2 = Store(clock), Store(clock)
    n1.receive(KEY, 0, MAC_A, 100)
    n2.receive(KEY, 0, MAC_B, 100)
    for _ in range(4):
        d1, d2 = n1.get(KEY), n2.get(KEY)
        r1, r2 = n1.remaining(d1), n2.remaining(d2)
        v1, v2 = d1.value, d2.value
        clock.now += 3.0  # in flight
        n1.receive(KEY, 0, v2, r2)
        n2.receive(KEY, 0, v1, r1)
    assert n1.get(KEY).value == n2.get(KEY).value == MAC_B


def test_refresh_is_news_only_past_the_transit_allowance(store, clock):
    """A datum going round a loop of peers comes back with its transit delay
    added: that must not count as a refresh, or it is flooded for ever."""
    store.receive(KEY, 3, MAC_A, 600)
    assert store.receive(KEY, 3, MAC_A, 600 + int(REFRESH_GAIN) - 1)[0] is Outcome.IGNORED
    assert store.receive(KEY, 3, MAC_A, 600 + int(REFRESH_GAIN) + 1)[0] is Outcome.CHANGED
    # A short datum (a 10 s offer) cannot be kept alive by a 1 s link.
    short = ipv4_lease_key(bytes([192, 0, 2, 11]))
    store.receive(short, 0, MAC_A, 10)
    for _ in range(9):
        clock.now += 1.0
        datum = store.get(short)
        assert store.receive(short, 0, MAC_A, store.remaining(datum) + 1)[0] is Outcome.IGNORED
    clock.now += 1.0
    assert store.live(short) is None


def test_small_local_extensions_are_announced_together(store, clock):
    store.put(KEY, MAC_A, 100)
    store.changes.clear()
    for _ in range(5):
        clock.now += 5
        store.extend(KEY, 100)  # 5 s more each time: kept here
    clock.now += 5
    store.extend(KEY, 100)  # 30 s since announced: now it is news
    assert len(store.changes) == 1
    assert refresh_gain(100) == 25 and refresh_gain(10) == 10 and refresh_gain(5000) == 30


def test_put_with_step_makes_a_new_seqno_even_for_the_same_value(store):
    store.receive(KEY, 9, MAC_A, 100)
    assert store.put(KEY, MAC_A, 100, step=2).seqno == 11
    assert store.put(KEY, MAC_A, 100).seqno == 11


def test_two_nodes_in_conflict_agree_after_exchanging(clock):
    """Both sides decide the same winner, though their times differ by rounding."""
    n1, n2 = Store(clock), Store(clock)
    n1.receive(KEY, 0, MAC_A, 100)
    clock.now += 0.7
    n2.receive(KEY, 0, MAC_B, 100)
    d1, d2 = n1.get(KEY), n2.get(KEY)
    n1.receive(KEY, d2.seqno, d2.value, n2.remaining(d2))
    n2.receive(KEY, d1.seqno, d1.value, n1.remaining(d1))
    assert n1.get(KEY).value == n2.get(KEY).value == MAC_B


# -- expiry -----------------------------------------------------------------

def test_an_expired_datum_is_replaced_by_a_live_one_whatever_its_seqno(store, clock):
    store.receive(KEY, 9, MAC_A, 10)
    clock.now += 11
    assert store.live(KEY) is None and store.get(KEY) is not None
    # An older datum still live elsewhere (a node that never saw seqno 9, a
    # partition, a C sroamd that restarted the key at 0): what the others hold.
    outcome, datum = store.receive(KEY, 2, MAC_B, 100)
    assert outcome is Outcome.CHANGED and datum.seqno == 2 and datum.value == MAC_B

def test_expired_update_never_replaces_live_datum(store):
    store.receive(KEY, 2, MAC_A, 100)
    assert store.receive(KEY, 9, MAC_B, 0)[0] is Outcome.IGNORED
    assert store.live(KEY).value == MAC_A


def test_a_short_newer_datum_gives_the_one_it_superseded_back(store, clock):
    """Regression (simulation seed 356): a foreign offer (seqno 2, 10 s)
    replaced a 1,800 s lease on the nodes it reached in time, and lapsed;
    the nodes it reached too late kept the lease, the others had nothing.
    (Ending the lease everywhere instead made the lapsed offer and the live
    lease end and revive each other for ever: seed 15478.)"""
    store.receive(KEY, 0, MAC_A, 1800)
    store.receive(KEY, 2, MAC_B, 10)  # the short newer one
    clock.now += 10
    assert store.expire() == []
    datum = store.live(KEY)
    assert (datum.seqno, datum.value) == (0, MAC_A) and store.remaining(datum) > 1700

def test_expired_update_against_expired_datum_follows_seqno(store, clock):
    store.receive(KEY, 2, MAC_A, 10)
    clock.now += 20
    assert store.receive(KEY, 1, MAC_B, 0)[0] is Outcome.IGNORED
    assert store.receive(KEY, 3, MAC_B, 0)[0] is Outcome.CHANGED
    assert store.get(KEY).seqno == 3


def test_expire_reports_then_forgets(store, clock):
    store.receive(KEY, 1, MAC_A, 10)
    other = ipv4_lease_key(bytes([192, 0, 2, 11]))
    store.receive(other, 1, MAC_B, 100)
    clock.now += 5
    assert store.expire() == []
    assert store.next_expiry() == pytest.approx(1009)
    clock.now += 6
    expired = store.expire()
    assert [d.key for d in expired] == [KEY]
    assert store.get(KEY) is not None  # kept: it remembers the seqno
    assert store.lease_of(MAC_A, IPV4_LEASE) is None
    clock.now += EXPIRED_RETENTION
    assert [d.key for d in store.expire()] == [other]  # other expires now
    assert store.get(KEY) is None  # KEY is forgotten
    assert store.get(other) is not None


def test_refreshed_datum_does_not_expire_at_its_old_time(store, clock):
    store.receive(KEY, 1, MAC_A, 10)
    store.receive(KEY, 1, MAC_A, 100)
    clock.now += 20
    assert store.expire() == []
    assert store.live(KEY) is not None


def test_expiry_heap_stays_bounded_under_refreshes(store, clock):
    store.put(KEY, MAC_A, 10)
    for _ in range(10000):
        clock.now += 0.01
        store.extend(KEY, 10)
    assert store._entries < 200  # stale calendar entries are dropped


# -- local changes ----------------------------------------------------------

def test_put_new_then_same_value_extends(store, clock):
    datum = store.put(KEY, MAC_A, 10)
    assert datum.seqno == 0 and store.changes[-1][3] is None
    clock.now += 5
    store.put(KEY, MAC_A, 10)
    assert datum.seqno == 0 and store.remaining(datum) == 10


def test_put_other_value_bumps_seqno(store):
    store.receive(KEY, 65535, MAC_A, 100)
    datum = store.put(KEY, MAC_B, 100)
    assert datum.seqno == 0 and datum.value == MAC_B  # wrapped
    assert store.changes[-1] == (KEY, 0, MAC_B, MAC_A, None)


def test_extend_live_datum_keeps_seqno_and_only_extends(store, clock):
    store.put(KEY, MAC_A, 100)
    assert store.extend(KEY, 50) is False
    assert store.extend(KEY, 200) is True
    assert store.get(KEY).seqno == 0 and store.remaining(store.get(KEY)) == 200


def test_extend_expired_datum_bumps_seqno(store, clock):
    store.put(KEY, MAC_A, 10)
    clock.now += 11
    assert store.extend(KEY, 100) is True
    assert store.get(KEY).seqno == 1


# -- lookups by MAC ---------------------------------------------------------

def test_leases_by_mac_follow_changes(store):
    v4 = ipv4_lease_key(bytes([192, 0, 2, 20]))
    v4b = ipv4_lease_key(bytes([192, 0, 2, 5]))
    v6 = ipv6_lease_key(bytes.fromhex("20010db844440001"))
    store.put(v4, MAC_A, 100)
    store.put(v4b, MAC_A, 100)
    store.put(v6, MAC_A, 100)
    store.put(association_key(MAC_A), NODE_1, 100)
    assert store.lease_of(MAC_A, IPV4_LEASE).key == v4b  # smallest address, as upstream
    assert [d.key for d in store.leases_of(MAC_A, IPV4_LEASE)] == [v4b, v4]
    assert store.lease_of(MAC_A, IPV6_LEASE).key == v6
    store.put(v4b, MAC_B, 100)
    assert store.lease_of(MAC_A, IPV4_LEASE).key == v4
    assert store.lease_of(MAC_B, IPV4_LEASE).key == v4b
    assert store.lease_of(NODE_1[:6], IPV4_LEASE) is None


def test_leases_by_mac_made_at_first_lookup_then_kept(store, clock):
    """The MAC index is made when a lease is first looked up (a relay never
    does) and follows every change after; a client's leases share one MAC
    object (memory per datum, issue 11)."""
    v4 = ipv4_lease_key(bytes([192, 0, 2, 20]))
    v6 = ipv6_lease_key(bytes.fromhex("20010db844440001"))
    store.receive(v4, 0, bytes(bytearray(MAC_A)), 100)  # (objects of their own)
    store.receive(v6, 0, bytes(bytearray(MAC_A)), 100)
    assert store.get(v4).value is not store.get(v6).value  # (not yet indexed)
    assert store.lease_of(MAC_A, IPV4_LEASE).key == v4      # made here
    assert store.get(v4).value is store.get(v6).value
    later = ipv4_lease_key(bytes([192, 0, 2, 7]))
    store.receive(later, 0, bytes(bytearray(MAC_A)), 100)             # after: indexed at once
    assert [d.key for d in store.leases_of(MAC_A, IPV4_LEASE)] == [later, v4]
    assert store.get(later).value is store.get(v6).value
    store.receive(later, 1, MAC_B, 100)                      # value changed
    assert store.lease_of(MAC_B, IPV4_LEASE).key == later
    assert [d.key for d in store.leases_of(MAC_A, IPV4_LEASE)] == [v4]
    clock.now += 100 + EXPIRED_RETENTION + 1
    store.expire()
    store.expire()                                           # forgotten: out of the index
    assert store.get(v4) is None and store.leases_of(MAC_A, IPV4_LEASE) == []


def test_association_values_are_not_indexed_as_leases(store):
    store.put(association_key(MAC_A), MAC_B + b"\0\0", 100)
    assert store.get(association_key(MAC_A)).kind == ASSOCIATION
    assert store.leases_of(MAC_B, IPV4_LEASE) == []


def test_live_data_excludes_expired(store, clock):
    store.put(KEY, MAC_A, 10)
    store.put(association_key(MAC_A), NODE_2, 100)
    clock.now += 50
    assert [d.key for d in store.live_data()] == [association_key(MAC_A)]


def test_an_expired_datum_coming_back_round_a_loop_is_not_revived(store, clock):
    """Regression (simulation seed 43): in a ring with 1-2 s links, a lease in
    its last seconds reached each node just after its own copy had lapsed;
    each took it as new and passed it on, for ever."""
    store.receive(KEY, 0, MAC_A, 2)
    clock.now += 3.0  # ours lapsed
    assert store.receive(KEY, 0, MAC_A, 2)[0] is Outcome.IGNORED
    assert store.live(KEY) is None
    # A real renewal (or another value, or a newer seqno) still revives it.
    assert store.receive(KEY, 0, MAC_A, 600)[0] is Outcome.CHANGED


def test_far_seqnos_cannot_replace_each_other_round_a_loop(clock):
    """Regression (simulation seed 1638): foreign data with seqnos 0, 9164
    and 41932 for one key, each newer than the one before in serial
    arithmetic and 0 newer than 41932, replaced each other on ten nodes for
    ever (5,724 messages in flight 97 s after the last event)."""
    s = Store(clock)
    s.receive(KEY, 0, MAC_A, 60)
    assert s.receive(KEY, 9164, MAC_B, 60)[0] is Outcome.CHANGED  # near: newer
    assert s.receive(KEY, 41932, MAC_A, 60)[0] is Outcome.CHANGED  # exactly half: numeric
    assert s.receive(KEY, 0, MAC_B, 60)[0] is Outcome.IGNORED  # far from 41932: the loop is cut
    assert s.receive(KEY, 41932 + 0x4000, MAC_B, 60)[0] is Outcome.IGNORED  # far
    assert s.get(KEY).seqno == 41932
    clock.now += 61  # lapsed: anything live and newer is taken again
    assert s.receive(KEY, 41933, MAC_A, 60)[0] is Outcome.CHANGED


def test_an_older_datum_does_not_revive_a_key_that_just_lapsed(store, clock):
    """Regression (simulation seed 975): two data of one key near their end
    (seqnos 39007 and 6239) revived each other round a ring of 1-2 s links,
    each replacing the other's lapsed copy, 72 s past their expiry."""
    store.receive(KEY, 39007, MAC_A, 2)
    clock.now += 3.0  # lapsed
    assert store.receive(KEY, 6239, MAC_B, 2)[0] is Outcome.IGNORED  # older, in its last seconds
    assert store.receive(KEY, 39008, MAC_B, 2)[0] is Outcome.CHANGED  # newer: taken


def test_the_winner_of_a_conflict_does_not_revive_in_its_last_seconds(store, clock):
    """Regression (simulation seed 5244): the winner of a conflict had 4 s
    left, the loser 16 s; on a ring the two chased each other 85 s past their
    expiry.  Now the loser takes the lapsed winner's place and stays."""
    store.receive(KEY, 0, MAC_B, 4)
    clock.now += 5.0  # the winner lapsed here
    assert store.receive(KEY, 0, MAC_A, 16)[0] is Outcome.CHANGED  # the loser
    assert store.receive(KEY, 0, MAC_B, 1)[0] is Outcome.IGNORED  # lapsed in transit
    # A copy of the winner still live wins while it lives, and the loser,
    # kept in mind, takes its place again when it lapses.
    assert store.receive(KEY, 0, MAC_B, 3)[0] is Outcome.CONFLICT_LOST
    clock.now += 2.5
    assert store.expire() == [] and store.live(KEY).value == MAC_A

def test_a_datum_loses_time_going_round_a_slow_loop(clock):
    """Regression (simulation seed 15796): a lease with 40 s left went round
    a ring of ten 1.5 s links for ever, every node taking it back as a 15 s
    refresh.  Received data now count a second of transit, so a datum
    forwarded at once loses time at each hop instead of gaining the link's
    delay minus rounding."""
    ring = [Store(clock) for _ in range(10)]
    ring[0].receive(KEY, 0, MAC_A, 41)
    passes = 0
    for hop in range(1, 200):
        src, dst = ring[(hop - 1) % 10], ring[hop % 10]
        datum = src.live(KEY)
        if datum is None:
            break
        remaining = src.remaining(datum)
        clock.now += 1.5
        if dst.receive(KEY, 0, MAC_A, remaining)[0] is not Outcome.CHANGED:
            break
        passes += 1
    assert passes < 20


def test_a_failing_listener_does_not_hide_the_change_from_the_others(store):
    seen = []

    def broken(datum, old, origin):
        raise ValueError("boom")

    store.listeners.insert(0, broken)
    store.listeners.append(lambda d, old, origin: seen.append(d.key))
    store.receive(KEY, 1, MAC_A, 100)
    assert seen == [KEY] and store.listener_errors == 1


def test_a_conflict_winner_that_lapses_first_falls_back_on_the_loser(store, clock):
    """Regression (simulation seed 19628): a node's 10 s offer (the greater
    value, 0.8 s left) won against another node's 120 s lease of the same
    address, lapsed a moment later, and the node was left without the lease
    every other node held."""
    store.receive(KEY, 0, MAC_B, 2)  # ours: 1 s left, the greater value
    outcome, datum = store.receive(KEY, 0, MAC_A, 112)
    assert outcome is Outcome.CONFLICT_WON and datum.value == MAC_B  # the same everywhere
    store.changes.clear()
    clock.now += 1.5
    assert store.expire() == []  # not lapsed: the loser took its place
    datum = store.live(KEY)
    assert datum is not None and datum.value == MAC_A and store.remaining(datum) == 109
    assert store.changes[-1][:3] == (KEY, 0, MAC_A)  # passed on, routes follow


def test_a_newer_datum_forgets_the_runner_up(store, clock):
    store.receive(KEY, 0, MAC_B, 20)
    store.receive(KEY, 0, MAC_A, 500)  # lost to MAC_B, kept in mind
    store.receive(KEY, 1, MAC_B, 20)  # a newer datum
    clock.now += 25
    assert [d.key for d in store.expire()] == [KEY] and store.live(KEY) is None


def test_of_several_losers_the_runner_up_is_the_one_the_others_hold(store, clock):
    """Regression (simulation seed 3552): an address leased twice in a
    partition (MAC_A, MAC_B) and a stray 10 s offer (MAC_C, the greatest
    value) on this node.  Every other node settles on MAC_B (greater than
    MAC_A); when the offer lapsed here, this node fell back on MAC_A, the
    longest-lived loser, and alone held it."""
    mac_c = bytes.fromhex("02f00000000c")
    store.receive(KEY, 0, mac_c, 10)
    store.receive(KEY, 0, MAC_B, 1700)
    store.receive(KEY, 0, MAC_A, 1790)  # lives longer, but loses to MAC_B everywhere
    clock.now += 11
    store.expire()
    assert store.live(KEY).value == MAC_B


def test_a_runner_up_of_a_newer_seqno_beats_an_older_longer_one(store, clock):
    """Regression (simulation seed 10547): this node's lease (seqno 0) was
    superseded by a stray 10 s offer at seqno 1, and kept in mind as it
    outlives it; then the release at seqno 1 (an empty value, lesser than
    the offer's) lost to the offer.  When the offer lapsed, the node fell
    back on the seqno-0 lease, which the release had overruled on every
    other node."""
    store.receive(KEY, 0, MAC_A, 1790)
    store.receive(KEY, 1, bytes.fromhex("02f00000000d"), 10)  # outlived by ours
    store.receive(KEY, 1, b"", 1770)  # the release: loses to the offer here
    clock.now += 11
    store.expire()
    datum = store.live(KEY)
    assert (datum.seqno, datum.value) == (1, b"")


def test_an_older_datum_that_outlives_ours_comes_back_when_ours_lapses(store, clock):
    """Regression (simulation seed 4440): a stray 60 s datum at seqno 2 beat
    a 1800 s lease at seqno 0.  Nodes that had the lease first kept it in
    mind and fell back on it when the stray lapsed; this node saw the lease
    only after the stray (0.25 s before it lapsed), ignored it as older, and
    alone was left without it."""
    store.receive(KEY, 2, bytes.fromhex("02f00000000c"), 2)
    outcome, _ = store.receive(KEY, 0, MAC_A, 1744)
    assert outcome is Outcome.IGNORED  # older: not news, not passed on
    clock.now += 3
    store.expire()
    datum = store.live(KEY)
    assert datum is not None and (datum.seqno, datum.value) == (0, MAC_A)


def test_leases_by_mac_many_keys_for_one_mac(store):
    """The index holds one key, a tuple, then a list (a peer sending many
    leases for one MAC): every form is looked up and unindexed."""
    keys = [ipv4_lease_key(bytes([192, 0, 2, n])) for n in range(10, 30)]
    for key in keys:
        store.put(key, MAC_A, 100)
    assert [d.key for d in store.leases_of(MAC_A, IPV4_LEASE)] == sorted(keys)
    for key in keys[:-1]:
        store.put(key, MAC_B, 100)
    assert [d.key for d in store.leases_of(MAC_A, IPV4_LEASE)] == [keys[-1]]
    assert [d.key for d in store.leases_of(MAC_B, IPV4_LEASE)] == sorted(keys[:-1])
    store.put(keys[-1], MAC_B, 100)
    assert store.leases_of(MAC_A, IPV4_LEASE) == []
    assert MAC_A not in store._leases_by_mac


def test_expiry_calendar_orders_events_within_a_second(store, clock):
    """Events in one second of the calendar come out in time order, those
    not due yet stay for the next call, and next_expiry is exact."""
    keys = [ipv4_lease_key(bytes([192, 0, 2, n])) for n in (30, 31, 32)]
    clock.now = 1000.0
    for key, life in zip(keys, (10.7, 10.2, 10.5)):
        store.put(key, MAC_A, life)
    assert store.next_expiry() == pytest.approx(1010.2)
    clock.now = 1010.6
    assert [d.key for d in store.expire()] == [keys[1], keys[2]]
    assert store.next_expiry() == pytest.approx(1010.7)
    clock.now = 1010.8
    assert [d.key for d in store.expire()] == [keys[0]]
    assert store.next_expiry() == pytest.approx(1010.2 + EXPIRED_RETENTION)
