"""Station source: hostapd over ubus (OpenWrt).

hostapd publishes ``hostapd.<ifname>`` and tells its subscribers about
stations with notifications: ``assoc`` (associated=True), ``disassoc``
(associated=False), ``sta-authorized`` (associated=True, but only for a
station we have not seen associate: it follows every assoc, and a repeat
would only be noise; it covers a missed assoc).

hostapd restarts on every wifi reload, so the subscription is kept through
the object going and coming back (see ``UbusClient.subscribe``).  Each time
it is (re)made, ``get_clients`` says who is already there: associated=True
for each of them, and associated=False for stations we reported earlier that
are no longer listed.  When the object goes away (hostapd stopped), its
stations are gone too: associated=False for each.  A dropped connection to
ubusd, however, loses no stations: they are reconciled on resubscription.

``kick`` is hostapd's ``del_client``: deauthenticate (reason 5, "AP unable to
handle all currently associated STAs", what the original sends) with
ban_time 0: the station roamed away and must be free to come back at once.
"""

import asyncio
import inspect
import logging

from sroamd.stations import StationEvent
from sroamd.ubus_client import DEFAULT_SOCKET, UbusClient, UbusError

log = logging.getLogger(__name__)

KICK_REASON = 5
KICK_BAN_TIME = 0


def mac_to_str(mac: bytes) -> str:
    return ":".join("%02x" % b for b in mac)


def parse_mac(s) -> bytes | None:
    try:
        mac = bytes.fromhex(s.replace(":", ""))
    except (AttributeError, ValueError):
        return None
    return mac if len(mac) == 6 else None


class UbusStationSource:
    """Stations of hostapd on ``ifnames``, over ubus.

    ``client``: share an existing ``UbusClient`` (e.g. the daemon's, which
    also publishes the ``sroamd`` object) instead of opening a connection."""

    def __init__(self, ifnames, socket_path: str = DEFAULT_SOCKET, *,
                 client: UbusClient | None = None):
        self.ifnames = list(ifnames)
        self.socket_path = socket_path
        self._client = client
        self._own_client = client is None
        self._on_event = None
        self._associated = {ifname: set() for ifname in self.ifnames}

    async def run(self, on_event):
        """Report station events to ``on_event(StationEvent)`` (may be async) until cancelled."""
        self._on_event = on_event
        if self._own_client:
            self._client = UbusClient(self.socket_path)
        client = self._client
        subs = []
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

    async def _emit(self, ifname, mac, associated):
        known = self._associated[ifname]
        if associated:
            known.add(mac)
        else:
            known.discard(mac)
        result = self._on_event(StationEvent(ifname, mac, associated))
        if inspect.isawaitable(result):
            await result

    async def _notified(self, ifname, method, data):
        mac = parse_mac(data.get("address"))
        if mac is None:
            return          # probe, auth, ... or no address: not a station event
        if method == "assoc":
            await self._emit(ifname, mac, True)
        elif method == "disassoc":
            await self._emit(ifname, mac, False)
        elif method == "sta-authorized" and mac not in self._associated[ifname]:
            await self._emit(ifname, mac, True)

    async def _state(self, ifname, active):
        if not active:      # hostapd went away, and its stations with it
            for mac in sorted(self._associated[ifname]):
                await self._emit(ifname, mac, False)
            return
        try:
            reply = await self._client.call("hostapd." + ifname, "get_clients")
        except UbusError as e:
            log.warning("get_clients on %s: %s", ifname, e)
            return
        present = set()
        clients = reply.get("clients")
        for addr, info in (clients.items() if isinstance(clients, dict) else ()):
            mac = parse_mac(addr)
            # hostapd lists authenticated stations too; only associated ones count
            if mac is not None and (not isinstance(info, dict) or info.get("assoc", True)):
                present.add(mac)
        for mac in sorted(self._associated[ifname] - present):
            await self._emit(ifname, mac, False)
        for mac in sorted(present):
            await self._emit(ifname, mac, True)
