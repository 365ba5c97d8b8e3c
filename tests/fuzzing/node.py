"""One sroamd node built as the daemon builds it, minus the sockets.

Store, Flooder, Roaming, Leases, ClientService (DHCP, RAs, routes) are the
real objects, wired as sroamd/daemon.py wires them; the kernel edges are the
stand-ins of standins.py (routes into a recording rtnl, frames into a
recording sender, links from a fixed table), time is a fake clock, and the
daemon's timers (expiry sweep, association refresh, RA refresh) are run by
tick().
"""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import random

from sroamd.client_service import MAX_ROUTED_PER_KIND, ClientService
from sroamd.config import Config
from sroamd.flood import Flooder
from sroamd.links import Link
from sroamd.roaming import ASSOCIATION_REFRESH, Kick, Roamed, Roaming, Serve, Unserve
from sroamd.routes import RouteManager
from sroamd.store import IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS, Store

from fuzzing.standins import Clock, FakeLinks, RecordingRtnl, RecordingSender, Violation

NODE_ID = bytes.fromhex("0101010101010101")
PEER_IDS = (bytes.fromhex("0202020202020202"), bytes.fromhex("0303030303030303"))
IPV4_PREFIX = ipaddress.ip_network("192.0.2.0/24")
IPV6_PREFIX = ipaddress.ip_network("2001:db8:4444::/48")
GATEWAY = ipaddress.ip_address("192.0.2.1")
LINK_LOCAL = ipaddress.ip_address("fe80::44").packed
IFNAMES = ("wl0", "wl1")
LINK_MACS = (bytes.fromhex("020000000a00"), bytes.fromhex("020000000a01"))
# The clients the generators mostly talk about (so that state builds up and
# paths meet: a flooded lease for a served MAC, a DHCP message from one...).
CLIENT_MACS = tuple(bytes.fromhex(f"02000000{i:04x}") for i in range(1, 9))
MAX_DATA = 3000  # a small store bound, so that fuzzing reaches it

# Per-MAC state a node may keep for clients, at most (served clients, RA
# schedule, offers): a DHCP or RS flood with random MACs must not grow it
# past this.  A /24 has 253 usable addresses; twice that, with room for the
# regular clients, is more than a node of this size serves.
MAX_CLIENT_STATE = 2 * 256 + len(CLIENT_MACS)


def make_config(**overrides) -> Config:
    config = Config(ipv4_prefix=IPV4_PREFIX, ipv6_prefix=IPV6_PREFIX, gateway=GATEWAY,
                    interfaces=list(IFNAMES),
                    nameservers=[ipaddress.ip_address("192.0.2.53"),
                                 ipaddress.ip_address("2001:db8:53::53")],
                    node_id=NODE_ID)
    if hasattr(config, "max_data"):
        config.max_data = MAX_DATA
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def make_link(index: int, name: str, mac: bytes) -> Link:
    """A Link whatever fields it has grown (up, global addresses...)."""
    values = {"name": name, "index": index, "mac": mac, "ipv4": (GATEWAY.packed,),
              "link_local": LINK_LOCAL, "up": True}
    fields = {f.name: f for f in dataclasses.fields(Link)}
    args = {}
    for fname, f in fields.items():
        if fname in values:
            args[fname] = values[fname]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            args[fname] = () if "addr" in fname or fname.endswith("s") else None
    return Link(**args)


def _accepts(func, name: str) -> bool:
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def make_flooder(store: Store, config: Config) -> Flooder:
    if _accepts(Flooder.__init__, "config"):
        return Flooder(store, None, [], config=config)
    return Flooder(store, None, [])


