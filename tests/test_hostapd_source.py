"""HostapdStationSource against real hostapd + wpa_supplicant (netlab).

hostapd runs in an AP namespace (driver=wired, 802.1X, EAP-MD5); the test
process talks to its control socket directly: unix sockets are files, so no
need to enter the namespace.  The source runs in this process's event loop;
lab operations (short subprocess calls) are made from the coroutine itself.

Timings (hostapd/wpa_supplicant 2.10): a fresh supplicant waits ~2 s before
its first EAPOL-Start; a reauthentication takes milliseconds; a station that
was deauthenticated or logged off stays in hostapd's table, unauthorized,
for 5 s (AP_MAX_INACTIVITY_AFTER_DEAUTH).
"""

import asyncio
import glob
import os
import signal
import socket
import time

import pytest

import netlab
from sroamd.stations import StationEvent
from sroamd.stations_hostapd import (HostapdError, HostapdStationSource,
                                     parse_mac)

REASON = netlab.missing_requirements("hostapd", "hostapd_cli",
                                     "wpa_supplicant", "wpa_cli")


@pytest.fixture
def lab():
    if REASON:
        pytest.skip(f"needs a network lab: {REASON}")
    with netlab.Lab() as lab:
        yield lab


def mac(client) -> bytes:
    return netlab.mac_bytes(client.mac)


