"""Station source over hostapd's control socket (Linux without ubus).

hostapd serves one unix datagram socket per interface (BSS) in its
`ctrl_interface` directory, e.g. /var/run/hostapd/wlan0.  A client binds its
own socket to a path (hostapd replies to that address), sends commands and
reads replies; after `ATTACH` hostapd also sends it unsolicited messages
such as ``<3>AP-STA-CONNECTED 02:00:00:00:00:01``.  Replies never start
with "<", so one socket carries both, and replies come in request order.

hostapd emits AP-STA-CONNECTED when a station becomes *authorized* (at once
on an open network, after 802.1X/WPA otherwise) and AP-STA-DISCONNECTED when
it stops being so.  The station table listed by STA-FIRST/STA-NEXT also
holds stations that are not (or no longer) authorized, e.g. for a few
seconds after a deauthentication, and a station whose 802.1X/WPA failed, so
enumeration reports only stations with the [AUTHORIZED] flag, to match the
events.  Nothing else hostapd says (e.g. an association alone) claims.

One bad event never stops the source: an exception from on_event, or from
the handling of one message, is contained (counted in
``status()["event_errors"]``, logged at most once a minute) and the source
goes on; so is an unexpected failure of one interface's connection, which
is attached again like a hostapd that went away.

Parsing is pure (functions of bytes, no I/O) and tested without sockets; the
asyncio part below keeps one connected socket per interface, no threads.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import socket
import tempfile
from typing import Callable, Iterable, NamedTuple

from .stations import Containment, StationEvent

log = logging.getLogger(__name__)

EVENT_CONNECTED = "AP-STA-CONNECTED"
EVENT_DISCONNECTED = "AP-STA-DISCONNECTED"
EVENT_TERMINATING = "CTRL-EVENT-TERMINATING"


# -- pure parsing --------------------------------------------------------

def parse_mac(text: str | bytes) -> bytes | None:
    """'02:00:5e:10:00:01' (any case) -> 6 bytes; None if it is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    parts = text.split(":")
    if len(parts) != 6 or any(len(p) != 2 or not set(p) <= _HEX
                              for p in parts):
        return None
    return bytes(int(p, 16) for p in parts)


_HEX = set("0123456789abcdefABCDEF")


def format_mac(mac: bytes) -> str:
    if len(mac) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return ":".join(f"{b:02x}" for b in mac)


def is_unsolicited(datagram: bytes) -> bool:
    """True for an event ("<N>..."), False for a reply to a command."""
    return datagram.startswith(b"<")


def event_name(datagram: bytes) -> str | None:
    """The event's name ("AP-STA-CONNECTED"), or None if not an event.

    Accepts "<N>NAME args" and, as the global control interface writes it,
    "<N>IFNAME=wlan0 NAME args" or "IFNAME=wlan0 <N>NAME args".
    """
    words = _event_words(datagram)
    return words[0] if words else None


def _event_words(datagram: bytes) -> list[str]:
    try:
        text = datagram.decode("utf-8").strip()
    except UnicodeDecodeError:
        return []
    if text.startswith("IFNAME="):
        text = text.partition(" ")[2].lstrip()
    if not text.startswith("<"):
        return []
    level, sep, rest = text[1:].partition(">")
    if not sep or not level.isdigit():
        return []
    words = rest.split()
    if words and words[0].startswith("IFNAME="):
        words = words[1:]
    return words


def parse_event(ifname: str, datagram: bytes) -> StationEvent | None:
    """An AP-STA-CONNECTED/DISCONNECTED message -> StationEvent, else None.

    Extra fields after the MAC (keyid=..., p2p_dev_addr=...) are ignored.
    """
    words = _event_words(datagram)
    if len(words) < 2 or words[0] not in (EVENT_CONNECTED, EVENT_DISCONNECTED):
        return None
    mac = parse_mac(words[1])
    if mac is None:
        return None
    return StationEvent(ifname, mac, words[0] == EVENT_CONNECTED)


class StaInfo(NamedTuple):
    mac: bytes
    authorized: bool


def parse_sta(reply: bytes) -> StaInfo | None:
    """A reply to STA-FIRST / STA-NEXT / STA -> StaInfo, or None.

    The reply is the MAC on the first line then key=value lines, among them
    "flags=[AUTH][ASSOC][AUTHORIZED]".  None for the end of the list (an
    empty reply), "FAIL" and anything malformed.
    """
    try:
        lines = reply.decode("utf-8", "replace").splitlines()
    except AttributeError:
        return None
    if not lines:
        return None
    mac = parse_mac(lines[0].strip())
    if mac is None:
        return None
    flags = ""
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if sep and key == "flags":
            flags = value
            break
    return StaInfo(mac, "[AUTHORIZED]" in flags)


