"""The store kept across a clean restart (sroamd/snapshot.py)."""

import os

from sroamd import snapshot
from sroamd.store import Store, association_key, ipv4_lease_key

MAC = bytes.fromhex("020000000001")
KEY = ipv4_lease_key(bytes([192, 0, 2, 10]))


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_saved_data_come_back_aged_by_the_downtime(tmp_path):
    path = str(tmp_path / "store")
    before = Store(Clock())
    before.put(KEY, MAC, 1800)
    before.receive(association_key(MAC), 7, bytes(range(1, 9)), 5400)
    assert snapshot.save(before, path, wall_clock=lambda: 1000.0) == 2
    after = Store(Clock())
    assert snapshot.load(after, path, wall_clock=lambda: 1030.0) == 2
    datum = after.get(KEY)
    assert datum.value == MAC and after.remaining(datum) == 1769  # (a second of transit)
    assert after.get(association_key(MAC)).seqno == 7
    assert not os.path.exists(path)  # read once


def test_data_that_lapsed_while_down_are_not_loaded(tmp_path):
    path = str(tmp_path / "store")
    before = Store(Clock())
    before.put(KEY, MAC, 10)
    snapshot.save(before, path, wall_clock=lambda: 1000.0)
    after = Store(Clock())
    assert snapshot.load(after, path, wall_clock=lambda: 1011.0) == 0 and len(after) == 0


def test_missing_or_corrupt_snapshot_is_harmless(tmp_path):
    store = Store(Clock())
    assert snapshot.load(store, str(tmp_path / "none")) == 0
    bad = tmp_path / "store"
    bad.write_bytes(b"garbage")
    assert snapshot.load(store, str(bad)) == 0 and len(store) == 0
    truncated = tmp_path / "store2"
    saved = Store(Clock())
    saved.put(KEY, MAC, 1800)
    snapshot.save(saved, str(truncated), wall_clock=lambda: 0.0)
    truncated.write_bytes(truncated.read_bytes()[:-3])
    assert snapshot.load(store, str(truncated), wall_clock=lambda: 0.0) == 0


def test_unwritable_state_dir_is_logged_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = Store(Clock())
    store.put(KEY, MAC, 1800)
    assert snapshot.save(store, str(blocker / "sub" / "store")) == 0
