"""The composition root: builds the parts from the Config and runs them."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import sys
import time

from sroamd import collector, snapshot, ubus_object
from sroamd.config import Config
from sroamd.dump import format_dump, format_mac
from sroamd.flood import Flooder
from sroamd.identity import load_node_id
from sroamd.roam_history import RoamHistory
from sroamd.roaming import (ASSOCIATION_REFRESH, Action, Kick, Roamed, Roaming, Serve,
                            Unserve)
from sroamd.startup_sync import StartupSync
from sroamd.stations import StationEvent
from sroamd.store import Store

log = logging.getLogger("sroamd")

EXPIRY_TICK = 1.0  # seconds between expiry sweeps (a heap peek when idle)
SYNC_TICK = 0.25  # seconds between checks of the startup sync's grace period


def setup_logging(debug: int) -> None:
    # procd sends stderr to syslog (logread); no timestamps of our own there.
    level = logging.WARNING if debug <= 0 else logging.INFO if debug == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sroamd: %(levelname)s: %(message)s"))
    root = logging.getLogger("sroamd")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def make_station_source(config: Config, ubus):
    """The source of station events the configuration asks for (None: none)."""
    choice = config.station_source
    if choice == "none" or not config.interfaces:
        return None
    if choice == "auto":
        choice = "ubus" if ubus is not None else "hostapd"
        log.info("station source: %s (auto)", choice)
    if choice == "ubus":
        from sroamd.stations_ubus import UbusStationSource
        return UbusStationSource(config.interfaces, socket_path=config.ubus_socket,
                                 client=ubus)
    from sroamd.stations_hostapd import HostapdStationSource
    return HostapdStationSource(config.interfaces, ctrl_dir=config.hostapd_dir)


def make_ubus_client(config: Config):
    """One ubus connection for everything, when ubus is there (or asked for)."""
    if config.station_source != "ubus" and not os.path.exists(config.ubus_socket):
        return None
    from sroamd.ubus_client import UbusClient
    return UbusClient(config.ubus_socket)


class Daemon:
    def __init__(self, config: Config):
        self.config = config
        self.node_id = load_node_id(config)
        self.started = time.monotonic()
        self.store = Store()
        # What the store held at the last clean stop (see snapshot.py).
        self.snapshot_path = snapshot.snapshot_path(config.state_dir)
        kept = snapshot.load(self.store, self.snapshot_path)
        if kept:
            log.warning("%d data kept from before the restart", kept)
        self.sync = StartupSync(time.monotonic, config.sync_grace,
                                has_peers=bool(config.peers) or config.port is not None)
        self.flooder = Flooder(self.store, config.port, config.peers, config=config)
        self.roaming = Roaming(self.store, self.node_id, self._act,
                               syncing=not self.sync.synced)
        self.ubus = make_ubus_client(config)
        self.stations = make_station_source(config, self.ubus)
        self.clients = None  # the DHCP/RA/routes service, when interfaces are served
        if config.interfaces:
            from sroamd.client_service import ClientService
            # With a station source, only hostapd's word claims a client, and
            # only its authorized stations here are served.  Without one, a
            # DHCP message or RS means its frame's sender is here: claimed,
            # and given up when silent (bounded, see client_service.py).
            roaming = self.roaming
            self.clients = ClientService(
                self.store, config, self.node_id,
                on_client_seen=roaming.station_associated,
                on_client_gone=roaming.station_disassociated,
                is_station=(None if self.stations is None else
                            lambda ifname, mac: roaming.clients.get(mac) == ifname))
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.assoc_ms: collections.deque[float] = collections.deque(maxlen=100)
        self.roams = RoamHistory()  # the last roams, for `ubus call sroamd roams`
        if self.clients is not None:
            self.clients.leases.allocation_allowed = self.sync.synced
        # The flooding layer says when a peer's whole dump is in.
        self.flooder.on_synced.append(self._dump_complete)
        self.flooder.mark_store_synced(self.sync.synced)

    # -- sync before serving (startup_sync.py) -------------------------------

    def _dump_complete(self, peer: object = "a peer") -> None:
        if self.sync.dump_complete(str(peer)):
            self._synced()

    def _synced(self) -> None:
        log.warning("store synced (%s) after %.1f s: handing out addresses",
                    self.sync.how, self.sync.status()["seconds"])
        self.roaming.synced()
        self.flooder.mark_store_synced()
        if self.clients is not None:
            self.clients.synced()  # new addresses; adopted routes checked

    async def _sync_loop(self) -> None:
        while not self.sync.synced:
            await asyncio.sleep(SYNC_TICK)
            # (a peer that restarted too, unsynced, is nobody to sync from)
            if self.sync.tick(self.flooder.sessions_with_synced_peers()):
                self._synced()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error: %r", task.exception(), exc_info=task.exception())

    def on_station_event(self, event: StationEvent) -> None:
        start = time.perf_counter()
        if event.associated:
            self.roaming.station_associated(event.ifname, event.mac, listed=event.listed)
        else:
            self.roaming.station_disassociated(event.ifname, event.mac)
        # The time from the event to routes installed and ARP/NA sent (all
        # done synchronously above): what a roam costs on our side.
        elapsed_ms = (time.perf_counter() - start) * 1000
        if event.associated:
            self.assoc_ms.append(elapsed_ms)
        log.info("%s: station %s %s, handled in %.2f ms", event.ifname, format_mac(event.mac),
                 "associated" if event.associated else "disassociated", elapsed_ms)

    def _act(self, action: Action) -> None:
        """Carries out what the roaming engine decided."""
        if isinstance(action, Serve):
            if self.clients is not None:
                self.clients.client_arrived(action.ifname, action.mac)
        elif isinstance(action, Unserve):
            if self.clients is not None:
                self.clients.client_left(action.mac)
        elif isinstance(action, Kick):
            log.info("%s: station %s roamed to another node, kicking it",
                     action.ifname, format_mac(action.mac))
            if self.stations is not None:
                self._spawn(self._kick(action))
        elif isinstance(action, Roamed):
            log.info("client %s %s", format_mac(action.mac),
                     f"arrived on {action.ifname}" if action.arrived
                     else f"left for node {action.other_node.hex()}")
            self.roams.record(action.mac, action.arrived, action.ifname, action.other_node)
            if self.ubus is not None and self.ubus.connected:
                self._spawn(self.ubus.send_event(ubus_object.ROAM_EVENT,
                                                 ubus_object.roam_event(action)))

    def _stop_for_good(self) -> None:
        if self.clients is not None:
            self.clients.stop_for_good()

    async def _kick(self, action: Kick) -> None:
        try:
            await self.stations.kick(action.ifname, action.mac)
        except Exception as e:  # a station already gone is not our failure
            log.warning("%s: could not kick %s: %s", action.ifname, format_mac(action.mac), e)

    async def _run_ubus(self) -> None:
        await self.ubus.connect()  # waits for ubusd; reconnects by itself later
        await ubus_object.publish(self.ubus, self)
        log.info("ubus: object %s published", ubus_object.OBJECT_PATH)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(ASSOCIATION_REFRESH)
            self.roaming.refresh()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signo, self._stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.dump)
        # The init script's `stop` (not a restart) sends SIGUSR2 first: the
        # routes are withdrawn at exit (see ClientService.stop).
        loop.add_signal_handler(signal.SIGUSR2, self._stop_for_good)
        log.warning("starting, node id %s", self.node_id.hex())
        if not self.sync.synced:
            log.warning("no new addresses until the store is synced from a peer "
                        "(at most %g s if no peer is reachable)", self.config.sync_grace)
        await self.flooder.start()
        if self.clients is not None:
            await self.clients.start()
            if self.sync.synced:
                self.clients.synced()
        # Started: full collections from now on at fixed times, not in the
        # middle of a burst of new clients (collector.py).
        collector.freeze_startup()
        self._spawn(collector.collect_periodically())
        self._spawn(self._sync_loop())
        self._spawn(self._expire_loop())
        self._spawn(self._refresh_loop())
        if self.ubus is not None:
            self._spawn(self._run_ubus())
        if self.stations is not None:
            self._spawn(self.stations.run(self.on_station_event))
        try:
            await self._stopping.wait()
        finally:
            log.warning("shutting down")
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.ubus is not None:
                await self.ubus.close()
            if self.clients is not None:
                await self.clients.stop()
            await self.flooder.stop()
            if self.clients is None or not self.clients.withdraw_at_stop:
                snapshot.save(self.store, self.snapshot_path)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK)
            expired = self.store.expire()
            if expired and self.clients is not None:
                self.clients.on_expired(expired)

    def dump(self) -> None:
        """SIGUSR1: the store, clients and peers to the log, as upstream does."""
        for line in format_dump(self):
            log.warning("%s", line)


def run(config: Config) -> int:
    setup_logging(config.debug)
    try:
        asyncio.run(Daemon(config).run())
    except OSError as e:
        log.error("%s", e)
        return 1
    return 0
