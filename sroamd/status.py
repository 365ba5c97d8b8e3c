"""sroamd's state as plain JSON-friendly tables: `ubus call sroamd ...`.

Each function takes the daemon and returns a dict, as `ubus call` prints it.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING

from sroamd import __version__
from sroamd.dump import format_mac
from sroamd.store import ASSOCIATION, IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS, association_key

if TYPE_CHECKING:
    from sroamd.daemon import Daemon


def lease_address(key: bytes) -> str | None:
    """The address (IPv4) or prefix (IPv6 /64) a well-formed lease key names."""
    if len(key) != KEY_LENGTHS.get(key[0], -1):
        return None
    if key[0] == IPV4_LEASE:
        return str(ipaddress.IPv4Address(key[1:]))
    if key[0] == IPV6_LEASE:
        return str(ipaddress.IPv6Network((key[1:] + bytes(8), 64)))
    return None


def holder_of(daemon: "Daemon", mac: bytes) -> str | None:
    datum = daemon.store.live(association_key(mac))
    if datum is None or len(datum.value) != 8:
        return None
    return datum.value.hex()


# Leases in one `ubus call sroamd leases` reply: ubusd refuses messages over
# 1 MiB (about 7,000 leases), and building a reply for a whole /16 would hold
# the event loop for seconds (attack review: 10,000 leases, 2-3 s, dropped).
MAX_LEASES_REPLY = 2000


def leases(daemon: "Daemon") -> dict:
    """The first MAX_LEASES_REPLY leases, IPv4 then IPv6, in address order;
    total says how many there are."""
    store = daemon.store
    held = [datum for datum in store.live_data()
            if datum.kind in (IPV4_LEASE, IPV6_LEASE) and len(datum.value) == 6
            and len(datum.key) == KEY_LENGTHS[datum.kind]]
    held.sort(key=lambda datum: datum.key)  # kind first, then the address
    table = [{"address": lease_address(datum.key), "mac": format_mac(datum.value),
              "remaining": store.remaining(datum), "node": holder_of(daemon, datum.value)}
             for datum in held[:MAX_LEASES_REPLY]]
    return {"leases": table, "total": len(held), "truncated": len(held) > MAX_LEASES_REPLY}


def clients(daemon: "Daemon") -> dict:
    store = daemon.store
    table = []
    for mac, ifname in sorted(daemon.roaming.clients.items()):
        entry = {"mac": format_mac(mac), "interface": ifname}
        v4 = store.lease_of(mac, IPV4_LEASE)
        v6 = store.lease_of(mac, IPV6_LEASE)
        if v4 is not None:
            entry["ipv4"] = lease_address(v4.key)
        if v6 is not None:
            entry["ipv6"] = lease_address(v6.key)
        table.append(entry)
    return {"clients": table}


def peers(daemon: "Daemon") -> dict:
    return {"configured": [{"peer": name, "state": state}
                           for name, state in sorted(daemon.flooder.peer_state.items())],
            "sessions": daemon.flooder.status()}


def roams(daemon: "Daemon") -> dict:
    return daemon.roams.table()


def status(daemon: "Daemon") -> dict:
    store = daemon.store
    counts = {"ipv4_leases": 0, "ipv6_leases": 0, "associations": 0}
    names = {IPV4_LEASE: "ipv4_leases", IPV6_LEASE: "ipv6_leases", ASSOCIATION: "associations"}
    for datum in store.live_data():
        if datum.kind in names and (datum.kind != ASSOCIATION or datum.value):
            counts[names[datum.kind]] += 1
    result = {
        "version": __version__,
        "node_id": daemon.node_id.hex(),
        "uptime": int(time.monotonic() - daemon.started),
        # Sync before serving: no new address until this says synced.
        "sync": daemon.sync.status(),
        "interfaces": list(daemon.config.interfaces),
        "clients": len(daemon.roaming.clients),
        "data": len(store),
        **counts,
        "roams_in": daemon.roaming.roams_in,
        "roams_out": daemon.roaming.roams_out,
        "reclaims": daemon.roaming.reclaims,
        "peers": [{"peer": name, "state": state}
                  for name, state in sorted(daemon.flooder.peer_state.items())],
        "sessions": sum(1 for s in daemon.flooder.sessions if s.established),
        "malformed_peer_messages": daemon.flooder.malformed,
        # The flooding boundary: sessions and data refused (by reason), times
        # cut, sessions closed for misbehaving, the store bound, sync.
        "flood": daemon.flooder.counters(),
        # Handling of the last associations (event to routes + ARP/NA), ms.
        "assoc_ms": [round(ms, 3) for ms in daemon.assoc_ms],
    }
    if daemon.clients is not None:
        result["service"] = daemon.clients.status()
    if daemon.stations is not None:
        result["stations"] = daemon.stations.status()
    return result