class Node:
    def __init__(self, seed: int, config: Config | None = None, station_source: bool = True):
        """station_source: the daemon has one (hostapd says who is in; is_station
        given), else clients are served on the word of their packets."""
        self.config = config or make_config()
        self.clock = Clock()
        self.store = Store(self.clock)
        self.station_source = station_source
        # Listeners in the daemon's order: flooder, roaming, leases, client service.
        self.flooder = make_flooder(self.store, self.config)
        self.roaming = Roaming(self.store, NODE_ID, self._act, syncing=False)
        roaming = self.roaming
        # The daemon's wiring (daemon.py), with what this ClientService accepts.
        wiring = {"on_client_seen": roaming.station_associated,
                  "on_client_gone": roaming.station_disassociated,
                  "is_station": ((lambda ifname, mac: roaming.clients.get(mac) == ifname)
                                 if station_source else None)}
        self.clients = ClientService(self.store, self.config, NODE_ID,
                                     **{k: v for k, v in wiring.items()
                                        if _accepts(ClientService.__init__, k)})
        self.clients.leases.rng = random.Random(seed)
        if hasattr(self.clients.leases, "allocation_allowed"):
            self.clients.leases.allocation_allowed = True
        self.links = [make_link(7 + i, name, LINK_MACS[i]) for i, name in enumerate(IFNAMES)]
        self.rtnl = RecordingRtnl([IPV4_PREFIX, IPV6_PREFIX], [link.index for link in self.links])
        self.clients.routes = RouteManager(self.config.route_metric, self.rtnl)
        self.clients.links = FakeLinks(self.links)
        self.clients.sender = RecordingSender()
        self.store.listeners.append(self.clients.on_store_change)
        if hasattr(self.clients, "synced"):
            self.clients.synced()
        self.kicks: list[tuple[str, bytes]] = []
        self.roamed = 0
        # What hostapd says: (ifname, MAC) of the stations associated here.
        self.stations: dict[bytes, str] = {}
        self._next_refresh = self.clock.now + ASSOCIATION_REFRESH
        self.listener_errors = getattr(self.flooder, "listener_errors", 0)
        self.store_listener_errors = getattr(self.store, "listener_errors", 0)

    # -- the daemon's wiring -------------------------------------------------

    def _act(self, action) -> None:
        if isinstance(action, Serve):
            self.clients.client_arrived(action.ifname, action.mac)
        elif isinstance(action, Unserve):
            self.clients.client_left(action.mac)
        elif isinstance(action, Kick):
            self.kicks.append((action.ifname, action.mac))
            if len(self.kicks) > 64:
                del self.kicks[:32]
            # hostapd deauthenticates it: it is no longer a station here.
            if self.stations.get(action.mac) == action.ifname:
                del self.stations[action.mac]
        elif isinstance(action, Roamed):
            self.roamed += 1

    def station(self, ifname: str, mac: bytes, associated: bool) -> None:
        """hostapd says a station is in (authorized) or gone: Daemon.on_station_event."""
        if associated:
            self.stations[mac] = ifname
            self.roaming.station_associated(ifname, mac)
        else:
            if self.stations.get(mac) == ifname:
                del self.stations[mac]
            self.roaming.station_disassociated(ifname, mac)

    def tick(self, seconds: float) -> None:
        """Time passes; the daemon's timers run (expiry sweep every second,
        association refresh, RA refresh), as many times as they would have
        (at most a few sweeps: one sweep covers all that expired)."""
        self.clock.now += seconds
        expired = self.store.expire()
        if expired:
            self.clients.on_expired(expired)
        while self.clock.now >= self._next_refresh:
            self._next_refresh += ASSOCIATION_REFRESH
            self.roaming.refresh()
        self.clients._on_timer()

    # -- invariants ----------------------------------------------------------

    def check(self, served_only_stations: bool = True) -> None:
        bad = self.rtnl.take_violations()
        if bad:
            kind = "route_" + ("outside_prefix" if "outside" in bad[0] else
                               "wrong_length" if "length" in bad[0] else
                               "bad_interface" if "interface" in bad[0] else "malformed")
            raise Violation(kind, "; ".join(bad[:4]))
        served = set(self.clients.clients)
        roaming = set(self.roaming.clients)
        if served != roaming:
            raise Violation("served_mismatch",
                            f"client service serves {len(served)}, roaming holds {len(roaming)}: "
                            f"{sorted(m.hex() for m in served ^ roaming)[:4]}")
        if served_only_stations:
            strays = [m for m in roaming if m not in self.stations]
            if strays:
                raise Violation("claim_without_station",
                                f"claimed {strays[0].hex()}, which hostapd never reported here")
        claims = set(getattr(self.roaming, "_claims", {}))
        if not claims <= roaming:
            raise Violation("state_leak_roaming_claims", f"{len(claims - roaming)} claims "
                            "for clients no longer here")
        ra_clients = set(self.clients.ra.clients)
        if not ra_clients <= served:
            raise Violation("state_leak_ra", f"{len(ra_clients - served)} RA schedules for "
                            "clients not served")
        # With a station source, hostapd's table bounds who is served (checked
        # above: served only if a station); without, packets must not grow it.
        if not self.station_source and len(served) > MAX_CLIENT_STATE:
            raise Violation("unbounded_clients", f"{len(served)} clients served")
        packet_clients = getattr(self.clients, "packet_clients", ())
        if len(packet_clients) > MAX_CLIENT_STATE:
            raise Violation("unbounded_packet_clients", f"{len(packet_clients)} remembered")
        offers = getattr(self.clients.dhcp, "_offers", None)
        if offers is not None and len(offers) > getattr(self.clients.dhcp, "max_offers", 1 << 30):
            raise Violation("unbounded_offers", f"{len(offers)} offers outstanding")
        policy = getattr(self.flooder, "data_policy", None)
        if policy is not None and len(self.store) > policy.max_data + 4 * MAX_CLIENT_STATE:
            raise Violation("store_over_bound", f"{len(self.store)} data, bound {policy.max_data}")
        errors = getattr(self.store, "listener_errors", 0)
        if errors != self.store_listener_errors:
            self.store_listener_errors = errors
            raise Violation("contained:store_listener_error",
                            "a store listener raised (roaming, leases, client service...)")
        errors = getattr(self.flooder, "listener_errors", 0)
        if errors != self.listener_errors:
            self.listener_errors = errors
            raise Violation("contained:flood_listener_error",
                            "a store listener raised while a flooded datum was merged")
        self.check_routes()

    def check_routes(self) -> None:
        """The routes in the (fake) kernel are those of the served clients'
        live, well-formed leases, on their interfaces: all of them, or, for a
        client with more than MAX_ROUTED_PER_KIND of a kind, that many."""
        allowed = {}  # every route that may be there -> its interface
        groups = []  # (the routes of one client's leases of one kind)
        index = {link.name: link.index for link in self.links}
        for mac, ifname in self.clients.clients.items():
            for kind in (IPV4_LEASE, IPV6_LEASE):
                group = set()
                for datum in self.store.leases_of(mac, kind):
                    if len(datum.key) != KEY_LENGTHS[kind]:
                        continue  # (a route for it is reported by the rtnl check)
                    if kind == IPV4_LEASE:
                        dst = (str(ipaddress.IPv4Address(datum.key[1:])), 32)
                    else:
                        dst = (str(ipaddress.IPv6Address(datum.key[1:] + bytes(8))), 64)
                    allowed[dst] = index[ifname]
                    group.add(dst)
                groups.append(group)
        have = {(dst, length): oif for (_family, dst, length), oif in self.rtnl.table.items()}
        extra = sorted(set(have) - set(allowed))
        moved = sorted(k for k in set(have) & set(allowed) if have[k] != allowed[k])
        missing = []
        for group in groups:
            routed = group & set(have)
            if len(routed) < min(len(group), MAX_ROUTED_PER_KIND):
                missing += sorted(group - routed)
            elif len(routed) > MAX_ROUTED_PER_KIND:
                extra += sorted(routed)
        if missing or extra or moved:
            raise Violation("routes_out_of_sync", f"missing {missing[:3]}, extra {extra[:3]}, "
                            f"wrong interface {moved[:3]}")

    def stats(self) -> dict:
        out = {}
        flooder = self.flooder
        for name in ("refused_data", "closes"):
            for reason, n in getattr(flooder, name, {}).items():
                if n:
                    out[f"flood_{name}:{reason}"] = n
        if getattr(flooder, "malformed", 0):
            out["flood_malformed"] = flooder.malformed
        for name, counter in (("dhcp_dropped", self.clients.dhcp.dropped),
                              ("dhcp_sent", self.clients.dhcp.sent),
                              ("ra_dropped", self.clients.ra.dropped),
                              ("ra_sent", self.clients.ra.sent)):
            for reason, n in counter.items():
                out[f"{name}:{reason}"] = n
        out["routes_added"] = self.clients.routes.status().get("added", 0)
        out["kicks"] = len(self.kicks)
        out["roams_in"] = self.roaming.roams_in
        out["roams_out"] = self.roaming.roams_out
        return out
