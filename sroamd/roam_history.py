"""The last roams seen here, for `ubus call sroamd roams` (and LuCI's status page).

The `sroamd.roam` event is gone once sent: a status page opened later, or
one that polls, would never see a roam.  So the daemon keeps the last
LIMIT roams in a bounded ring, newest first on reading.  Times are wall
clock (what an operator compares with the log), and an age in seconds from
the monotonic clock, which a clock step does not disturb.
"""

from __future__ import annotations

import collections
import time

from sroamd.dump import format_mac

LIMIT = 100  # roams kept: a few minutes of a busy AP, bounded memory (~20 KB)


class RoamHistory:
    def __init__(self, limit: int = LIMIT, wall_clock=time.time, monotonic=time.monotonic):
        self.limit = limit
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._roams: collections.deque[tuple[float, float, dict]] = collections.deque(maxlen=limit)
        self.total = 0  # roams recorded since start, kept and dropped

    def record(self, mac: bytes, arrived: bool, ifname: str, other_node: bytes | None) -> None:
        """A client arrived here (from other_node, if known) or left for other_node."""
        entry = {"mac": format_mac(mac), "action": "arrived" if arrived else "left",
                 "interface": ifname}
        if other_node is not None:
            entry["from" if arrived else "to"] = other_node.hex()
        self._roams.append((self._wall_clock(), self._monotonic(), entry))
        self.total += 1

    def table(self) -> dict:
        """The kept roams, newest first, as `ubus call sroamd roams` prints them."""
        now = self._monotonic()
        roams = [{"time": int(wall), "age": max(0, int(now - mono)), **entry}
                 for wall, mono, entry in reversed(self._roams)]
        return {"roams": roams, "limit": self.limit, "total": self.total}
