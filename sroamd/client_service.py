"""The client-facing services on the roaming interfaces: the asyncio adapter.

Owns the sockets and netlink around the sans-IO parts:

  DHCP    one filtered packet socket per roaming interface receives DHCP
          as whole frames (packet.DhcpReceiver), so the sender's MAC is
          known; one UDP socket per roaming interface stays bound to port
          67 (SO_BINDTODEVICE, so other DHCP servers on the AP keep their
          own interfaces, and unicast renewals get no ICMP port-unreachable)
          with a filter that drops all it would receive.  Replies go out as
          Ethernet frames on the packet socket, so a client without an
          address is reached at its MAC (unicast to yiaddr, or broadcast)
          with no ARP entry, and a relay (giaddr) is answered over UDP.
  RS/RA   a filtered packet socket receives RSs (the MAC comes from the
          frame); RAs, ARP replies and NAs leave on the send packet socket.
  routes  /32 and /64 host routes, protocol 44, for the served clients,
          reconciled with the kernel when a link changes (also down and up
          again with the same index: the kernel dropped its routes) and
          every RECONCILE_INTERVAL seconds (routes deleted by hand; in steps,
          the loop serving clients between them).  The route changes of a
          burst (leases of many served clients flooded in, a link back up)
          go to the kernel in batches, at the next turn of the loop.
  links   interfaces missing at start, gone, back with a new index, down.

Restarts (procd restarts sroamd on every `uci commit`) are invisible to
clients: stop() leaves the routes in the kernel and sends no RA with router
lifetime 0; start() adopts the proto-44 routes on our interfaces and keeps
them until synced() (the daemon calls it once the store is synced; and at
least ADOPT_HOLD seconds after start, so that hostapd's stations are claimed
again first); then the routes nobody wants go.  A stop for good (SIGUSR2
before SIGTERM: the init script's `stop`, not `restart`) withdraws the
routes and sends the final RAs.

A /64 lost to a conflict (a served client's IPv6 lease went to another
client) is replaced at once: a new /64 and an RA that gives it together with
the old prefix at lifetime 0.  An IPv4 address lost that way gets a NAK at
the client's next REQUEST for it (dhcp_server.py).

The roaming engine calls client_arrived(ifname, mac) and client_left(mac).
Lease changes come from the store (store.listeners): a served client's
lease that moves to another client loses its route, a new lease of a served
client gets one.  The daemon passes expired data to on_expired().

Who is served.  A client is claimed on hostapd's word, or, with no station
source, on the Ethernet source of its frames; never on anything inside a
packet (chaddr, client id...):

  with a station source (is_station given: the daemon wires it to the
      roaming engine's table of the stations hostapd authorized here), a
      DHCP message or RS is served only if its frame comes from a station
      on that interface; any other is dropped and counted
      (dhcp.dropped["not_station"], rs_dropped["not_station"]).  Packets
      never claim: hostapd does.
  without one (is_station None), a DHCP message (not a RELEASE or DECLINE)
      or RS from a client we do not serve yet means the client is on that
      link: on_client_seen(ifname, frame source) is called (the daemon wires
      it to the roaming engine, which claims the client and calls
      client_arrived); by default the client is simply served.

A DHCP message must name its frame's source as chaddr (else
dhcp.dropped["chaddr_mismatch"]).  A relayed one (giaddr set) is dropped
(dhcp.dropped["relayed"]): a relay on the client side could speak for any
MAC, and Wi-Fi clients are not relay agents.  (dhcp_server.py still answers
relays, as RFC 2131 does, for a caller that admits them.)

State per MAC learnt from packets alone is bounded: clients served without
a station source are "packet clients", at most
max_packet_clients of them (default: the IPv4 pool, at least 256 and at most
4096; 4096 without an IPv4 prefix).  When that many are known, a new MAC is
not served (dropped, counted as "too_many_clients") until one of them has
been silent for packet_idle seconds (default: the longer of the DHCP lease
time and the IPv6 lease time, one hour by default): then it is forgotten,
and a client served that way is given up (on_client_gone(ifname, mac), the
roaming engine's station_disassociated; by default client_left).  A client
staying longer must speak up: DHCP clients renew well within the lease time,
and a client using IPv6 alone should solicit again when its prefix nears its
end.  Offers to clients without a lease are bounded too (dhcp_server.py), so
random MACs cannot take the whole pool with DISCOVERs.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import Counter, OrderedDict
from typing import Callable

from sroamd.config import Config
from sroamd.dhcp_server import DhcpServer
from sroamd.leases import DECLINED, IPV6_LEASE_TIME, Leases, ipv6_prefix_text
from sroamd.links import Link, LinkTable
from sroamd.neighbours import announcements
from sroamd.loglimit import LogLimiter
from sroamd.packet import (DROP_ALL_FILTER, DhcpReceiver, FrameError, PacketSender, RsReceiver,
                           attach_filter, parse_dhcp_frame)
from sroamd.ra import REFRESH_INTERVAL, LinkInfo, RouterAdvertiser
from sroamd.routes import RouteManager
from sroamd.rtnl import Rtnl
from sroamd.store import IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS, Datum, Store
from sroamd.wire.dhcp import CLIENT_PORT, DECLINE, RELEASE, SERVER_PORT
from sroamd.wire.ip import ipv4_udp_frame

log = logging.getLogger("sroamd.clients")

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
MAX_BATCH = 64  # datagrams handled per wakeup before yielding to the loop
RECONCILE_INTERVAL = 5.0  # seconds between checks of our routes against the kernel
ADOPT_HOLD = 5.0  # seconds after start during which adopted routes are kept anyway
# Leases of each kind routed for one client.  A client holds one address and
# one /64, briefly two (a renumbering, a conflict); a peer that floods
# thousands naming one client here gets this many routes, not thousands
# (babeld redistributes them), and no work per datum beyond the cap.
MAX_ROUTED_PER_KIND = 4
MIN_PACKET_CLIENTS, MAX_PACKET_CLIENTS = 256, 4096  # bounds of the default cap
LIMITED_BROADCAST = b"\xff" * 4
NOT_CLAIMING = (RELEASE, DECLINE)  # DHCP messages of a client that is leaving


def default_max_packet_clients(config: Config) -> int:
    """The IPv4 pool, between MIN_PACKET_CLIENTS and MAX_PACKET_CLIENTS."""
    if config.ipv4_prefix is None:
        return MAX_PACKET_CLIENTS
    pool = config.ipv4_prefix.num_addresses - 3
    return max(MIN_PACKET_CLIENTS, min(MAX_PACKET_CLIENTS, pool))


def _route_of(key: bytes) -> tuple[bytes, int]:
    if key[0] == IPV4_LEASE:
        return key[1:], 32
    return key[1:] + bytes(8), 64


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


async def _next_turn() -> None:
    """Let the event loop run what is ready (a pause of a reconcile in steps)."""
    await asyncio.sleep(0)


class ClientService:
    def __init__(self, store: Store, config: Config, node_id: bytes, *,
                 on_client_seen: Callable[[str, bytes], None] | None = None,
                 is_station: Callable[[str, bytes], bool] | None = None,
                 on_client_gone: Callable[[str, bytes], None] | None = None,
                 max_packet_clients: int | None = None,
                 packet_idle: float | None = None,
                 leases: Leases | None = None,
                 refresh_interval: float = REFRESH_INTERVAL,
                 reconcile_interval: float = RECONCILE_INTERVAL,
                 adopt_hold: float = ADOPT_HOLD):
        self.store = store
        self.config = config
        self.node_id = node_id
        self.on_client_seen = on_client_seen
        self.is_station = is_station  # None: no station source
        self.on_client_gone = on_client_gone
        self.max_packet_clients = (max_packet_clients if max_packet_clients is not None
                                   else default_max_packet_clients(config))
        self.packet_idle = (packet_idle if packet_idle is not None
                            else max(config.lease_time, IPV6_LEASE_TIME))
        # MACs served or leased on the word of packets alone -> when last
        # heard from, the longest silent first.
        self.packet_clients: OrderedDict[bytes, float] = OrderedDict()
        self.packet_clients_expired = 0
        self.rs_dropped: Counter[str] = Counter()
        self._refused_log = LogLimiter(log)
        self._sweep_timer: asyncio.TimerHandle | None = None
        self.leases = leases or Leases(store, config)
        self.dhcp = DhcpServer(config, self.leases)
        self.ra = RouterAdvertiser(config, self.leases, refresh_interval)
        self.gateway = config.gateway.packed if config.gateway else None
        self.clients: dict[bytes, str] = {}  # served MAC -> interface
        self.routed: dict[bytes, set[bytes]] = {}  # MAC -> lease keys routed
        # Clients whose routes are to be synced at the next turn (ordered set).
        self._route_syncs: dict[bytes, None] = {}
        # ... and at the end of the batch of DHCP messages being handled (None: none is).
        self._batch_syncs: dict[bytes, None] | None = None
        self.routes_capped = 0  # leases not routed: their client had MAX_ROUTED_PER_KIND
        self.send_errors: Counter[str] = Counter()
        self.announced = 0
        self.routes: RouteManager | None = None
        self.links: LinkTable | None = None
        self.sender: PacketSender | None = None
        self.rs: RsReceiver | None = None
        self.dhcp_sockets: dict[str, socket.socket] = {}
        self.dhcp_receivers: dict[str, DhcpReceiver] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.reconcile_interval = reconcile_interval
        self.adopt_hold = adopt_hold
        self._reconcile_timer: asyncio.TimerHandle | None = None
        self._reconcile_task: asyncio.Task | None = None
        self._release_timer: asyncio.TimerHandle | None = None
        self._started_at = 0.0
        self.is_synced = False
        self.withdraw_at_stop = False  # a stop for good (SIGUSR2): routes go, final RAs
        # Served clients whose /64 went to another client: MAC -> lost /64s
        # still to be withdrawn (an RA is sent soon, with the new /64).
        self._renumber: dict[bytes, list[bytes]] = {}
        self._renumber_scheduled = False
        self.renumbered = 0

    # -- life cycle --------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        rtnl = Rtnl(strict=True)
        # The proto-44 routes already there (we restarted) are kept until synced().
        self.routes = RouteManager(self.config.route_metric, rtnl, hold=not self.is_synced,
                                   retract_proto=self.config.retract_proto,
                                   later=self._loop.call_later)
        self.sender = PacketSender()
        self.rs = RsReceiver()
        self._loop.add_reader(self.rs.fileno(), self._on_rs)
        self.links = LinkTable(self.config.interfaces, rtnl, self._on_link_change)
        self.links.start(self._loop)
        self._reconcile()
        self.store.listeners.append(self.on_store_change)
        self._arm_reconcile()
        if self.is_synced:
            self._schedule_release()

    def synced(self) -> None:
        """The store is synced (the daemon says so): new addresses may be
        handed out, and adopted routes nobody wants go (ADOPT_HOLD after
        start at the earliest)."""
        self.leases.allocation_allowed = True
        if self.is_synced:
            return
        self.is_synced = True
        if self._loop is not None:
            self._schedule_release()
        if self._renumber:
            self._schedule_renumber()

    def stop_for_good(self) -> None:
        """The next stop is not a restart (SIGUSR2, sent by the init script's
        `stop`): withdraw the routes and send final RAs then."""
        if not self.withdraw_at_stop:
            log.warning("stopping for good: routes will be withdrawn at exit")
        self.withdraw_at_stop = True

    async def stop(self) -> None:
        """Sockets closed.  The routes stay in the kernel and no RA says the
        router is gone (a restart must not disturb the clients), unless
        stop_for_good() was called: then final RAs (router lifetime 0) and no
        proto-44 route left on our interfaces."""
        if self._loop is None:
            return
        if self.on_store_change in self.store.listeners:
            self.store.listeners.remove(self.on_store_change)
        for timer in (self._timer, self._reconcile_timer, self._release_timer,
                      self._sweep_timer):
            if timer is not None:
                timer.cancel()
        self._reconcile_timer = self._release_timer = self._sweep_timer = None
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
            self._reconcile_task = None
        self.routes.later = None  # (no loop to run them after this)
        if self.withdraw_at_stop:
            infos = [info for info in map(self._link_info, self.config.interfaces) if info]
            for ifname, frame in self.ra.final(infos):
                self._send(ifname, frame)
            self.routes.remove_all({link.index for link in self.links.links.values()})
        else:
            log.info("leaving %d routes in the kernel for the next start",
                     self.routes.status()["installed"])
        self.routes.drop_shadows()
        self.links.stop(self._loop)
        self._loop.remove_reader(self.rs.fileno())
        for name in list(self.dhcp_sockets):
            self._close_dhcp_socket(name)
        self.rs.close()
        self.sender.close()
        self.routes.close()
        self._loop = None

    # -- what the roaming engine calls -------------------------------------

    def client_arrived(self, ifname: str, mac: bytes) -> None:
        """The client is associated here: routes, ARP + NA at once, RAs.

        In that order, and the RA only at the next turn of the event loop:
        a client that roamed keeps its addresses, so its traffic flows again
        once the routes are in (babeld hears of them) and it knows our MAC
        for the gateway; the RA (built anew, and its lease extension
        flooded: ~0.5 ms) restores nothing and would only delay the rest
        of the station event."""
        self.clients[mac] = ifname
        self._sync_routes(mac)
        link = self.links.get(ifname) if self.links else None
        if link is not None:
            for frame in announcements(link.mac, self._server_ip(link), link.link_local, mac):
                self._send(ifname, frame)
            self.announced += 1
        self.ra.track(ifname, mac)
        if self._loop is None:
            self._arrival_ra(ifname, mac)
        else:
            self._loop.call_soon(self._arrival_ra, ifname, mac)

    def _arrival_ra(self, ifname: str, mac: bytes) -> None:
        if self.clients.get(mac) != ifname:
            return  # gone (or moved) meanwhile
        frame = self.ra.unsolicited(mac, self._link_info(ifname))
        if frame is not None:
            self._send(ifname, frame)
        self._arm_timer()

    def client_left(self, mac: bytes) -> None:
        """The client is gone from here: its routes and RAs stop."""
        if self.is_station is None:
            self.packet_clients.pop(mac, None)  # (its place is free)
        if self.clients.pop(mac, None) is None:
            return
        self._sync_routes(mac)
        self.ra.untrack(mac)

    # -- store changes -----------------------------------------------------

    def on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        if datum.kind not in (IPV4_LEASE, IPV6_LEASE) or len(datum.key) != KEY_LENGTHS[datum.kind]:
            return
        if old is not None and old != datum.value and old in self.clients:
            if datum.key in self.routed.get(old, ()):
                self._sync_routes_soon(old)  # a routed lease left that client
            if datum.kind == IPV6_LEASE and len(datum.value) == 6 and datum.value != DECLINED:
                # Another client has the /64 now (a conflict lost): a new one at once.
                self._renumber.setdefault(old, []).append(datum.key[1:])
                self._schedule_renumber()
        if datum.value in self.clients:
            self._route_lease(datum)

    def _route_lease(self, datum: Datum) -> None:
        """A lease that names a client served here: routed if it is not yet,
        within MAX_ROUTED_PER_KIND.  Only a change to the routed set costs a
        look at all the client's leases (a burst of them is O(1) each)."""
        have = self.routed.get(datum.value, ())
        if datum.key in have:
            return
        if sum(1 for key in have if key[0] == datum.kind) >= MAX_ROUTED_PER_KIND:
            self.routes_capped += 1
            return
        self._sync_routes_soon(datum.value)

    def _schedule_renumber(self) -> None:
        # Not from inside the store's listener call: the new lease is a store
        # change of its own.
        if self._loop is None:
            self._renumber_now()
        elif not self._renumber_scheduled:
            self._renumber_scheduled = True
            self._loop.call_soon(self._renumber_now)

    def _renumber_now(self) -> None:
        """Clients that lost their /64: a new one, and an RA with the old at
        lifetime 0 (while allocation is not allowed: the old one withdrawn
        now, the new one after synced())."""
        self._renumber_scheduled = False
        pending, self._renumber = self._renumber, {}
        for mac, lost in pending.items():
            ifname = self.clients.get(mac)
            if ifname is None:
                continue
            datum = self.leases.ipv6_lease(mac)  # (the one it may have got meanwhile)
            if datum is None and not self.leases.allocation_allowed:
                self._renumber[mac] = []  # again once synced
            if not lost and datum is None:
                continue
            frame = self.ra.renumbering(datum, self._link_info(ifname), mac, lost)
            if frame is not None and self._send(ifname, frame):
                self.renumbered += 1
                log.warning("%s lost its /64 to another client: %s", _mac(mac),
                            "given " + ipv6_prefix_text(datum.key[1:]) if datum is not None
                            else "no new /64 yet")
        self._arm_timer()

    def on_expired(self, data: list[Datum]) -> None:
        """Data that just expired (Store.expire()): routes of lapsed leases go."""
        for datum in data:
            if datum.key in self.routed.get(datum.value, ()):
                self._sync_routes_soon(datum.value)

    # -- routes ------------------------------------------------------------

    def _sync_routes(self, mac: bytes) -> None:
        """Make the client's routes those of its live leases, on its
        interface (at the end of the batch of DHCP messages being handled,
        if one is)."""
        if self._batch_syncs is not None:
            self._batch_syncs[mac] = None
            return
        self._sync_routes_of([mac])

    def _sync_routes_of(self, macs) -> None:
        """_sync_routes of each client, the route changes of all of them
        batched (RouteManager.remove_many, add_many: one netlink datagram
        for up to rtnl.BATCH changes)."""
        if self.routes is None:
            return
        if self._route_syncs:
            # The syncs deferred to the next turn are made now, in this batch
            # (whose removals go before its additions): a lease that left a
            # client for another one arriving now was removed after the new
            # holder's route was added, taking it away for good.
            pending, self._route_syncs = self._route_syncs, {}
            macs = [*pending, *(mac for mac in macs if mac not in pending)]
        removes, adds = [], []
        for mac in macs:
            have = self.routed.get(mac, set())
            ifname = self.clients.get(mac)
            link = self.links.get(ifname) if ifname is not None else None
            wanted = set()
            if link is not None and link.up:
                wanted = {d.key for kind in (IPV4_LEASE, IPV6_LEASE)
                          for d in self.store.leases_of(mac, kind)[:MAX_ROUTED_PER_KIND]}
            removes += [_route_of(key) for key in have - wanted]
            # (one the kernel refuses now stays wanted: reconciles try again)
            adds += [(link.index, *_route_of(key), link.name) for key in wanted]
            if wanted:
                self.routed[mac] = wanted
            else:
                self.routed.pop(mac, None)
        if removes:
            self.routes.remove_many(removes)
        if adds:
            self.routes.add_many(adds)

    def _sync_routes_soon(self, mac: bytes) -> None:
        """_sync_routes at the next turn of the event loop, with every other
        client's whose leases changed meanwhile: a flooded dump or burst
        naming many clients served here is one batch of route changes."""
        if self._loop is None:
            self._sync_routes(mac)
            return
        if not self._route_syncs:
            self._loop.call_soon(self._sync_routes_pending)
        self._route_syncs[mac] = None

    def _sync_routes_pending(self) -> None:
        macs, self._route_syncs = list(self._route_syncs), {}
        if self._loop is not None:  # (not stopped meanwhile)
            self._sync_routes_of(macs)

    def _reconcile(self) -> None:
        """Our routes against the kernel's (one dump, at once: a link
        changed, or start): missing ones back, unwanted ones gone (unless
        still held after a restart).  A reconcile in steps under way is
        superseded."""
        if self.routes is None or self.links is None:
            return
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
            self._reconcile_task = None
        self.routes.reconcile(self._up_indexes())

    def _up_indexes(self) -> set[int]:
        return {link.index for link in self.links.links.values() if link.up}

    def _arm_reconcile(self) -> None:
        if self._loop is not None and self.reconcile_interval > 0:
            self._reconcile_timer = self._loop.call_later(self.reconcile_interval,
                                                          self._on_reconcile_timer)

    def _on_reconcile_timer(self) -> None:
        """The periodic reconcile, in steps (RouteManager.reconcile_in_steps:
        the event loop serves clients between the parts of the dump); the
        next is armed when it is done."""
        self._reconcile_timer = None
        if self._reconcile_task is not None or self.routes is None or self.links is None:
            self._arm_reconcile()  # (one under way, e.g. the release's)
            return
        self._reconcile_task = self._loop.create_task(self._reconcile_in_steps())

    async def _reconcile_in_steps(self) -> None:
        task = asyncio.current_task()
        try:
            await self.routes.reconcile_in_steps(self._up_indexes(), _next_turn)
        except asyncio.CancelledError:
            raise
        except Exception:  # never stop checking
            log.exception("route reconcile failed")
        finally:
            if self._reconcile_task is task:
                self._reconcile_task = None
                if self._reconcile_timer is None:
                    self._arm_reconcile()

    def _schedule_release(self) -> None:
        delay = self._started_at + self.adopt_hold - self._loop.time()
        if self._release_timer is not None:
            self._release_timer.cancel()
        self._release_timer = self._loop.call_later(max(0.0, delay), self._release_routes)

    def _release_routes(self) -> None:
        """The hold is over: the adopted routes nobody wants go, at the next
        reconcile, made now (in steps; the periodic one restarts after it)."""
        self._release_timer = None
        if self.routes is not None and self.routes.holding:
            self.routes.release()
            if self._reconcile_timer is not None:
                self._reconcile_timer.cancel()
            self._on_reconcile_timer()

    # -- links -------------------------------------------------------------

    def _on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        if old is not None and (new is None or new.index != old.index):
            self.routes.forget_interface(old.index)
            self._close_dhcp_socket(name)
        elif old is not None and (not new.up or not old.up or old == new):
            # Down, or up again (maybe both since the last look): the kernel
            # dropped the interface's routes.
            self.routes.forget_interface(old.index)
        if new is not None:
            self.leases.reserve_ipv4(new.ipv4)
            self.leases.reserve_ipv6(new.ipv6)
            if name not in self.dhcp_sockets:
                self._open_dhcp_socket(name)
            if old is None or old.index != new.index:
                try:
                    self.rs.join_all_routers(new.index)
                except OSError as e:
                    log.error("%s: cannot receive router solicitations: %s", name, e)
        self._sync_routes_of([mac for mac, ifname in self.clients.items() if ifname == name])
        self._reconcile()

    def _open_dhcp_socket(self, name: str) -> None:
        """The UDP socket on port 67 (receives nothing: its filter drops all;
        sends to relays) and the packet socket DHCP is received on."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                             | socket.SOCK_CLOEXEC)
        try:
            attach_filter(sock, DROP_ALL_FILTER)  # before bind: nothing ever queues
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, name.encode())
            sock.bind(("0.0.0.0", SERVER_PORT))
            receiver = DhcpReceiver(name)
        except OSError as e:
            sock.close()
            log.error("%s: cannot listen for DHCP on port %d: %s", name, SERVER_PORT, e)
            return
        self.dhcp_sockets[name] = sock
        self.dhcp_receivers[name] = receiver
        self._loop.add_reader(receiver.fileno(), self._on_dhcp, name, receiver)

    def _close_dhcp_socket(self, name: str) -> None:
        sock = self.dhcp_sockets.pop(name, None)
        if sock is not None:
            sock.close()
        receiver = self.dhcp_receivers.pop(name, None)
        if receiver is not None:
            self._loop.remove_reader(receiver.fileno())
            receiver.close()

    def _server_ip(self, link: Link) -> bytes | None:
        if self.gateway is not None:
            return self.gateway
        return link.ipv4[0] if link.ipv4 else None

    def _link_info(self, ifname: str) -> LinkInfo | None:
        link = self.links.get(ifname) if self.links else None
        if link is None:
            return None
        return LinkInfo(link.name, link.mac, link.link_local)

    # -- packets in --------------------------------------------------------

    def _on_dhcp(self, name: str, receiver: DhcpReceiver) -> None:
        # The route changes of the clients claimed by this batch of messages
        # go to the kernel together at its end (a netlink datagram for all,
        # not one each): a DHCP client uses its address after the ACK only.
        self._batch_syncs = {}
        try:
            for _ in range(MAX_BATCH):
                frame = receiver.receive()
                if frame is None:
                    return
                try:
                    self.dhcp_frame(name, frame)
                except Exception:  # one bad message never stops the service
                    self.dhcp.count_drop("internal_error")
                    self._refused_log.log(logging.ERROR, "%s: handling a DHCP message failed",
                                          name, exc_info=True)
        finally:
            macs, self._batch_syncs = self._batch_syncs, None
            if macs:
                self._sync_routes_of(list(macs))

    def dhcp_frame(self, name: str, frame: bytes) -> None:
        """One frame from the DHCP packet socket of interface name."""
        link = self.links.get(name)
        if link is None:
            return
        try:
            f = parse_dhcp_frame(frame)
        except FrameError as e:
            self.dhcp.count_drop(e.args[0])
            return
        if f.eth_src[0] & 1:
            self.dhcp.count_drop("multicast_source")
            return
        server_ip = self._server_ip(link)
        if f.ip_dst != LIMITED_BROADCAST and f.ip_dst != server_ip and f.ip_dst not in link.ipv4:
            self.dhcp.count_drop("not_for_us")  # (the kernel forwards it, if anything)
            return
        outcome = self.dhcp.handle(f.payload, server_ip, f.eth_src,
                                   lambda mac, relayed, kind:
                                   self._admit_dhcp(name, f.eth_src, mac, relayed, kind))
        if outcome.mac is not None and outcome.dropped is None:
            if outcome.relayed:
                self._heard(outcome.mac)
            elif self.is_station is None and outcome.kind not in NOT_CLAIMING:
                self._heard(outcome.mac)
                self._seen(name, outcome.mac)
        reply = outcome.reply
        if reply is None:
            return
        if reply.mac_dst is None:  # to a relay, through the IP stack
            sock = self.dhcp_sockets.get(name)
            try:
                if sock is None:
                    raise OSError(errno.ENOTCONN, "no UDP socket on port 67")
                sock.sendto(reply.payload, (socket.inet_ntoa(reply.ip_dst), SERVER_PORT))
            except OSError as e:
                self._send_failed(name, e)
            return
        self._send(name, ipv4_udp_frame(link.mac, reply.mac_dst, server_ip,
                                        reply.ip_dst, SERVER_PORT, reply.port or CLIENT_PORT,
                                        reply.payload))

    def _on_rs(self) -> None:
        for ifname, data in self.rs.receive():
            if ifname not in self.dhcp_sockets and self.links.get(ifname) is None:
                continue  # not a roaming interface
            try:
                self.rs_frame(ifname, data)
            except Exception:  # one bad message never stops the service
                self.rs_dropped["internal_error"] += 1
                self._refused_log.log(logging.ERROR, "%s: handling an RS failed", ifname,
                                      exc_info=True)

    def rs_frame(self, ifname: str, data: bytes) -> None:
        """One Router Solicitation frame received on ifname."""
        info = self._link_info(ifname)
        if info is None:
            return
        source = data[6:12]
        if len(source) == 6:
            reason = self._admit(ifname, source, source, False)
            if reason is not None:
                self.rs_dropped[reason] += 1
                return
        outcome = self.ra.handle_rs(data, info)
        if outcome.frame is None:
            return
        if self.is_station is None:
            self._heard(outcome.mac)
            self._seen(ifname, outcome.mac)
        self._send(ifname, outcome.frame)
        self._arm_timer()

    # -- who is served -----------------------------------------------------

    def _admit_dhcp(self, ifname: str, source: bytes, mac: bytes, relayed: bool,
                    kind: int) -> str | None:
        if relayed:
            # A relay agent on a roaming interface would speak for any MAC
            # (chaddr is not checked against a relayed frame's source): a
            # station could RELEASE another client's lease domain-wide, or
            # take the whole pool.  Wi-Fi clients are never relays.
            return "relayed"
        if self.is_station is None and kind in NOT_CLAIMING:
            return None  # acts only on leases the sender holds; creates nothing
        return self._admit(ifname, source, mac, relayed)

    def _admit(self, ifname: str, source: bytes, mac: bytes, relayed: bool) -> str | None:
        """Whether a packet from frame source `source` for client `mac` is
        served: None, or the reason it is not."""
        if self.is_station is not None:
            if not self.is_station(ifname, source):
                self._refused_log.log(logging.INFO, "%s: %s is not a station here: not served",
                                      ifname, _mac(source))
                return "not_station"
            if not relayed:
                return None
        elif not relayed and self.clients.get(mac) == ifname:
            return None
        return self._packet_room(mac)

    def _packet_room(self, mac: bytes) -> str | None:
        """None if mac is a packet client, or may become one."""
        if mac in self.packet_clients or len(self.packet_clients) < self.max_packet_clients:
            return None
        self._sweep()
        if len(self.packet_clients) < self.max_packet_clients:
            return None
        self._refused_log.log(logging.WARNING, "%d clients served from packets alone: "
                              "not serving %s", len(self.packet_clients), _mac(mac))
        return "too_many_clients"

    def _heard(self, mac: bytes) -> None:
        """A packet client spoke (and was served)."""
        self.packet_clients[mac] = self.store.clock()
        self.packet_clients.move_to_end(mac)
        if self._sweep_timer is None and self._loop is not None:
            self._sweep_timer = self._loop.call_later(min(60.0, self.packet_idle / 4),
                                                      self._on_sweep_timer)

    def _sweep(self) -> None:
        """Forget the packet clients silent for packet_idle seconds; give up
        those served on that word alone."""
        limit = self.store.clock() - self.packet_idle
        while self.packet_clients:
            mac, heard = next(iter(self.packet_clients.items()))
            if heard > limit:
                break
            del self.packet_clients[mac]
            self.packet_clients_expired += 1
            ifname = self.clients.get(mac)
            if self.is_station is None and ifname is not None:
                log.info("%s: %s silent for %d s: no longer served", ifname, _mac(mac),
                         self.packet_idle)
                if self.on_client_gone is not None:
                    self.on_client_gone(ifname, mac)
                else:
                    self.client_left(mac)

    def _on_sweep_timer(self) -> None:
        self._sweep_timer = None
        try:
            self._sweep()
        except Exception:
            log.exception("forgetting silent clients failed")
        if self.packet_clients and self._loop is not None:
            self._sweep_timer = self._loop.call_later(min(60.0, self.packet_idle / 4),
                                                      self._on_sweep_timer)

    def _seen(self, ifname: str, mac: bytes) -> None:
        """A client talked to us on ifname: it is here."""
        if self.clients.get(mac) == ifname:
            return
        if self.on_client_seen is not None:
            self.on_client_seen(ifname, mac)
        else:
            self.client_arrived(ifname, mac)

    # -- packets out -------------------------------------------------------

    def _send(self, ifname: str, frame: bytes) -> bool:
        try:
            self.sender.send(ifname, frame)
            return True
        except OSError as e:
            self._send_failed(ifname, e)
            return False

    def _send_failed(self, ifname: str, error: OSError) -> None:
        name = errno.errorcode.get(error.errno, str(error.errno))
        self.send_errors[name] += 1
        log.warning("%s: cannot send: %s", ifname, error)

    # -- RA refresh timer --------------------------------------------------

    def _arm_timer(self) -> None:
        if self._loop is None:
            return
        deadline = self.ra.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.store.clock())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for ifname, frame in self.ra.refresh_due(self._link_info):
            self._send(ifname, frame)
        self._arm_timer()

    # -- status ------------------------------------------------------------

    def status(self) -> dict:
        return {
            "clients": len(self.clients),
            "interfaces": {name: (self.links.get(name).index if self.links
                                  and self.links.get(name) else None)
                           for name in self.config.interfaces},
            "dhcp": self.dhcp.status(),
            "ra": self.ra.status(),
            "routes": self.routes.status() if self.routes else {},
            "leases": self.leases.status(),
            "synced": self.is_synced,
            "renumbered": self.renumbered,
            "routes_capped": self.routes_capped,
            "announcements": self.announced,
            "send_errors": dict(self.send_errors),
            # Who is served (see the module docstring); DHCP drops are in dhcp.dropped.
            "station_source": self.is_station is not None,
            "rs_dropped": dict(self.rs_dropped),
            "packet_clients": len(self.packet_clients),
            "max_packet_clients": self.max_packet_clients,
            "packet_clients_expired": self.packet_clients_expired,
        }
