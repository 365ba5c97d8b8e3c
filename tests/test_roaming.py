"""The roaming engine: station events and store changes -> actions."""

import pytest

from sroamd.roaming import (ASSOCIATION_TIME, Kick, Roamed, Roaming, Serve, Unserve)
from sroamd.store import Store, association_key

ME = bytes.fromhex("aaaaaaaaaaaaaaaa")
OTHER = bytes.fromhex("bbbbbbbbbbbbbbbb")
MAC = bytes.fromhex("020000000042")


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


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


def test_other_node_giving_up_or_stale_claim_changes_nothing(setup):
    roaming, store, actions, _ = setup
    roaming.station_associated("wlan0", MAC)
    actions.clear()
    store.receive(association_key(MAC), 0, OTHER, 10)  # older seqno: ignored by the store
    store.receive(association_key(MAC), 1, b"", 10)     # newer, but nobody holds it
    assert actions == []


def test_losing_a_conflict_means_the_client_is_elsewhere(setup):
    roaming, store, actions, _ = setup
    roaming.station_associated("wlan0", MAC)
    actions.clear()
    store.receive(association_key(MAC), 0, OTHER, ASSOCIATION_TIME + 100)
    assert Kick("wlan0", MAC) in actions


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
