"""The roaming interfaces as the kernel has them: index, MAC, state, addresses.

Interfaces may be missing at start, go away and come back with a new index
(hostapd restarts, wifi reloads), or go down and up again with the same
index (the kernel then drops their routes).  A socket bound to the rtnetlink
link and address groups is the doorbell: on any notification, or on lost
ones, the table is re-read (index by name, MAC and flags from sysfs,
addresses with one dump: pyroute2's link message class alone costs
megabytes), and on_change(name, old, new) is called for each interface whose
state changed (old or new None: absent), and also for one that went down
and came back up between two reads (old == new then: the notifications say
so, read from the raw link message, whose ifi_change has IFF_UP).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Callable

import sys

from sroamd.rtnl import Rtnl  # (first: it keeps pyroute2's package import light)

from pyroute2.netlink.rtnl import (RTM_GETADDR, RTM_NEWLINK, RTMGRP_IPV4_IFADDR,  # noqa: E402
                                   RTMGRP_IPV6_IFADDR, RTMGRP_LINK)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402

log = logging.getLogger("sroamd.links")

IFF_UP = 0x1


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    index: int
    mac: bytes
    ipv4: tuple[bytes, ...]  # its IPv4 addresses
    link_local: bytes | None  # the link-local address to advertise from
    up: bool = True  # administratively up (IFF_UP): routes can be added
    ipv6: tuple[bytes, ...] = ()  # its other (global) IPv6 addresses


def eui64_link_local(mac: bytes) -> bytes:
    return (b"\xfe\x80" + bytes(6) + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe"
            + mac[3:6])


def choose_link_local(addresses: list[bytes], mac: bytes) -> bytes | None:
    """The shared router address (e.g. fe80::44) rather than the one the
    kernel made from the MAC, which differs on every AP; else the smallest."""
    if not addresses:
        return None
    own = eui64_link_local(mac) if len(mac) == 6 else None
    chosen = [a for a in addresses if a != own] or addresses
    return min(chosen)


class LinkTable:
    def __init__(self, names: list[str], rtnl: Rtnl,
                 on_change: Callable[[str, Link | None, Link | None], None]):
        self.names = list(names)
        self.rtnl = rtnl  # for dumps
        self.on_change = on_change
        self.links: dict[str, Link] = {}
        self.events: Rtnl | None = None
        self.refreshes = 0
        self.bounced: set[str] = set()  # went down (and maybe up) since the last read

    def start(self, loop) -> None:
        self.events = Rtnl(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        loop.add_reader(self.events.fileno(), self._readable)
        self.refresh()

    def stop(self, loop) -> None:
        if self.events is not None:
            loop.remove_reader(self.events.fileno())
            self.events.close()
            self.events = None

    def _readable(self) -> None:
        try:
            self.note_events(self.events.events())
        except OSError as e:
            log.warning("link notifications: %s; re-reading interfaces", e)
        self.refresh()

    def note_events(self, messages: list) -> None:
        """Remember our interfaces whose IFF_UP flag changed (a down and up
        again between two reads would look like no change at all)."""
        names = {link.index: name for name, link in self.links.items()}
        for msg in messages:
            raw = msg.get("raw") if isinstance(msg, dict) else None
            if msg["header"]["type"] != RTM_NEWLINK or raw is None or len(raw) < 32:
                continue
            index = int.from_bytes(raw[20:24], sys.byteorder, signed=True)
            change = int.from_bytes(raw[28:32], sys.byteorder)
            if change & IFF_UP and index in names:
                self.bounced.add(names[index])

    def get(self, name: str) -> Link | None:
        return self.links.get(name)

    def refresh(self) -> None:
        self.refreshes += 1
        try:
            links = self._read()
        except OSError as e:
            log.error("cannot read interfaces: %s", e)
            return
        old_links, self.links = self.links, links
        bounced, self.bounced = self.bounced, set()
        for name in self.names:
            old, new = old_links.get(name), links.get(name)
            if old != new or (name in bounced and new is not None):
                if new is None:
                    log.warning("%s: interface gone", name)
                elif old is None or old.index != new.index:
                    log.warning("%s: interface present, index %d%s", name, new.index,
                                "" if new.up else " (down)")
                elif old.up != new.up:
                    log.warning("%s: interface %s", name, "up" if new.up else "down")
                elif old == new:
                    log.warning("%s: interface went down and up again", name)
                self.on_change(name, old, new)

    def _read(self) -> dict[str, Link]:
        by_index = {}
        for name in self.names:
            try:
                index = socket.if_nametoindex(name)
                with open(f"/sys/class/net/{name}/address") as f:
                    mac = bytes.fromhex(f.read().strip().replace(":", ""))
                with open(f"/sys/class/net/{name}/flags") as f:
                    up = bool(int(f.read().strip(), 16) & IFF_UP)
            except (OSError, ValueError):
                continue  # absent (or going away right now)
            by_index[index] = (name, mac, up)
        ipv4: dict[int, list[bytes]] = {i: [] for i in by_index}
        ipv6: dict[int, list[bytes]] = {i: [] for i in by_index}
        global6: dict[int, list[bytes]] = {i: [] for i in by_index}
        for family, table in ((socket.AF_INET, ipv4), (socket.AF_INET6, ipv6)):
            request = ifaddrmsg()
            request["family"] = family
            for msg in self.rtnl.dump(request, RTM_GETADDR):
                index = msg["index"]
                if index not in table:
                    continue
                text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if text is None:
                    continue
                address = socket.inet_pton(family, text)
                if family == socket.AF_INET6 and address[:2] != b"\xfe\x80":
                    global6[index].append(address)
                    continue
                table[index].append(address)
        return {name: Link(name, index, mac, tuple(ipv4[index]),
                           choose_link_local(ipv6[index], mac), up, tuple(global6[index]))
                for index, (name, mac, up) in by_index.items()}