def is_ok(reply: bytes) -> bool:
    return reply.strip() == b"OK"


# -- asyncio control-socket client ---------------------------------------

class HostapdError(OSError):
    """hostapd refused a command, or there is no connection to it."""


class _Ctrl(asyncio.DatagramProtocol):
    """One connected control socket: FIFO of pending replies, event queue.

    Any socket error, a timeout or hostapd's CTRL-EVENT-TERMINATING breaks
    the connection: pending requests fail and the event queue yields the
    exception, so the owner closes it and attaches again.
    """

    def __init__(self, ctrl_path: str, local_path: str, timeout: float):
        self.ctrl_path = ctrl_path
        self.local_path = local_path
        self.timeout = timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: collections.deque[asyncio.Future[bytes]] = \
            collections.deque()
        self.events: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self.error: BaseException | None = None
        self.attached = False  # ATTACH answered OK

    @classmethod
    async def open(cls, ctrl_path: str, local_path: str,
                   timeout: float) -> "_Ctrl":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _unlink(local_path)  # left over by a crashed process with our PID
            sock.bind(local_path)
            sock.connect(ctrl_path)  # ENOENT / ECONNREFUSED: hostapd not there
            sock.setblocking(False)
            self = cls(ctrl_path, local_path, timeout)
            await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: self, sock=sock)
        except BaseException:
            sock.close()
            _unlink(local_path)
            raise
        return self

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if is_unsolicited(data):
            if event_name(data) == EVENT_TERMINATING:
                self.fail(ConnectionResetError(f"hostapd on {self.ctrl_path}"
                                               " is terminating"))
            else:
                self.events.put_nowait(data)
        elif self.pending:
            # Replies come in request order.  A future whose waiter was
            # cancelled is popped all the same, keeping the rest in step.
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        self.fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionResetError("control socket closed"))

    def fail(self, exc: BaseException) -> None:
        if self.error is not None:
            return
        self.error = exc
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(exc)
        self.events.put_nowait(exc)

    async def request(self, command: str) -> bytes:
        if self.error is not None:
            raise self.error
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.transport.sendto(command.encode())
        try:
            async with asyncio.timeout(self.timeout):
                return await fut
        except TimeoutError:
            exc = TimeoutError(f"no reply to {command.split()[0]} from "
                               f"{self.ctrl_path} within {self.timeout}s")
            self.fail(exc)
            raise exc from None

    def close(self) -> None:
        if self.transport is not None:
            if self.error is None:
                try:  # be polite: hostapd would otherwise keep sending events
                    self.transport.sendto(b"DETACH")
                except Exception:
                    pass
            self.error = self.error or ConnectionResetError("closed")
            self.transport.close()
            self.transport = None
        _unlink(self.local_path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class HostapdStationSource:
    """Stations of hostapd's interfaces, from its control sockets.

    `await run(on_event)` runs until cancelled; it calls on_event (a plain
    function) with a StationEvent for every station that becomes
    authorized (associated=True) or stops being so (False).  On every
    (re)attachment it first reports the stations hostapd has authorized
    (True), and those it reported before that hostapd no longer has (False),
    e.g. after hostapd restarted.  An exception from on_event is contained
    (counted and logged, see stations.Containment): the next events are
    reported all the same.

    An interface whose socket is missing (hostapd not started yet) is
    retried with exponential backoff.  A hostapd that stops (it says
    CTRL-EVENT-TERMINATING), dies (the next PING gets ECONNREFUSED) or does
    not answer a PING within `timeout` is attached again the same way.

    `await kick(ifname, mac)` deauthenticates a station; it raises OSError
    (HostapdError, TimeoutError) if hostapd is not attached or refuses.
    """

    _socket_ids = itertools.count()

    def __init__(self, ifnames: Iterable[str],
                 ctrl_dir: str = "/var/run/hostapd", *,
                 ping_interval: float = 5.0, timeout: float = 2.0,
                 backoff_min: float = 0.1, backoff_max: float = 5.0,
                 local_dir: str | None = None):
        self.ifnames = list(dict.fromkeys(ifnames))
        self.ctrl_dir = ctrl_dir
        self.ping_interval = ping_interval
        self.timeout = timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.local_dir = local_dir or tempfile.gettempdir()
        self._ctrl: dict[str, _Ctrl] = {}
        # Stations reported as associated, per interface (to report those
        # that vanished while we were not attached).
        self._present: dict[str, set[bytes]] = {i: set() for i in self.ifnames}
        self.errors = Containment(log)

    def status(self) -> dict:
        return {"source": "hostapd", "event_errors": self.errors.failures,
                "stations": sum(len(s) for s in self._present.values()),
                "attached": sum(1 for i in self.ifnames if self.attached(i))}

    def attached(self, ifname: str) -> bool:
        """Whether hostapd on ifname currently sends us its events."""
        ctrl = self._ctrl.get(ifname)
        return ctrl is not None and ctrl.attached and ctrl.error is None

    async def run(self, on_event: Callable[[StationEvent], object]) -> None:
        tasks = [asyncio.create_task(self._serve(ifname, on_event),
                                     name=f"hostapd-ctrl-{ifname}")
                 for ifname in self.ifnames]
        try:
            if not tasks:
                await asyncio.Event().wait()
            # The tasks only end by raising (a bug): re-raise that very
            # exception rather than an ExceptionGroup.
            done, _ = await asyncio.wait(
                tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def kick(self, ifname: str, mac: bytes) -> None:
        ctrl = self._ctrl.get(ifname)
        if ctrl is None or ctrl.error is not None:
            raise HostapdError(f"not attached to hostapd on {ifname}")
        reply = await ctrl.request(f"DEAUTHENTICATE {format_mac(mac)}")
        if not is_ok(reply):
            raise HostapdError(f"hostapd on {ifname} refused DEAUTHENTICATE "
                               f"{format_mac(mac)}: {reply!r}")

    # -- per interface ---------------------------------------------------

    async def _serve(self, ifname: str, on_event) -> None:
        """Attach, report, follow; on any failure, again after a backoff."""
        ctrl_path = os.path.join(self.ctrl_dir, ifname)
        backoff = self.backoff_min
        say = log.warning  # the first failure in a row; the rest: debug
        while True:
            local = os.path.join(
                self.local_dir,
                f"sroamd-hostapd-{os.getpid()}-{next(self._socket_ids)}")
            ctrl = None
            try:
                ctrl = await _Ctrl.open(ctrl_path, local, self.timeout)
                self._ctrl[ifname] = ctrl
                reply = await ctrl.request("ATTACH")
                if not is_ok(reply):
                    raise HostapdError(f"ATTACH refused: {reply!r}")
                ctrl.attached = True
                await self._resync(ifname, ctrl, on_event)
                log.info("attached to hostapd on %s", ifname)
                backoff = self.backoff_min
                say = log.warning
                await self._follow(ifname, ctrl, on_event)
            except OSError as e:  # also TimeoutError, ConnectionError
                say("hostapd control socket %s: %s; trying again", ctrl_path,
                    e)
                say = log.debug
            except Exception as e:  # a bug: this connection ends, not the source
                self.errors.failed(f"following hostapd on {ifname}", e)
            finally:
                if ctrl is not None:
                    if self._ctrl.get(ifname) is ctrl:
                        del self._ctrl[ifname]
                    ctrl.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    async def _resync(self, ifname: str, ctrl: _Ctrl, on_event) -> None:
        """Report hostapd's authorized stations and those that went away.

        Events arriving meanwhile wait in ctrl.events and are replayed after
        this snapshot, in order, so each station ends in its latest state.
        """
        present = await self._enumerate(ctrl)
        known = self._present[ifname]
        for mac in sorted(known.difference(present)):
            known.discard(mac)
            self.errors.deliver(on_event, StationEvent(ifname, mac, False))
        for mac in present:
            known.add(mac)
            self.errors.deliver(on_event, StationEvent(ifname, mac, True, listed=True))

    async def _enumerate(self, ctrl: _Ctrl) -> dict[bytes, None]:
        """hostapd's authorized stations, in its order (a dict as an
        ordered set)."""
        for _ in range(3):
            present: dict[bytes, None] = {}
            reply = await ctrl.request("STA-FIRST")
            while True:
                sta = parse_sta(reply)
                if sta is None:
                    break
                if sta.authorized:
                    present[sta.mac] = None
                reply = await ctrl.request(f"STA-NEXT {format_mac(sta.mac)}")
            if reply.strip() != b"FAIL":
                return present
            # The station we stood on left between two requests: start over.
        return present

    async def _follow(self, ifname: str, ctrl: _Ctrl, on_event) -> None:
        """Pass events on until the connection breaks; PING when idle."""
        known = self._present[ifname]
        while True:
            try:
                async with asyncio.timeout(self.ping_interval):
                    item = await ctrl.events.get()
            except TimeoutError:
                reply = await ctrl.request("PING")
                if reply.strip() != b"PONG":
                    raise HostapdError(f"PING answered {reply!r}")
                continue
            if isinstance(item, BaseException):
                raise item
            try:
                event = parse_event(ifname, item)
            except Exception as e:  # parse_event returns None on garbage
                self.errors.failed(f"parsing {item[:80]!r} from {ifname}", e)
                continue
            if event is None:
                continue
            if event.associated:
                known.add(event.mac)
            else:
                known.discard(event.mac)
            self.errors.deliver(on_event, event)
