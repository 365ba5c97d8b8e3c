"""Which clients this node serves, and what follows when that changes.

Protocol logic only: station events and store changes come in, actions go
out through a callback (the daemon carries them out), so it is tested
without sockets or netlink.

  station associates here    -> claim it: association datum = our node id
                                (Store.put bumps the seqno, beating the old
                                holder), then Serve (routes, ARP/NA, RA)
  station leaves here        -> give it up (empty value), Unserve
  another node claims one of -> Unserve and Kick: the station is gone from
  ours                          here, hostapd must forget it too
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from sroamd.store import ASSOCIATION, Datum, Store, association_key

# Lifetime of an association datum (what C sroamd uses); refreshed for the
# stations still here every ASSOCIATION_REFRESH seconds.
ASSOCIATION_TIME = 5400
ASSOCIATION_REFRESH = ASSOCIATION_TIME // 3


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
    def __init__(self, store: Store, node_id: bytes, act: Callable[[Action], None]):
        self.store = store
        self.node_id = node_id
        self.act = act
        self.clients: dict[bytes, str] = {}  # MAC -> roaming interface it is on
        self.roams_in = 0
        self.roams_out = 0
        store.listeners.append(self.on_store_change)

    def station_associated(self, ifname: str, mac: bytes) -> None:
        previous = self.store.live(association_key(mac))
        # (copied now: put() updates the same Datum in place)
        previous_holder = previous.value if previous is not None else b""
        self.clients[mac] = ifname
        self.store.put(association_key(mac), self.node_id, ASSOCIATION_TIME)
        self.act(Serve(ifname, mac))
        if previous_holder not in (b"", self.node_id):
            self.roams_in += 1
            self.act(Roamed(mac, True, ifname, previous_holder))

    def station_disassociated(self, ifname: str, mac: bytes) -> None:
        if self.clients.get(mac) != ifname:
            return  # not ours, or already moved to another of our interfaces
        del self.clients[mac]
        datum = self.store.get(association_key(mac))
        if datum is not None and datum.value == self.node_id:
            self.store.put(association_key(mac), b"", ASSOCIATION_TIME)
        self.act(Unserve(mac))

    def on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        if datum.kind != ASSOCIATION or len(datum.key) != 7:
            return
        mac = datum.key[1:]
        ifname = self.clients.get(mac)
        if ifname is None or datum.value in (b"", self.node_id):
            return
        # Another node holds the client now: it roamed away from us.
        del self.clients[mac]
        self.roams_out += 1
        self.act(Unserve(mac))
        self.act(Kick(ifname, mac))
        self.act(Roamed(mac, False, ifname, datum.value))

    def refresh(self) -> None:
        """Keep the associations of the stations still here from expiring."""
        for mac in self.clients:
            key = association_key(mac)
            datum = self.store.get(key)
            if datum is not None and datum.value == self.node_id:
                self.store.extend(key, ASSOCIATION_TIME)
            else:
                self.store.put(key, self.node_id, ASSOCIATION_TIME)
