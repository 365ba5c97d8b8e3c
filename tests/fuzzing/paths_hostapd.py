"""5. hostapd control-socket datagrams -> the hostapd station source.

The pure parsers (parse_event, event_name, parse_sta, is_unsolicited) get
every datagram; the source's own code runs on a real _Ctrl protocol object
whose transport is a stand-in hostapd: each command the source sends
(ATTACH, STA-FIRST, STA-NEXT, PING, DEAUTHENTICATE, DETACH) is answered from
a station table the fuzzer writes, and the fuzzer's events arrive through
datagram_received as hostapd's would.  The source's attach sequence
(ATTACH, _resync with its STA enumeration, _follow) is what _serve runs on
a socket; a connection that breaks (CTRL-EVENT-TERMINATING, a bad PING
answer) is attached again, as _serve does.
"""

from __future__ import annotations

import asyncio
import random

from sroamd import stations_hostapd as sh
from sroamd.stations import StationEvent

from fuzzing.mutate import mutate, random_bytes
from fuzzing.node import CLIENT_MACS, IFNAMES
from fuzzing.paths import pick_mac
from fuzzing.paths_ubus import _VirtualLoop
from fuzzing.standins import Violation

EVENT_NAMES = ("AP-STA-CONNECTED", "AP-STA-CONNECTED", "AP-STA-DISCONNECTED",
               "AP-STA-DISCONNECTED", "CTRL-EVENT-EAP-STARTED", "AP-STA-POSSIBLE-PSK-MISMATCH",
               "CTRL-EVENT-TERMINATING", "AP-ENABLED", "WPS-PBC-ACTIVE", "ap-sta-connected")


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def event_datagram(rng: random.Random) -> bytes:
    name = rng.choice(EVENT_NAMES)
    mac = mac_str(pick_mac(rng, 0.85))
    if rng.random() < 0.1:
        mac = rng.choice((mac.upper(), mac[:-1], mac + "0", mac.replace(":", ""), "", "x" * 17))
    extra = rng.choice(("", "", " keyid=1", " p2p_dev_addr=02:00:00:00:00:00",
                        " vlan_id=3", " " + mac_str(pick_mac(rng))))
    text = f"<{rng.choice((1, 2, 3, 3, 3, 99))}>{name} {mac}{extra}"
    r = rng.random()
    if r < 0.1:
        text = f"IFNAME={rng.choice(IFNAMES)} " + text
    elif r < 0.15:
        text = text.replace(">", f">IFNAME={rng.choice(IFNAMES)} ", 1)
    data = text.encode()
    r = rng.random()
    if r < 0.12:
        data = mutate(rng, data)
    elif r < 0.15:
        data = b"<" + random_bytes(rng, 80)
    return data


def sta_reply(rng: random.Random, mac: bytes) -> bytes:
    flags = rng.choice(("[AUTH][ASSOC][AUTHORIZED]", "[AUTH][ASSOC][AUTHORIZED]", "[AUTH][ASSOC]",
                        "[AUTH]", "", "[AUTHORIZED]", "[ASSOC][WMM][AUTHORIZED][HT]"))
    lines = [mac_str(mac), f"flags={flags}", "aid=1", "capability=0x0"]
    if rng.random() < 0.5:
        lines.insert(1, "dot11RSNAStatsSTAAddress=" + mac_str(mac))
    if rng.random() < 0.05:
        lines = ["FAIL"]
    data = ("\n".join(lines) + "\n").encode()
    if rng.random() < 0.1:
        data = mutate(rng, data)
    return data


class StandinHostapd:
    """hostapd behind one control socket: answers commands from its table."""

    def __init__(self, harness: "HostapdPath", ifname: str):
        self.h = harness
        self.ifname = ifname
        self.table: list[bytes] = []  # STA replies, in hostapd's order
        self.cursor = 0
        self.ping_answer = b"PONG\n"
        self.kick_answer = b"OK\n"