class Running:
    """A source running as a task; its events land in a queue."""

    def __init__(self, source: HostapdStationSource):
        self.source = source
        self.queue: asyncio.Queue[StationEvent] = asyncio.Queue()
        self.task = asyncio.create_task(source.run(self.queue.put_nowait))

    async def next(self, timeout: float = 5.0) -> StationEvent:
        get = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait([get, self.task], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        if self.task in done:
            self.task.result()  # raises what killed run()
            raise AssertionError("run() returned")
        raise TimeoutError(f"no station event within {timeout}s")

    async def expect(self, want: StationEvent, timeout: float = 5.0) -> list:
        """Wait for `want`; return the events seen before it."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.next(max(0.01, deadline - time.monotonic()))
            if ev == want:
                return seen
            seen.append(ev)

    async def quiet(self, duration: float) -> None:
        """Assert that no event arrives for `duration` seconds."""
        try:
            ev = await self.next(duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {ev}")

    async def until_attached(self, *ifnames: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while not all(self.source.attached(i) for i in ifnames):
            if self.task.done():
                self.task.result()
            assert time.monotonic() < deadline, f"not attached to {ifnames}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def source_for(lab, hapd, **kw) -> HostapdStationSource:
    """A source for hapd's interface; quick PINGs, local sockets in lab."""
    local = os.path.join(lab.dir, "local")
    os.makedirs(local, exist_ok=True)
    opts = {"ping_interval": 0.3, "timeout": 2.0, "backoff_max": 0.5,
            "local_dir": local} | kw
    return HostapdStationSource([hapd.ifname], hapd.ctrl_dir, **opts)


def local_sockets(lab) -> list[str]:
    return glob.glob(os.path.join(lab.dir, "local", "*"))


def test_waits_for_hostapd_then_connect_and_logoff(lab):
    """Started before hostapd; then a station connects and logs off."""
    ap = lab.access_point("ap1")
    c = lab.client("c1", ap)
    ctrl_dir = os.path.join(lab.dir, "hostapd-ctrl")
    source = HostapdStationSource(["wl0"], ctrl_dir, ping_interval=0.3,
                                  timeout=2.0, backoff_max=0.3,
                                  local_dir=lab.dir)

    async def main():
        run = Running(source)
        await asyncio.sleep(0.5)  # the socket is not there: retried
        assert not source.attached("wl0")
        lab.hostapd(ap, ctrl_dir=ctrl_dir)
        await run.until_attached("wl0")
        supp = lab.wpa_supplicant(c)
        assert await run.next() == StationEvent("wl0", mac(c), True)
        supp.logoff()  # EAPOL-Logoff
        assert await run.next(2) == StationEvent("wl0", mac(c), False)
        await run.stop()

    asyncio.run(main())
    assert not glob.glob(os.path.join(lab.dir, "sroamd-hostapd-*"))


def test_reports_stations_present_before_start(lab):
    """Enumeration at start; an unauthorized leftover is not reported."""
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    c1 = lab.client("c1", ap)
    c2 = lab.client("c2", ap)
    s1 = lab.wpa_supplicant(c1)
    s2 = lab.wpa_supplicant(c2)
    s1.wait_authorized()
    s2.wait_authorized()
    hapd.cli("deauthenticate", c2.mac)  # stays listed 5 s, unauthorized
    assert c2.mac in hapd.all_sta() and not hapd.authorized(c2.mac)
    assert hapd.authorized(c1.mac)

    async def main():
        run = Running(source_for(lab, hapd))
        event = await run.next(2)
        assert event == StationEvent("wl0", mac(c1), True)
        assert event.listed  # listed by hostapd, not announced (roaming's local truth)
        await run.quiet(0.5)
        await run.stop()

    asyncio.run(main())
    assert local_sockets(lab) == []


def test_kick(lab):
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    c = lab.client("c1", ap)
    lab.wpa_supplicant(c).wait_authorized()

    async def main():
        source = source_for(lab, hapd)
        run = Running(source)
        assert await run.next(2) == StationEvent("wl0", mac(c), True)
        await source.kick("wl0", mac(c))
        assert await run.next(2) == StationEvent("wl0", mac(c), False)
        assert not hapd.authorized(c.mac)
        with pytest.raises(HostapdError):
            await source.kick("wl9", mac(c))  # not an interface of ours
        await run.stop()
        with pytest.raises(HostapdError):
            await source.kick("wl0", mac(c))  # not running: not attached

    asyncio.run(main())
    # hostapd drops a deauthenticated station 5 s later
    netlab.wait_for(lambda: c.mac not in hapd.all_sta(), 8.0,
                    what=f"{c.mac} to leave all_sta")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_hostapd_restart(lab, how):
    """SIGKILL (stale socket: found by PING) or SIGTERM (hostapd says
    CTRL-EVENT-TERMINATING): the source attaches to the new hostapd."""
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    c = lab.client("c1", ap)
    supp = lab.wpa_supplicant(c)
    supp.wait_authorized()

    async def main():
        source = source_for(lab, hapd)
        run = Running(source)
        assert await run.next(2) == StationEvent("wl0", mac(c), True)
        t = time.monotonic()
        hapd.kill() if how == "kill" else hapd.stop()
        hapd.start()
        # The new hostapd does not know the station: reported gone, at the
        # latest when the source is attached again (the old hostapd said so
        # itself when stopped cleanly).
        assert await run.next(3) == StationEvent("wl0", mac(c), False)
        await run.until_attached("wl0", timeout=3)
        reattached = time.monotonic() - t
        assert reattached < 2.0, reattached
        supp.reauthenticate()  # the supplicant still thinks it is authorized
        assert await run.next(3) == StationEvent("wl0", mac(c), True)
        assert len(local_sockets(lab)) == 1  # the old one was removed
        await run.stop()

    asyncio.run(main())
    assert local_sockets(lab) == []


def test_roam_between_two_hostapds(lab):
    """One source, two interfaces (APs wl0 and wl1 sharing a ctrl_dir):
    a client roams from one to the other, the old one kicks it."""
    ctrl_dir = os.path.join(lab.dir, "hostapd-ctrl")
    ap1 = lab.access_point("ap1", ifname="wl0")
    ap2 = lab.access_point("ap2", ifname="wl1")
    h1 = lab.hostapd(ap1, ctrl_dir=ctrl_dir)
    h2 = lab.hostapd(ap2, ctrl_dir=ctrl_dir)
    c = lab.client("c1", ap1)

    async def main():
        source = HostapdStationSource(["wl0", "wl1"], ctrl_dir,
                                      ping_interval=0.3, timeout=2.0,
                                      local_dir=lab.dir)
        run = Running(source)
        await run.until_attached("wl0", "wl1")
        supp = lab.wpa_supplicant(c)
        assert await run.next() == StationEvent("wl0", mac(c), True)
        lab.roam(c, ap2)
        supp.reauthenticate()
        assert await run.next(2) == StationEvent("wl1", mac(c), True)
        assert h1.authorized(c.mac)  # wired: the old AP notices nothing...
        await source.kick("wl0", mac(c))  # ...so sroamd kicks it there
        assert await run.next(2) == StationEvent("wl0", mac(c), False)
        assert h2.authorized(c.mac) and not h1.authorized(c.mac)
        await run.quiet(0.3)
        await run.stop()

    asyncio.run(main())


def test_hostapd_frozen(lab):
    """A hostapd that stops answering (SIGSTOP): PING times out, the source
    lets go and attaches again once hostapd answers."""
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    c = lab.client("c1", ap)
    supp = lab.wpa_supplicant(c)
    supp.wait_authorized()

    async def main():
        source = source_for(lab, hapd, ping_interval=0.2, timeout=0.3)
        run = Running(source)
        assert await run.next(2) == StationEvent("wl0", mac(c), True)
        hapd.proc.signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 2
            while source.attached("wl0"):
                assert time.monotonic() < deadline, "still attached"
                await asyncio.sleep(0.02)
        finally:
            hapd.proc.signal(signal.SIGCONT)
        await run.until_attached("wl0", timeout=3)
        # still there: reported again on attaching
        assert await run.next(2) == StationEvent("wl0", mac(c), True)
        supp.logoff()
        assert await run.next(2) == StationEvent("wl0", mac(c), False)
        await run.stop()

    asyncio.run(main())
    assert local_sockets(lab) == []


def test_failed_8021x_is_never_reported(lab):
    """A station that hostapd knows (EAPOL-Start, EAP) but that fails
    802.1X (wrong password) is reported neither by an event nor by the
    enumeration on attaching; one that succeeds next to it is."""
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    good = lab.client("c1", ap)
    bad = lab.client("c2", ap)

    async def main():
        run = Running(source_for(lab, hapd))
        await run.until_attached("wl0")
        with hapd.monitor() as mon:
            lab.wpa_supplicant(bad, password="wrong")
            mon.wait_event(f"CTRL-EVENT-EAP-FAILURE", timeout=10)
        assert bad.mac in hapd.all_sta() and not hapd.authorized(bad.mac)
        lab.wpa_supplicant(good)
        assert await run.next(8) == StationEvent("wl0", mac(good), True)
        await run.quiet(0.5)
        await run.stop()
        # Attaching again: the enumeration lists the failed one unauthorized.
        assert bad.mac in hapd.all_sta()
        run = Running(source_for(lab, hapd))
        assert await run.next(2) == StationEvent("wl0", mac(good), True)
        await run.quiet(0.5)
        await run.stop()

    asyncio.run(main())


def test_on_event_raising_once_keeps_the_source_going(lab):
    """on_event raises for the first station (as a malformed lease once made
    routes.py raise into the source, which then stopped with DETACH): the
    source stays attached and the next station is reported."""
    ap = lab.access_point("ap1")
    hapd = lab.hostapd(ap)
    c1 = lab.client("c1", ap)
    c2 = lab.client("c2", ap)

    async def main():
        source = source_for(lab, hapd)
        queue = asyncio.Queue()
        raised = []

        def on_event(event):
            if not raised:
                raised.append(event)
                raise ValueError("bad lease key")
            queue.put_nowait(event)

        task = asyncio.create_task(source.run(on_event))
        deadline = time.monotonic() + 5
        while not source.attached("wl0"):
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        lab.wpa_supplicant(c1)
        deadline = time.monotonic() + 8
        while not raised:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        assert raised == [StationEvent("wl0", mac(c1), True)]
        lab.wpa_supplicant(c2)
        assert await asyncio.wait_for(queue.get(), 8) == StationEvent("wl0", mac(c2), True)
        assert source.attached("wl0") and not task.done()
        assert source.status()["event_errors"] == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


# -- enumeration logic against a scripted control connection (no hostapd) --

A, B = "02:00:5e:10:00:0a", "02:00:5e:10:00:0b"


class ScriptedCtrl:
    def __init__(self, script: dict[str, list[bytes]]):
        self.script = script
        self.sent = []

    async def request(self, command: str) -> bytes:
        self.sent.append(command)
        return self.script[command].pop(0)


def sta(mac: str, flags: str) -> bytes:
    return f"{mac}\nflags={flags}\naid=1\n".encode()


def test_enumerate_only_authorized():
    ctrl = ScriptedCtrl({"STA-FIRST": [sta(A, "[AUTH][ASSOC][AUTHORIZED]")],
                         f"STA-NEXT {A}": [sta(B, "[AUTH]")],
                         f"STA-NEXT {B}": [b""]})
    source = HostapdStationSource(["wl0"])
    assert list(asyncio.run(source._enumerate(ctrl))) == [parse_mac(A)]
    assert ctrl.sent == ["STA-FIRST", f"STA-NEXT {A}", f"STA-NEXT {B}"]


def test_enumerate_starts_over_when_a_station_leaves_midway():
    ctrl = ScriptedCtrl({"STA-FIRST": [sta(A, "[AUTHORIZED]"),
                                       sta(B, "[AUTHORIZED]")],
                         f"STA-NEXT {A}": [b"FAIL\n"],
                         f"STA-NEXT {B}": [b""]})
    source = HostapdStationSource(["wl0"])
    assert list(asyncio.run(source._enumerate(ctrl))) == [parse_mac(B)]


def test_resync_reports_vanished_stations():
    ctrl = ScriptedCtrl({"STA-FIRST": [sta(B, "[AUTHORIZED]")],
                         f"STA-NEXT {B}": [b""]})
    source = HostapdStationSource(["wl0"])
    source._present["wl0"] = {parse_mac(A), parse_mac(B)}
    events = []
    asyncio.run(source._resync("wl0", ctrl, events.append))
    assert events == [StationEvent("wl0", parse_mac(A), False),
                      StationEvent("wl0", parse_mac(B), True)]
    assert source._present["wl0"] == {parse_mac(B)}


# -- against a scripted stand-in for hostapd's socket (no root needed) ----

class FakeHostapd(asyncio.DatagramProtocol):
    """Answers like hostapd's control socket; `after` maps a command to
    events sent right after its reply."""

    def __init__(self, stations: list[str], after: dict[str, list[str]] = {}):
        self.stations = list(stations)
        self.after = {k: list(v) for k, v in after.items()}
        self.monitors = []

    def datagram_received(self, data, addr):
        cmd = data.decode()
        if cmd == "ATTACH":
            self.monitors.append(addr)
            reply = "OK\n"
        elif cmd == "DETACH":
            self.monitors.remove(addr)
            reply = "OK\n"
        elif cmd == "PING":
            reply = "PONG\n"
        elif cmd == "STA-FIRST" or cmd.startswith("STA-NEXT "):
            i = 0 if cmd == "STA-FIRST" else self.stations.index(cmd[9:]) + 1
            reply = (f"{self.stations[i]}\nflags=[AUTHORIZED]\n"
                     if i < len(self.stations) else "")
        elif cmd.startswith("DEAUTHENTICATE "):
            mac = cmd.split()[1]
            if mac in self.stations:
                self.stations.remove(mac)
                self.after.setdefault(cmd, []).append(
                    f"AP-STA-DISCONNECTED {mac}")
            reply = "OK\n"
        else:
            reply = "UNKNOWN COMMAND\n"
        # the raw socket: asyncio's sendto() drops empty datagrams, and
        # hostapd ends a station list with one
        self.send(reply, addr)
        for event in self.after.pop(cmd, []):
            for monitor in self.monitors:
                self.send(f"<3>{event}", monitor)

    def send(self, text, addr):
        try:
            self.sock.sendto(text.encode(), addr)
        except OSError:  # a client gone (e.g. after DETACH): as hostapd
            pass


async def fake_hostapd(path, *args):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    fake = FakeHostapd(*args)
    fake.sock = sock
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: fake, sock=sock)
    return transport, fake


