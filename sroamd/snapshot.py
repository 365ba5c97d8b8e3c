"""The store kept across a restart, in the state directory.

A restarted node syncs its store from its peers' dumps.  With no peer
reachable (the only AP, or a backbone down) it would come back empty: the
routes of its stations, kept in the kernel across the restart, would be
removed as nobody's, and their clients blackholed until their next DHCP
renewal.  So a clean stop (SIGTERM) writes the live data to
STATE_DIR/store, and the next start reads them back, aged by the time the
daemon was down (wall clock: the monotonic clock does not survive the
process).  The file is written once per stop, never while running: on an
access point the state directory is flash.

Format, declared in construct: a magic, the wall-clock time of the save,
then the data as flooding Update TLVs (sroamd/wire/flood.py).
"""

from __future__ import annotations

import logging
import os
import time

from construct import Const, ConstructError, Float64b, GreedyBytes, Struct

from sroamd.store import Store
from sroamd.wire.flood import (MAX_BODY, FloodFormatError, Update, build_updates, parse_tlvs,
                               tlv_length)

log = logging.getLogger("sroamd")

FILE_NAME = "store"
SNAPSHOT = Struct("magic" / Const(b"sroamd-store-1\n"), "saved" / Float64b,
                  "tlvs" / GreedyBytes)


def snapshot_path(state_dir: str) -> str:
    return os.path.join(state_dir, FILE_NAME)


def save(store: Store, path: str, wall_clock=time.time) -> int:
    """Write the live data to path (atomically); how many were written."""
    updates = [Update(datum.key, datum.seqno, datum.value, store.remaining(datum))
               for datum in store.live_data()
               if tlv_length(datum.key, datum.value) - 2 <= MAX_BODY]
    tlvs = build_updates(updates)  # one batch (wire.flood)
    data = SNAPSHOT.build({"saved": wall_clock(), "tlvs": tlvs})
    temporary = f"{path}.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError as e:
        log.error("cannot keep the store in %s for the next start: %s", path, e)
        return 0
    return len(updates)


def load(store: Store, path: str, wall_clock=time.time) -> int:
    """Merge the data saved in path, aged by the time since; how many were live.

    The file is removed once read: it describes this one restart, and an old
    one must not come back after a later crash."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.error("cannot read the store kept in %s: %s", path, e)
        return 0
    try:
        snapshot = SNAPSHOT.parse(raw)
        updates, used = parse_tlvs(snapshot.tlvs)
    except (ConstructError, FloodFormatError) as e:
        log.error("ignoring %s: not a store snapshot (%s)", path, e)
        return 0
    down = max(0.0, wall_clock() - snapshot.saved)
    live = 0
    for update in updates:
        remaining = update.time - down
        if remaining >= 1:
            store.receive(update.key, update.seqno, update.value, int(remaining))
            live += 1
    return live