class _Transport:
    def __init__(self, harness: "HostapdPath", ifname: str):
        self.h = harness
        self.ifname = ifname
        self.closed = False

    def sendto(self, data: bytes, addr=None) -> None:
        if self.closed:
            raise OSError("closed")
        self.h.answer(self.ifname, data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class HostapdPath:
    name = "hostapd"

    def __init__(self, seed: int, epoch: int):
        self.loop = _VirtualLoop()
        self.source = sh.HostapdStationSource(list(IFNAMES), ctrl_dir="/nonexistent",
                                              local_dir="/nonexistent")
        self.hostapd = {i: StandinHostapd(self, i) for i in IFNAMES}
        self.ctrls: dict[str, sh._Ctrl] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.events: list[StationEvent] = []
        self.allowed: dict[str, set[bytes]] = {i: set() for i in IFNAMES}
        self.attachments = 0
        self.parsed = 0
        self.reported = 0
        self.crashes: list[BaseException] = []
        self.errors_seen = self._source_errors()
        for ifname in IFNAMES:
            self._attach(ifname)
        self._spin()

    def _source_errors(self) -> int:
        return getattr(getattr(self.source, "errors", None), "failures", 0)

    def _on_event(self, event: StationEvent) -> None:
        self.reported += 1
        self.events.append(event)

    # -- the attach sequence of HostapdStationSource._serve --------------------

    def _attach(self, ifname: str) -> None:
        ctrl = sh._Ctrl(f"/nonexistent/{ifname}", f"/nonexistent/local-{ifname}", 2.0)
        ctrl.connection_made(_Transport(self, ifname))
        self.ctrls[ifname] = ctrl
        self.source._ctrl[ifname] = ctrl
        self.attachments += 1

        async def serve():
            try:
                reply = await ctrl.request("ATTACH")
                if not sh.is_ok(reply):
                    raise sh.HostapdError(f"ATTACH refused: {reply!r}")
                ctrl.attached = True
                await self.source._resync(ifname, ctrl, self._on_event)
                await self.source._follow(ifname, ctrl, self._on_event)
            except OSError:
                pass  # _serve: attached again after a backoff
            finally:
                if self.source._ctrl.get(ifname) is ctrl:
                    del self.source._ctrl[ifname]
                ctrl.close()

        self.tasks[ifname] = self.loop.create_task(serve())

    def answer(self, ifname: str, data: bytes) -> None:
        hostapd = self.hostapd[ifname]
        command = data.decode("ascii", "replace").split()
        word = command[0] if command else ""
        if word == "ATTACH" or word == "DETACH":
            reply = b"OK\n"
        elif word == "STA-FIRST":
            hostapd.cursor = 0
            reply = hostapd.table[0] if hostapd.table else b""
        elif word == "STA-NEXT":
            hostapd.cursor += 1
            reply = hostapd.table[hostapd.cursor] if hostapd.cursor < len(hostapd.table) else b""
        elif word == "PING":
            reply = hostapd.ping_answer
        elif word == "DEAUTHENTICATE":
            reply = hostapd.kick_answer
        else:
            reply = b"UNKNOWN COMMAND\n"
        ctrl = self.ctrls.get(ifname)
        if ctrl is not None:
            self.loop.call_soon(ctrl.datagram_received, reply, None)

    def _spin(self, limit: int = 400) -> None:
        loop = self.loop

        async def spin():
            quiet = 0
            for _ in range(limit):
                await asyncio.sleep(0)
                quiet = quiet + 1 if not loop._ready else 0
                if quiet >= 2:
                    return
        loop.run_until_complete(spin())
        for ifname, task in list(self.tasks.items()):
            if task.done():
                if not task.cancelled() and task.exception() is not None:
                    self.crashes.append(task.exception())
                del self.tasks[ifname]
                self.ctrls.pop(ifname, None)

    # -- inputs ------------------------------------------------------------------

    def generate(self, rng: random.Random) -> list:
        ops = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            ifname = rng.choice(IFNAMES)
            r = rng.random()
            if ifname not in self.tasks:
                table = [sta_reply(rng, pick_mac(rng, 0.85)) for _ in range(rng.choice((0, 1, 2, 4)))]
                ops.append(("attach", ifname, table))
            elif r < 0.6:
                ops.append(("event", ifname, event_datagram(rng)))
            elif r < 0.7:
                table = [sta_reply(rng, pick_mac(rng, 0.85)) for _ in range(rng.choice((0, 1, 2, 4)))]
                ops.append(("table", ifname, table))
            elif r < 0.8:
                ops.append(("tick", ifname, rng.choice((1, 2.5, 5, 6)),
                            b"PONG\n" if rng.random() < 0.9 else random_bytes(rng, 8)))
            elif r < 0.85:
                ops.append(("kick", ifname, pick_mac(rng), rng.random() < 0.8))
            elif r < 0.92:
                ops.append(("reply", ifname, mutate(rng, b"OK\n") if rng.random() < 0.5
                            else random_bytes(rng, 40)))
            else:
                ops.append(("terminate", ifname))
        return ops

    def _allow(self, ifname: str, datagram: bytes) -> None:
        """Note the stations hostapd's datagram says are in, by its own words."""
        text = datagram.decode("latin-1")
        if "AP-STA-CONNECTED" in text:
            for word in text.replace("=", " ").split():
                mac = sh.parse_mac(word)
                if mac is not None:
                    self.allowed[ifname].add(mac)

    def _allow_table(self, ifname: str, table: list[bytes]) -> None:
        for reply in table:
            lines = reply.decode("latin-1").splitlines()
            if lines and "[AUTHORIZED]" in reply.decode("latin-1"):
                mac = sh.parse_mac(lines[0].strip())
                if mac is not None:
                    self.allowed[ifname].add(mac)

    def _parse_checks(self, ifname: str, datagram: bytes) -> None:
        """The pure parsers on any datagram: never raise, answers consistent."""
        self.parsed += 1
        unsolicited = sh.is_unsolicited(datagram)
        name = sh.event_name(datagram)
        event = sh.parse_event(ifname, datagram)
        info = sh.parse_sta(datagram)
        if event is not None:
            if len(event.mac) != 6 or name not in (sh.EVENT_CONNECTED, sh.EVENT_DISCONNECTED):
                raise Violation("hostapd_parse_inconsistent", f"{datagram!r} -> {event}, {name}")
            if event.associated != (name == sh.EVENT_CONNECTED):
                raise Violation("hostapd_parse_inconsistent", f"{datagram!r} -> {event}")
        if info is not None and len(info.mac) != 6:
            raise Violation("hostapd_parse_sta_bad_mac", repr(datagram))
        # (event_name strips whitespace that is_unsolicited does not: a reply
        # such as b"\x0b<3>X" is named, but only unsolicited datagrams are
        # ever parsed as events, so that is harmless and not checked.)
        del unsolicited

    def execute(self, ops: list) -> None:
        for op in ops:
            kind, ifname = op[0], op[1]
            hostapd = self.hostapd[ifname]
            if kind == "attach":
                hostapd.table = op[2]
                self._allow_table(ifname, op[2])
                if ifname not in self.tasks:
                    self._attach(ifname)
            elif kind == "event":
                self._parse_checks(ifname, op[2])
                self._allow(ifname, op[2])
                ctrl = self.ctrls.get(ifname)
                if ctrl is not None:
                    ctrl.datagram_received(op[2], None)
            elif kind == "table":
                hostapd.table = op[2]
                self._allow_table(ifname, op[2])
                for reply in op[2]:
                    self._parse_checks(ifname, reply)
            elif kind == "tick":
                hostapd.ping_answer = op[3]
                self.loop.virtual_now += op[2]
            elif kind == "kick":
                hostapd.kick_answer = b"OK\n" if op[3] else b"FAIL\n"
                self.loop.create_task(self._kick(ifname, op[2]))
            elif kind == "reply":
                self._parse_checks(ifname, op[2])
                ctrl = self.ctrls.get(ifname)
                if ctrl is not None:
                    ctrl.datagram_received(op[2], None)
            elif kind == "terminate":
                ctrl = self.ctrls.get(ifname)
                if ctrl is not None:
                    ctrl.datagram_received(b"<3>CTRL-EVENT-TERMINATING", None)
            self._spin()
        if self.crashes:
            exc = self.crashes.pop(0)
            self.crashes.clear()
            raise exc

    async def _kick(self, ifname: str, mac: bytes) -> None:
        try:
            await self.source.kick(ifname, mac)
        except OSError:
            pass  # documented: HostapdError, TimeoutError when hostapd refuses or is gone

    def check(self) -> None:
        errors = self._source_errors()
        if errors != self.errors_seen:
            self.errors_seen = errors
            raise Violation("contained:hostapd_station_source", f"{errors} failures")
        events, self.events = self.events, []
        for event in events:
            if len(event.mac) != 6 or event.ifname not in IFNAMES:
                raise Violation("hostapd_bad_event", repr(event))
            if event.associated and event.mac not in self.allowed[event.ifname]:
                raise Violation("claim_without_authorized",
                                f"{event.ifname} {event.mac.hex()} reported in without "
                                "AP-STA-CONNECTED or [AUTHORIZED]")
        for ifname, macs in self.source._present.items():
            if len(macs) > 4 * len(CLIENT_MACS) + 1024:
                raise Violation("unbounded_stations", f"{ifname}: {len(macs)}")

    def stats(self) -> dict:
        return {"attachments": self.attachments, "datagrams_parsed": self.parsed,
                "station_events": self.reported}

    def close(self) -> None:
        try:
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            self.loop.close()