def test_fake_event_after_snapshot_wins(tmp_path):
    """A station that leaves right after the listing ends up gone."""
    async def main():
        transport, _ = await fake_hostapd(
            tmp_path / "wl0", [A],
            {f"STA-NEXT {A}": [f"AP-STA-DISCONNECTED {A}"]})
        source = HostapdStationSource(["wl0"], str(tmp_path),
                                      local_dir=str(tmp_path))
        run = Running(source)
        assert await run.next(1) == StationEvent("wl0", parse_mac(A), True)
        assert await run.next(1) == StationEvent("wl0", parse_mac(A), False)
        await run.stop()
        transport.close()

    asyncio.run(main())
    assert sorted(os.listdir(tmp_path)) == ["wl0"]  # our socket is gone


def test_fake_kick_and_on_event_error(tmp_path):
    """kick sends DEAUTHENTICATE; an exception from on_event is contained:
    counted, and the source goes on with the next events."""
    async def main():
        transport, fake = await fake_hostapd(tmp_path / "wl0", [A, B])
        source = HostapdStationSource(["wl0"], str(tmp_path),
                                      local_dir=str(tmp_path))
        events = []

        def on_event(ev):
            events.append(ev)
            if not ev.associated:
                raise KeyError("boom")

        task = asyncio.create_task(source.run(on_event))
        async with asyncio.timeout(2):
            while len(events) < 2:
                await asyncio.sleep(0.01)
        await source.kick("wl0", parse_mac(A))
        await source.kick("wl0", parse_mac(B))
        async with asyncio.timeout(2):
            while len(events) < 4:
                await asyncio.sleep(0.01)
        assert events == [StationEvent("wl0", parse_mac(A), True),
                          StationEvent("wl0", parse_mac(B), True),
                          StationEvent("wl0", parse_mac(A), False),
                          StationEvent("wl0", parse_mac(B), False)]
        assert not task.done() and source.attached("wl0")
        assert source.status()["event_errors"] == 2
        assert fake.stations == []
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        transport.close()

    asyncio.run(main())
    assert sorted(os.listdir(tmp_path)) == ["wl0"]


def test_fake_garbage_events_are_skipped(tmp_path):
    """Events that are not station events, or malformed, change nothing."""
    async def main():
        transport, fake = await fake_hostapd(
            tmp_path / "wl0", [A],
            {f"STA-NEXT {A}": ["AP-STA-CONNECTED", "AP-STA-CONNECTED 02:00",
                               "AP-STA-DISCONNECTED zz:00:5e:10:00:0a",
                               "\xff\xfe garbage", f"AP-STA-POSSIBLE-PSK-MISMATCH {B}",
                               f"AP-STA-CONNECTED {B}"]})
        source = HostapdStationSource(["wl0"], str(tmp_path),
                                      local_dir=str(tmp_path))
        run = Running(source)
        assert await run.next(1) == StationEvent("wl0", parse_mac(A), True)
        assert await run.next(1) == StationEvent("wl0", parse_mac(B), True)
        await run.quiet(0.2)
        assert source.status()["event_errors"] == 0
        await run.stop()
        transport.close()

    asyncio.run(main())
