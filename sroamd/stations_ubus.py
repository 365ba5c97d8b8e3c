"""Station source: hostapd over ubus (OpenWrt).

hostapd publishes ``hostapd.<ifname>`` and tells its subscribers about
stations with notifications.  What each one means, from OpenWrt's hostapd
ubus support (package/network/services/hostapd: src/src/ap/ubus.c and the
calls that patches/600-ubus_support.patch adds to hostapd):

  assoc            the association *request* (handle_assoc, hostapd_notif_assoc),
                   sent before hostapd answers it and before WPA/802.1X; another
                   subscriber (usteer, DAWN) may still refuse it, and anyone in
                   radio range can send one with any MAC.  Never a claim.
  sta-authorized   ap_sta_set_authorized_event(authorized): the station is in
                   (AP-STA-CONNECTED).  The claim: associated=True.
  disassoc         the station's Disassociation frame (handle_disassoc), and
                   ap_sta_set_authorized_event(not authorized), i.e.
                   AP-STA-DISCONNECTED, whatever the cause (kick, timeout...).
  deauth           the station's Deauthentication frame (handle_deauth).
  local-deauth     hostapd deauthenticated it on a local request (ap_handle_timer).
  inactive-deauth  hostapd dropped it for inactivity (ap_handle_timer).
                   Each of these four gives a station we reported up:
                   associated=False.
  key-mismatch     a failed 4-way handshake or SAE confirm: the station is not
                   in; we stop waiting for it (see below).

An older hostapd never sends ``sta-authorized``.  Until an interface's
hostapd has sent one, each ``assoc`` puts the station on a pending list, and
``get_clients`` is polled for it (one call per interface for all pending
stations, after 0.25 s, then twice as late each time, at most 8 s apart, for
at most 30 s): listed ``authorized`` -> associated=True; no longer listed, or
still not authorized after 30 s -> forgotten.  The list holds at most
MAX_PENDING stations per interface (association requests with random MACs
cannot grow it; past it, further requests are counted and not followed).

``get_clients`` says who is there: each client with ``"authorized": true``
counts, others do not.  Both of OpenWrt's object types carry the flag: the
``hostapd_bss`` object lists auth/assoc/authorized/... per client, the
``hostapd_wired`` one (hostapd with driver=wired) lists only
``authorized``.  A client entry without the flag (not a hostapd we know) is
never counted as authorized.

hostapd restarts on every wifi reload, so the subscription is kept through
the object going and coming back (see ``UbusClient.subscribe``).  Each time
it is (re)made, ``get_clients`` says who is already there: associated=True
for each authorized station, and associated=False for stations we reported
earlier that are no longer authorized there.  When the object goes away
(hostapd stopped), its stations are gone too: associated=False for each.  A
dropped connection to ubusd, however, loses no stations: they are reconciled
on resubscription.

One bad notification or an exception from on_event never stops the source
(stations.Containment): counted in ``status()["event_errors"]`` and logged
at most once a minute.

``kick`` is hostapd's ``del_client``: deauthenticate (reason 5, "AP unable to
handle all currently associated STAs", what the original sends) with
ban_time 0: the station roamed away and must be free to come back at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from sroamd.loglimit import LogLimiter
from sroamd.stations import Containment, StationEvent
from sroamd.ubus_client import DEFAULT_SOCKET, UbusClient, UbusError

log = logging.getLogger(__name__)

KICK_REASON = 5
KICK_BAN_TIME = 0

AUTHORIZED = "sta-authorized"
ASSOC_REQUEST = "assoc"
LEAVING = frozenset({"disassoc", "deauth", "local-deauth", "inactive-deauth"})
NOT_IN = frozenset({"key-mismatch"})

# The get_clients fallback for a hostapd that never sends sta-authorized.
POLL_FIRST = 0.25  # seconds after the assoc
POLL_MAX_DELAY = 8.0  # seconds between two polls, at most
POLL_FOR = 30.0  # seconds a station is waited for
MAX_PENDING = 64  # stations waited for, per interface

COUNTERS = ("association_requests",  # assoc notifications (never a claim)
            "pending_full",  # ... not followed: MAX_PENDING already waited for
            "polls",  # get_clients calls of the fallback
            "authorized_by_polling",  # claimed after get_clients said authorized
            "pending_gone",  # no longer listed by hostapd before being authorized
            "pending_expired",  # not authorized within POLL_FOR
            "malformed_notifications")


def mac_to_str(mac: bytes) -> str:
    return ":".join("%02x" % b for b in mac)


def parse_mac(s) -> bytes | None:
    try:
        mac = bytes.fromhex(s.replace(":", ""))
    except (AttributeError, ValueError):
        return None
    return mac if len(mac) == 6 else None


def parse_clients(reply) -> dict[bytes, bool]:
    """A get_clients reply -> {MAC: authorized}, in hostapd's order.

    A client whose entry has no ``authorized`` flag (or is not a table)
    is listed as not authorized; entries whose key is not a MAC are skipped."""
    clients = reply.get("clients") if isinstance(reply, dict) else None
    out: dict[bytes, bool] = {}
    if not isinstance(clients, dict):
        return out
    for addr, info in clients.items():
        mac = parse_mac(addr)
        if mac is None:
            continue
        flag = info.get("authorized") if isinstance(info, dict) else None
        out[mac] = flag is True or (type(flag) is int and flag != 0)
    return out


class _Pending:
    __slots__ = ("deadline", "due", "delay")

    def __init__(self, now: float, first: float, wait: float):
        self.deadline = now + wait
        self.delay = first
        self.due = now + first


class UbusStationSource:
    """Stations of hostapd on ``ifnames``, over ubus.

    ``client``: share an existing ``UbusClient`` (e.g. the daemon's, which
    also publishes the ``sroamd`` object) instead of opening a connection."""

    def __init__(self, ifnames, socket_path: str = DEFAULT_SOCKET, *,
                 client: UbusClient | None = None, poll_first: float = POLL_FIRST,
                 poll_max_delay: float = POLL_MAX_DELAY, poll_for: float = POLL_FOR,
                 max_pending: int = MAX_PENDING):
        self.ifnames = list(dict.fromkeys(ifnames))
        self.socket_path = socket_path
        self.poll_first = poll_first
        self.poll_max_delay = poll_max_delay
        self.poll_for = poll_for
        self.max_pending = max_pending
        self._client = client
        self._own_client = client is None
        self._on_event = None
        # Stations reported as associated, per interface.
        self._associated: dict[str, set[bytes]] = {i: set() for i in self.ifnames}
        # Association requests waited for (get_clients fallback), per interface.
        self._pending: dict[str, dict[bytes, _Pending]] = {i: {} for i in self.ifnames}
        # Whether hostapd on the interface has sent a sta-authorized (since
        # the object last appeared): then no polling is needed.
        self._says_authorized: dict[str, bool] = {i: False for i in self.ifnames}
        self._wake: dict[str, asyncio.Event] = {}
        self.errors = Containment(log)
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._full_log = LogLimiter(log)

    # -- running -----------------------------------------------------------

    async def run(self, on_event):
        """Report station events to ``on_event(StationEvent)`` (may be async) until cancelled."""
        self._on_event = on_event
        if self._own_client:
            self._client = UbusClient(self.socket_path)
        client = self._client
        subs = []
        self._wake = {ifname: asyncio.Event() for ifname in self.ifnames}
        pollers = [asyncio.create_task(self._poller(ifname), name=f"hostapd-poll-{ifname}")
                   for ifname in self.ifnames]
        try:
            if self._own_client:
                await client.connect()
            for ifname in self.ifnames:
                subs.append(await client.subscribe(
                    "hostapd." + ifname,
                    lambda method, data, ifname=ifname: self._notified(ifname, method, data),
                    lambda active, ifname=ifname: self._state(ifname, active)))
            await asyncio.Future()     # until cancelled
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            if self._own_client:
                await client.close()
            else:
                for sub in subs:
                    await client.unsubscribe(sub)

    async def kick(self, ifname: str, mac: bytes):
        """Deauthenticate ``mac`` on ``ifname``; a failure is logged, not raised."""
        if self._client is None:
            log.warning("kick %s on %s: not running", mac_to_str(mac), ifname)
            return
        try:
            await self._client.call("hostapd." + ifname, "del_client", {
                "addr": mac_to_str(mac), "reason": KICK_REASON, "deauth": True,
                "ban_time": KICK_BAN_TIME})
        except UbusError as e:
            log.warning("kick %s on %s: %s", mac_to_str(mac), ifname, e)

    def status(self) -> dict:
        return {"source": "ubus", "event_errors": self.errors.failures,
                "stations": sum(len(s) for s in self._associated.values()),
                "pending": sum(len(p) for p in self._pending.values()),
                **{k: v for k, v in sorted(self.counters.items())}}

    # -- events out ----------------------------------------------------------

    async def _emit(self, ifname, mac, associated, listed=False):
        known = self._associated[ifname]
        if associated:
            known.add(mac)
        else:
            known.discard(mac)
        await self.errors.deliver_async(self._on_event,
                                        StationEvent(ifname, mac, associated, listed))

    # -- notifications -------------------------------------------------------

    async def _notified(self, ifname, method, data):
        try:
            await self._notification(ifname, method, data)
        except Exception as e:      # (on_event's own exceptions are contained in _emit)
            self.errors.failed(f"notification {method!r} from hostapd.{ifname}", e)

    async def _notification(self, ifname, method, data):
        if not isinstance(data, dict):
            self.counters["malformed_notifications"] += 1
            return
        mac = parse_mac(data.get("address"))
        if mac is None:
            return          # no station in it (bss.*, vlan_add, ...) or not a MAC
        pending = self._pending[ifname]
        if method == AUTHORIZED:
            if not self._says_authorized[ifname]:
                self._says_authorized[ifname] = True
                pending.clear()     # each of them will say so itself
            pending.pop(mac, None)
            await self._emit(ifname, mac, True)
        elif method in LEAVING:
            pending.pop(mac, None)
            if mac in self._associated[ifname]:
                await self._emit(ifname, mac, False)
        elif method in NOT_IN:
            pending.pop(mac, None)
        elif method == ASSOC_REQUEST:
            self.counters["association_requests"] += 1
            if not self._says_authorized[ifname] and mac not in self._associated[ifname]:
                self._expect(ifname, mac)

    # -- the get_clients fallback --------------------------------------------

    def _expect(self, ifname: str, mac: bytes) -> None:
        """Wait for mac to show up authorized in get_clients (bounded)."""
        pending = self._pending[ifname]
        now = asyncio.get_running_loop().time()
        if mac not in pending and len(pending) >= self.max_pending:
            self.counters["pending_full"] += 1
            self._full_log.log(logging.WARNING, "hostapd.%s: %d association requests already "
                               "waited for; not following %s", ifname, len(pending),
                               mac_to_str(mac))
            return
        pending[mac] = _Pending(now, self.poll_first, self.poll_for)
        wake = self._wake.get(ifname)
        if wake is not None:
            wake.set()

    async def _poller(self, ifname: str) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake[ifname]
        while True:
            pending = self._pending[ifname]
            wake.clear()
            if not pending:
                await wake.wait()
                continue
            delay = min(p.due for p in pending.values()) - loop.time()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await wake.wait()
                except TimeoutError:
                    pass
                continue
            try:
                await self._poll_once(ifname)
            except Exception as e:
                self.errors.failed(f"get_clients on {ifname}", e)
                self._reschedule(ifname, loop.time())

    async def _poll_once(self, ifname: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            clients = parse_clients(await self._client.call("hostapd." + ifname, "get_clients"))
        except UbusError as e:
            log.debug("get_clients on %s: %s", ifname, e)
            clients = None
        self.counters["polls"] += 1
        pending = self._pending[ifname]
        for mac in list(pending):
            if clients is None or mac not in pending:
                continue
            authorized = clients.get(mac)
            if authorized is None:          # gone from hostapd: refused, or left
                del pending[mac]
                self.counters["pending_gone"] += 1
            elif authorized:
                del pending[mac]
                self.counters["authorized_by_polling"] += 1
                await self._emit(ifname, mac, True)
        self._reschedule(ifname, loop.time())

    def _reschedule(self, ifname: str, now: float) -> None:
        pending = self._pending[ifname]
        for mac, p in list(pending.items()):
            if now >= p.deadline:
                del pending[mac]
                self.counters["pending_expired"] += 1
            elif p.due <= now:
                p.delay = min(p.delay * 2, self.poll_max_delay)
                p.due = min(now + p.delay, p.deadline)

    # -- hostapd coming and going --------------------------------------------

    async def _state(self, ifname, active):
        try:
            await self._resync(ifname, active)
        except Exception as e:
            self.errors.failed(f"resynchronising with hostapd.{ifname}", e)

    async def _resync(self, ifname, active):
        self._pending[ifname].clear()
        self._says_authorized[ifname] = False
        if not active:      # hostapd went away, and its stations with it
            for mac in sorted(self._associated[ifname]):
                await self._emit(ifname, mac, False)
            return
        try:
            reply = await self._client.call("hostapd." + ifname, "get_clients")
        except UbusError as e:
            log.warning("get_clients on %s: %s", ifname, e)
            return
        clients = parse_clients(reply)
        present = [mac for mac, authorized in clients.items() if authorized]
        for mac in sorted(self._associated[ifname].difference(present)):
            await self._emit(ifname, mac, False)
        for mac in present:
            await self._emit(ifname, mac, True, listed=True)
        # Stations in the middle of WPA/802.1X: waited for as after an assoc
        # (until this hostapd shows it sends sta-authorized).
        for mac, authorized in clients.items():
            if not authorized:
                self._expect(ifname, mac)
