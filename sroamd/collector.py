"""When Python's cyclic garbage collector makes its full collections (issue 11).

CPython starts a full (generation 2) collection whenever the objects that
survived the younger collections have grown by a quarter, and a full
collection looks at every tracked object (about 0.2 us each here): 10 to
30 ms with a few thousand clients, during which the event loop stands
still.  A daemon that gains thousands of clients within seconds (the DHCP
bench; an access point when a crowd arrives) gets several of them in a
row, and every DHCP exchange under way waits (the p99 at 1,000 exchanges/s
was 10 to 25 ms).  So:

  * what was made while starting (modules, the store as the snapshot left
    it) is collected once, then frozen (gc.freeze): full collections never
    look at it again;
  * generation 2 is never collected on the allocation heuristic, but every
    FULL_INTERVAL seconds, from the event loop (collect_periodically).

Young garbage cycles are collected as before (generations 0 and 1); a cycle
that survived into generation 2 waits at most FULL_INTERVAL more.
"""

from __future__ import annotations

import asyncio
import gc

FULL_INTERVAL = 60.0  # seconds between full collections
NEVER = 1 << 30  # a generation-2 threshold the heuristic never reaches


def freeze_startup() -> None:
    """Collect what starting left, freeze the rest, and take generation 2
    off the allocation heuristic (see the module doc)."""
    gc.collect()
    gc.freeze()
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, NEVER)


async def collect_periodically(interval: float = FULL_INTERVAL) -> None:
    """The full collections, every interval seconds (a task of the daemon)."""
    while True:
        await asyncio.sleep(interval)
        gc.collect()
