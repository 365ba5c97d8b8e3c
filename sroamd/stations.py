"""What a station source reports: a station came or went on a roaming interface.

Two sources produce these: hostapd over ubus (OpenWrt) and hostapd's control
socket (plain Linux).  Both have the same shape:

    source = Source(ifnames, ...)
    await source.run(on_event)       # until cancelled; on_event(StationEvent)
    await source.kick(ifname, mac)   # deauthenticate a station
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StationEvent:
    ifname: str
    mac: bytes
    associated: bool
