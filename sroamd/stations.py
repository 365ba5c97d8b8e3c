"""What a station source reports: a station came or went on a roaming interface.

Two sources produce these: hostapd over ubus (OpenWrt) and hostapd's control
socket (plain Linux).  Both have the same shape:

    source = Source(ifnames, ...)
    await source.run(on_event)       # until cancelled; on_event(StationEvent)
    await source.kick(ifname, mac)   # deauthenticate a station
    source.status()                  # counters, for `ubus call sroamd status`

associated=True means hostapd says the station is *authorized* (802.1X/WPA
done, or an open network): never an association request alone, which other
subscribers may still refuse and which anyone in radio range can send with
any MAC.  associated=False means hostapd says it left (or is gone with
hostapd).

One bad event never stops a source: an exception raised by on_event, or by
the handling of one message from hostapd, is contained (counted in
``status()["event_errors"]``, logged at most once a minute) and the source
goes on with the next one.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

from sroamd.loglimit import LogLimiter


@dataclass(frozen=True, slots=True)
class StationEvent:
    ifname: str
    mac: bytes
    associated: bool
    # True when hostapd listed the station (get_clients, STA-FIRST/NEXT: at
    # start, or after hostapd or ubus came back) rather than announced it:
    # a station that was already there.  A restart's local truth applies to
    # these only (roaming.py).  Not part of equality: the same station event.
    listed: bool = field(default=False, compare=False)


class Containment:
    """Failures of station handling: counted and logged, never raised."""

    def __init__(self, logger: logging.Logger):
        self.failures = 0
        self._limiter = LogLimiter(logger)

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        self._limiter.log(logging.ERROR, "%s failed (%d so far), going on: %r",
                          what, self.failures, exc, exc_info=exc)

    def deliver(self, on_event, event: StationEvent) -> None:
        """on_event(event) for a plain function; an exception is contained."""
        try:
            on_event(event)
        except Exception as e:
            self.failed(f"handling {describe(event)}", e)

    async def deliver_async(self, on_event, event: StationEvent) -> None:
        """on_event(event), awaited if it returns an awaitable; contained."""
        try:
            result = on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception as e:
            self.failed(f"handling {describe(event)}", e)


def describe(event: StationEvent) -> str:
    mac = ":".join(f"{b:02x}" for b in event.mac)
    return f"{event.ifname}: station {mac} {'in' if event.associated else 'gone'}"
