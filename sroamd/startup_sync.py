"""Sync before serving: when a restarted node may hand out new addresses.

Right after a start the store is empty.  A DHCP server answering from it
hands out addresses that live clients hold; when the peers' dump arrives,
one of the two leases loses and its client is blackholed until its next
renewal.  So no new address and no new /64 is handed out until

  * a peer's complete dump came in (the flooding layer says when), or
  * the grace period passed with no session up to a synced peer (nobody to
    sync from: the first AP of a domain, all peers down, or only peers that
    restarted too and say their dumps are not the domain's), or
  * the grace period passed six times over (a peer that never finishes its
    dump must not keep clients waiting for ever; logged as a warning),

or at once when the node has nobody to sync from at all (no peers and no
flooding port) or the grace period is 0.  Renewals of leases the store
already has are served meanwhile.

Protocol logic only: the daemon feeds it the clock and the events.
"""

from __future__ import annotations

from typing import Callable

MAX_WAIT_FACTOR = 6


class StartupSync:
    def __init__(self, clock: Callable[[], float], grace: float, has_peers: bool):
        self.clock = clock
        self.grace = grace
        self.started = clock()
        self.synced_at: float | None = None
        self.how = ""
        if grace <= 0:
            self._done("no grace period configured")
        elif not has_peers:
            self._done("no flooding peers configured")

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    def dump_complete(self, peer: str) -> bool:
        """A peer's dump is in; True if this completes the sync."""
        if self.synced:
            return False
        self._done(f"dump from {peer}")
        return True

    def tick(self, sessions_up: int) -> bool:
        """Called periodically; True if the sync completes now."""
        if self.synced:
            return False
        waited = self.clock() - self.started
        if sessions_up == 0 and waited >= self.grace:
            self._done(f"no peer reachable within {self.grace:g} s")
            return True
        if waited >= self.grace * MAX_WAIT_FACTOR:
            self._done(f"no complete dump within {self.grace * MAX_WAIT_FACTOR:g} s")
            return True
        return False

    def status(self) -> dict:
        return {"synced": self.synced, "how": self.how,
                "seconds": round((self.synced_at if self.synced else self.clock())
                                 - self.started, 3)}

    def _done(self, how: str) -> None:
        self.synced_at = self.clock()
        self.how = how
