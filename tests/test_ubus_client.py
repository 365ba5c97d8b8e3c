"""The asyncio ubus client and the hostapd station source, against the test broker."""

import asyncio
import functools
import os
import shutil
import tempfile

import pytest

from sroamd.stations import StationEvent
from sroamd.stations_ubus import UbusStationSource
from sroamd.ubus_client import UbusClient, UbusError
from ubus_broker import UbusBroker

WAIT = 3.0      # for something that should happen at once


def async_test(fn):
    """Run a coroutine test in its own event loop, with an overall deadline."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 15))
    return wrapper


@pytest.fixture
def sock():
    d = tempfile.mkdtemp(prefix="ubus")     # short: unix socket paths are limited to 108 bytes
    yield os.path.join(d, "ubus.sock")
    shutil.rmtree(d)


def client(sock):
    return UbusClient(sock, timeout=WAIT, min_backoff=0.01, max_backoff=0.05)


async def next_item(queue):
    return await asyncio.wait_for(queue.get(), WAIT)


async def other_client_sees_notify(publisher, obj):
    """Return once ubusd has handled everything ``publisher`` sent before."""
    await publisher.lookup(obj.path)


HOSTAPD_SIGNATURE = {"get_clients": {}, "del_client": {"addr": "string", "reason": "int32",
                                                       "deauth": "bool", "ban_time": "int32"}}


class FakeHostapd:
    """A stand-in for hostapd.<ifname> as OpenWrt's hostapd publishes it (there
    is no ubusd, let alone hostapd with ubus support, on this machine): its
    get_clients reply, its notifications and their payloads, from OpenWrt's
    package/network/services/hostapd/src/src/ap/ubus.c.

    ``clients``: hostapd's station table, as get_clients lists it.
    ``says_authorized=False``: an older hostapd that never sends
    sta-authorized (only get_clients tells).  ``wired=True``: the
    hostapd_wired object (driver=wired), whose get_clients lists only the
    authorized flag."""

    def __init__(self, sock, ifname, macs=(), says_authorized=True, wired=False):
        self.client = client(sock)
        self.ifname = ifname
        self.says_authorized = says_authorized
        self.wired = wired
        self.clients = {m: self._entry(True) for m in macs}
        self.del_client = asyncio.Queue()
        self.listed = 0     # get_clients calls answered
        self.obj = None

    def _entry(self, authorized):
        if self.wired:
            return {"authorized": authorized}
        return {"auth": True, "assoc": True, "authorized": authorized, "preauth": False,
                "wmm": True, "aid": 1}

    async def start(self):
        await self.client.connect()
        methods = {"get_clients": (self._get_clients, {})}
        if not self.wired:
            methods["del_client"] = (self._del_client, HOSTAPD_SIGNATURE["del_client"])
        self.obj = await self.client.add_object("hostapd." + self.ifname, methods)
        return self

    async def stop(self):
        await self.client.close()

    async def _get_clients(self, args):
        self.listed += 1
        if self.wired:
            return {"clients": self.clients}
        return {"freq": 2437, "clients": self.clients}

    async def _del_client(self, args):
        self.del_client.put_nowait(args)

    async def notify(self, method, mac, **extra):
        await self.obj.notify(method, {"address": mac, **extra})

    async def assoc(self, mac, authorized=True):
        """A station associates: the association request, then (unless
        authorized=False: WPA/802.1X not done, or failed) hostapd authorizes
        it, as on an open network."""
        self.clients[mac] = self._entry(False)
        await self.notify("assoc", mac, target="02:00:00:00:01:00", freq=2437, signal=-42)
        if authorized:
            await self.authorized(mac)

    async def authorized(self, mac):
        """hostapd authorizes the station (sta-authorized, if this hostapd says so)."""
        self.clients.setdefault(mac, self._entry(True))["authorized"] = True
        if self.says_authorized:
            await self.notify("sta-authorized", mac, ifname=self.ifname, **{"auth-alg": "open"})

    async def disassoc(self, mac):
        await self.leave("disassoc", mac)

    async def leave(self, method, mac):
        """The station leaves; method: disassoc, deauth, local-deauth, inactive-deauth."""
        self.clients.pop(mac, None)
        await self.notify(method, mac)


async def echo(args):
    return {"echo": args}


# --- requests -----------------------------------------------------------------

@async_test
async def test_lookup(sock):
    async with UbusBroker(sock), client(sock) as pub, client(sock) as c:
        for name in ("hostapd.wlan0", "hostapd.wlan1", "other"):
            await pub.add_object(name, {"echo": (echo, {}),
                                        "del_client": (echo, HOSTAPD_SIGNATURE["del_client"])})
        found = await c.lookup("hostapd.*")
        assert [o.path for o in found] == ["hostapd.wlan0", "hostapd.wlan1"]
        assert found[0].signature == {"echo": {}, "del_client": {
            "addr": 3, "reason": 5, "deauth": 7, "ban_time": 5}}
        assert found[0].id != found[1].id
        assert [o.path for o in await c.lookup()] == ["hostapd.wlan0", "hostapd.wlan1", "other"]
        assert await c.lookup_id("other") == (await c.lookup("other"))[0].id
        for missing in ("nosuch", "nosuch.*"):
            with pytest.raises(UbusError) as e:
                await c.lookup(missing)
            assert e.value.status == "NOT_FOUND" and e.value.code == 4


@async_test
async def test_call_results_and_errors(sock):
    async def refuse(args):
        raise UbusError("INVALID_ARGUMENT")

    async def crash(args):
        raise RuntimeError("bug")

    async with UbusBroker(sock), client(sock) as pub, client(sock) as c:
        obj = await pub.add_object("test", {
            "echo": (echo, {}), "refuse": (refuse, {}), "crash": (crash, {}),
            "nothing": (lambda args: None, {}), "sync": (lambda args: {"n": len(args)}, {}),
            "unencodable": (lambda args: {"x": object()}, {})})
        assert await c.call("test", "echo", {"a": [1, True]}) == {"echo": {"a": [1, True]}}
        assert await c.call(obj.id, "sync", {"x": 1, "y": 2}) == {"n": 2}
        assert await c.call("test", "nothing") == {}
        for path, method, status in [("test", "nosuch", "METHOD_NOT_FOUND"),
                                     ("nosuch", "echo", "NOT_FOUND"),
                                     (12345678, "echo", "NOT_FOUND"),
                                     ("test", "refuse", "INVALID_ARGUMENT"),
                                     ("test", "crash", "UNKNOWN_ERROR"),
                                     ("test", "unencodable", "UNKNOWN_ERROR")]:
            with pytest.raises(UbusError) as e:
                await c.call(path, method)
            assert e.value.status == status, (path, method)
            assert str(e.value) == status
        with pytest.raises(ValueError):     # UbusFormatError: nothing sent
            await c.call("test", "echo", {"x": object()})
        # still usable after the errors
        assert await c.call("test", "echo") == {"echo": {}}


@async_test
async def test_call_timeout_and_late_reply(sock):
    release = asyncio.Event()

    async def slow(args):
        await release.wait()
        return {"late": True}

    async with UbusBroker(sock), client(sock) as pub, client(sock) as c:
        await pub.add_object("slow", {"slow": (slow, {}), "echo": (echo, {})})
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(UbusError) as e:
            await c.call("slow", "slow", timeout=0.2)
        assert e.value.status == "TIMEOUT"
        assert 0.15 < loop.time() - start < 1.5
        release.set()       # the late reply must not be taken for the next call's
        assert await c.call("slow", "echo", {"i": 1}) == {"echo": {"i": 1}}
        assert await c.call("slow", "slow") == {"late": True}


# --- subscriptions ------------------------------------------------------------

@async_test
async def test_subscribe_receives_notifications_in_order(sock):
    async with UbusBroker(sock) as broker, client(sock) as c:
        hostapd = await FakeHostapd(sock, "wlan0").start()
        notes, states = asyncio.Queue(), asyncio.Queue()
        sub = await c.subscribe("hostapd.wlan0", lambda m, d: notes.put_nowait((m, d)),
                                states.put_nowait)
        assert await next_item(states) is True and sub.active
        await hostapd.assoc("aa:bb:cc:dd:ee:01", authorized=False)
        await hostapd.authorized("aa:bb:cc:dd:ee:01")
        await hostapd.disassoc("aa:bb:cc:dd:ee:01")
        assert await next_item(notes) == ("assoc", {
            "address": "aa:bb:cc:dd:ee:01", "target": "02:00:00:00:01:00", "freq": 2437,
            "signal": -42})
        assert (await next_item(notes))[0] == "sta-authorized"
        assert await next_item(notes) == ("disassoc", {"address": "aa:bb:cc:dd:ee:01"})

        target = broker.paths["hostapd.wlan0"]
        assert len(target.subscribers) == 1
        await c.unsubscribe(sub)
        await c.lookup("hostapd.wlan0")     # ubusd has handled the unsubscription
        assert target.subscribers == [] and not sub.active
        await hostapd.stop()


@async_test
async def test_subscription_waits_for_object_and_follows_it(sock):
    async with UbusBroker(sock), client(sock) as c:
        notes, states = asyncio.Queue(), asyncio.Queue()
        sub = await c.subscribe("hostapd.wlan1", lambda m, d: notes.put_nowait(m),
                                states.put_nowait)
        assert not sub.active
        # appears later
        first = await FakeHostapd(sock, "wlan1").start()
        assert await next_item(states) is True
        await first.assoc("aa:bb:cc:dd:ee:01", authorized=False)
        assert await next_item(notes) == "assoc"
        # removed, then published again
        await first.obj.remove()
        assert await next_item(states) is False and not sub.active
        await first.client.add_object("hostapd.wlan1", {})
        assert await next_item(states) is True
        # its owner goes away (hostapd restart), a new one comes
        await first.stop()
        assert await next_item(states) is False
        second = await FakeHostapd(sock, "wlan1").start()
        assert await next_item(states) is True
        await second.disassoc("aa:bb:cc:dd:ee:01")
        assert await next_item(notes) == "disassoc"
        await second.stop()


# --- publishing -----------------------------------------------------------------

@async_test
async def test_add_object_serves_calls(sock):
    calls = []

    async def status(args):
        calls.append(args)
        return {"clients": 2, "uptime": 1.5, "ok": True}

    async with UbusBroker(sock), client(sock) as daemon, client(sock) as cli:
        obj = await daemon.add_object("sroamd", {"status": (status, {}),
                                                 "leases": (echo, {"mac": "string"})})
        info = (await cli.lookup("sroamd"))[0]
        assert info.id == obj.id and info.signature == {"status": {}, "leases": {"mac": 3}}
        assert await cli.call("sroamd", "status", {"verbose": True}) == {
            "clients": 2, "uptime": 1.5, "ok": True}
        assert calls == [{"verbose": True}]
        assert await cli.call("sroamd", "leases", {"mac": "x"}) == {"echo": {"mac": "x"}}
        # the path is taken: a second publisher is refused, and not retried later
        with pytest.raises(UbusError) as e:
            await cli.add_object("sroamd", {})
        assert e.value.status == "INVALID_ARGUMENT"
        assert not any(getattr(r, "path", None) == "sroamd" for r in cli._regs)
        with pytest.raises(ValueError):
            await daemon.add_object("bad", {"m": (echo, {"x": "nosuch"})})
        await obj.remove()
        with pytest.raises(UbusError) as e:
            await cli.call("sroamd", "status")
        assert e.value.status == "NOT_FOUND"


# --- events -----------------------------------------------------------------------

@async_test
async def test_events(sock):
    async with UbusBroker(sock), client(sock) as a, client(sock) as b:
        roams, everything, objects = asyncio.Queue(), asyncio.Queue(), asyncio.Queue()
        await a.listen("sroamd.*", lambda ev, d: roams.put_nowait((ev, d)))
        await a.listen("*", lambda ev, d: everything.put_nowait(ev))
        await a.listen("ubus.object.*", lambda ev, d: objects.put_nowait((ev, d["path"])))
        own = asyncio.Queue()
        await b.listen("*", lambda ev, d: own.put_nowait(ev))

        await b.send_event("sroamd.roam", {"mac": "aa:bb:cc:dd:ee:02", "node": 7})
        assert await next_item(roams) == ("sroamd.roam", {"mac": "aa:bb:cc:dd:ee:02", "node": 7})
        assert await next_item(everything) == "sroamd.roam"
        await b.send_event("other.thing")
        assert await next_item(everything) == "other.thing"

        obj = await b.add_object("thing", {})
        assert await next_item(objects) == ("ubus.object.add", "thing")
        await obj.remove()
        assert await next_item(objects) == ("ubus.object.remove", "thing")
        # b heard the object events, but never its own events: they came first
        await a.send_event("from.a")
        assert [await next_item(own) for _ in range(3)] == [
            "ubus.object.add", "ubus.object.remove", "from.a"]
        assert roams.empty()
        with pytest.raises(UbusError) as e:
            await a.send_event("ubus.fake")
        assert e.value.status == "PERMISSION_DENIED"


# --- ubusd going away ---------------------------------------------------------------

@async_test
async def test_reconnects_and_restores_everything(sock):
    broker = UbusBroker(sock)
    await broker.start()
    c, other = client(sock), client(sock)
    await c.connect()
    await other.connect()
    hostapd = await FakeHostapd(sock, "wlan0").start()

    await c.add_object("sroamd", {"status": (lambda args: {"up": True}, {})})
    roams, notes, states = asyncio.Queue(), asyncio.Queue(), asyncio.Queue()
    await c.listen("sroamd.*", lambda ev, d: roams.put_nowait(d))
    await c.subscribe("hostapd.wlan0", lambda m, d: notes.put_nowait(m), states.put_nowait)
    assert await next_item(states) is True
    first_peer = c.peer_id

    reached, never = asyncio.Event(), asyncio.Event()

    async def hang(args):
        reached.set()
        await never.wait()

    await hostapd.client.add_object("hang", {"m": (hang, {})})
    pending = asyncio.create_task(c.call("hang", "m", timeout=10))
    await asyncio.wait_for(reached.wait(), WAIT)
    await broker.stop()
    for x in (c, other, hostapd.client):
        await asyncio.wait_for(x.wait_disconnected(), WAIT)
    with pytest.raises(UbusError) as e:
        await asyncio.wait_for(pending, WAIT)
    assert e.value.status == "CONNECTION_FAILED"
    assert not c.connected

    # a request made while ubusd is away waits for it (within its timeout)
    waiting = asyncio.create_task(other.lookup())
    await asyncio.sleep(0)
    assert not waiting.done()
    await broker.start()
    for x in (c, other, hostapd.client):
        await asyncio.wait_for(x.wait_connected(), WAIT)
    assert c.peer_id != first_peer

    assert await next_item(states) is True      # resubscribed
    await hostapd.assoc("aa:bb:cc:dd:ee:01", authorized=False)
    assert await next_item(notes) == "assoc"
    assert isinstance(await asyncio.wait_for(waiting, WAIT), list)
    assert await other.call("sroamd", "status") == {"up": True}
    await other.send_event("sroamd.roam", {"n": 1})
    assert await next_item(roams) == {"n": 1}

    for x in (c, other):
        await x.close()
    await hostapd.stop()
    await broker.stop()


@async_test
async def test_connect_waits_for_ubusd(sock):
    c = client(sock)
    connecting = asyncio.create_task(c.connect())
    await asyncio.sleep(0.05)       # a few refused attempts
    assert not connecting.done()
    async with UbusBroker(sock):
        await asyncio.wait_for(connecting, WAIT)
        assert c.connected and c.peer_id
        await c.close()


# --- the hostapd station source ---------------------------------------------------------
#
# Against FakeHostapd on the test broker (speaking ubusd's bytes): the
# notifications and get_clients replies of OpenWrt's hostapd.

MAC1, MAC2, MAC3, MAC4 = (bytes.fromhex("aabbccddee0%d" % i) for i in (1, 2, 3, 4))
S1, S2, S3, S4 = (":".join("%02x" % b for b in m) for m in (MAC1, MAC2, MAC3, MAC4))


async def start_source(sock, ifnames, on_event=None, **kw):
    events = asyncio.Queue()
    source = UbusStationSource(ifnames, socket_path=sock, **kw)
    task = asyncio.create_task(source.run(on_event or events.put_nowait))
    return source, task, events


async def stop_source(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def until(predicate, timeout=WAIT):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@async_test
async def test_station_source_claims_only_authorized_stations_and_kicks(sock):
    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0", [S1]).start()
        hostapd.clients["aa:bb:cc:dd:ee:09"] = {"auth": True, "assoc": False,
                                                "authorized": False}
        source, task, events = await start_source(sock, ["wlan0"])
        assert await next_item(events) == StationEvent("wlan0", MAC1, True)     # get_clients

        # The association request alone (WPA not done) claims nothing; the
        # next event is the next station's, authorized.
        await hostapd.assoc(S2, authorized=False)
        await hostapd.assoc(S3)                            # assoc + sta-authorized
        assert await next_item(events) == StationEvent("wlan0", MAC3, True)
        await hostapd.authorized(S2)                       # now it is in
        assert await next_item(events) == StationEvent("wlan0", MAC2, True)
        await hostapd.notify("probe", "aa:bb:cc:dd:ee:07")  # not a station event
        await hostapd.notify("key-mismatch", S4)           # a failed handshake: nothing
        await hostapd.disassoc(S1)
        assert await next_item(events) == StationEvent("wlan0", MAC1, False)
        await hostapd.disassoc(S1)                         # not ours any more: nothing
        await hostapd.authorized(S3)                       # authorized again: reported again
        assert await next_item(events) == StationEvent("wlan0", MAC3, True)

        await source.kick("wlan0", MAC2)
        args = await next_item(hostapd.del_client)
        assert args == {"addr": "aa:bb:cc:dd:ee:02", "reason": 5, "deauth": True, "ban_time": 0}
        assert type(args["deauth"]) is bool and type(args["reason"]) is int
        await source.kick("wlan9", MAC2)                   # no such hostapd: logged, not raised
        assert events.empty()
        assert source.status()["stations"] == 2 and source.status()["event_errors"] == 0
        await stop_source(task)
        await hostapd.stop()


@pytest.mark.parametrize("method", ["disassoc", "deauth", "local-deauth", "inactive-deauth"])
@async_test
async def test_station_source_each_leaving_notification_gives_up(sock, method):
    """The notifications OpenWrt's hostapd sends when a station leaves
    (600-ubus_support.patch: handle_disassoc, handle_deauth, ap_handle_timer,
    and ap_sta_set_authorized_event when authorization ends)."""
    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0", [S1]).start()
        source, task, events = await start_source(sock, ["wlan0"])
        assert await next_item(events) == StationEvent("wlan0", MAC1, True)
        await hostapd.leave(method, S1)
        assert await next_item(events) == StationEvent("wlan0", MAC1, False)
        await stop_source(task)
        await hostapd.stop()


@async_test
async def test_station_source_get_clients_authorized_flag(sock):
    """At start only clients listed "authorized": true count; the wired object
    (driver=wired) lists nothing but that flag; an entry without it never counts."""
    async with UbusBroker(sock):
        wlan0 = await FakeHostapd(sock, "wlan0", [S1]).start()
        wlan0.clients[S2] = {"auth": True, "assoc": True, "authorized": False, "aid": 2}
        wlan0.clients[S3] = {"auth": True, "assoc": True}           # no flag at all
        wlan0.clients["not-a-mac"] = {"authorized": True}
        wired = await FakeHostapd(sock, "eth9", [S4], wired=True).start()
        wired.clients[S2] = {"authorized": False}
        source, task, events = await start_source(sock, ["wlan0", "eth9"])
        got = {await next_item(events) for _ in range(2)}
        assert got == {StationEvent("wlan0", MAC1, True), StationEvent("eth9", MAC4, True)}
        assert all(e.listed for e in got)  # listed by get_clients (roaming's local truth)
        # S2 finishes its 802.1X: the notification claims it
        await wlan0.authorized(S2)
        event = await next_item(events)
        assert event == StationEvent("wlan0", MAC2, True) and not event.listed
        await asyncio.sleep(0.3)
        assert events.empty()
        await stop_source(task)
        for h in (wlan0, wired):
            await h.stop()


@async_test
async def test_station_source_polls_get_clients_without_sta_authorized(sock):
    """An older hostapd that never sends sta-authorized: after an assoc,
    get_clients is polled, and the station is claimed once it is listed
    authorized; one that never is, or that leaves, is forgotten."""
    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0", says_authorized=False).start()
        source, task, events = await start_source(sock, ["wlan0"], poll_first=0.05,
                                                  poll_max_delay=0.2, poll_for=1.5)
        await until(lambda: hostapd.listed)     # subscribed, get_clients answered: nobody
        await hostapd.assoc(S1, authorized=False)
        await hostapd.assoc(S2, authorized=False)
        await hostapd.assoc(S3, authorized=False)
        await asyncio.sleep(0.3)
        assert events.empty() and source.status()["pending"] == 3
        await hostapd.authorized(S1)        # only the table says so
        assert await next_item(events) == StationEvent("wlan0", MAC1, True)
        del hostapd.clients[S3]             # refused or gone, without a word
        await until(lambda: source.status()["pending"] == 1)
        await until(lambda: source.status()["pending"] == 0, timeout=3)   # S2 given up
        status = source.status()
        assert status["authorized_by_polling"] == 1
        assert status["pending_gone"] == 1 and status["pending_expired"] == 1
        assert events.empty()
        # A leaving notification still gives the polled station up.
        await hostapd.disassoc(S1)
        assert await next_item(events) == StationEvent("wlan0", MAC1, False)
        await stop_source(task)
        await hostapd.stop()


@async_test
async def test_station_source_pending_is_bounded(sock):
    """Association requests with random MACs (never authorized) cannot grow
    what the fallback keeps."""
    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0", says_authorized=False).start()
        source, task, events = await start_source(sock, ["wlan0"], max_pending=8,
                                                  poll_first=0.05, poll_for=60)
        await until(lambda: hostapd.listed)
        for i in range(200):
            await hostapd.assoc("02:00:00:%02x:%02x:01" % (i >> 8, i & 255), authorized=False)
        await until(lambda: source.status()["association_requests"] == 200)
        status = source.status()
        assert status["pending"] == 8 and status["pending_full"] == 192
        assert events.empty()
        await stop_source(task)
        await hostapd.stop()


@async_test
async def test_station_source_stops_polling_once_sta_authorized_is_seen(sock):
    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0").start()
        source, task, events = await start_source(sock, ["wlan0"], poll_first=0.05)
        await until(lambda: hostapd.listed)
        await hostapd.assoc(S1)
        assert await next_item(events) == StationEvent("wlan0", MAC1, True)
        await hostapd.assoc(S2, authorized=False)
        await asyncio.sleep(0.3)
        assert source.status()["pending"] == 0 and source.status()["polls"] == 0
        await stop_source(task)
        await hostapd.stop()


@async_test
async def test_station_source_on_event_raising_once_keeps_going(sock):
    """An exception from on_event (e.g. the ValueError a malformed lease once
    raised from routes.py) is contained: counted, and later stations arrive."""
    got = asyncio.Queue()
    raised = []

    def on_event(event):
        if not raised:
            raised.append(event)
            raise ValueError("bad datum")
        got.put_nowait(event)

    async with UbusBroker(sock):
        hostapd = await FakeHostapd(sock, "wlan0").start()
        source, task, _ = await start_source(sock, ["wlan0"], on_event=on_event)
        await until(lambda: hostapd.listed)
        await hostapd.assoc(S1)
        await hostapd.assoc(S2)
        assert await next_item(got) == StationEvent("wlan0", MAC2, True)
        assert raised == [StationEvent("wlan0", MAC1, True)]
        await hostapd.notify("disassoc", "not a mac")
        await hostapd.obj.notify("disassoc", {"address": 42})
        await hostapd.disassoc(S1)       # reported as in, so reported as gone
        assert await next_item(got) == StationEvent("wlan0", MAC1, False)
        assert source.status()["event_errors"] == 1
        assert not task.done()
        await stop_source(task)
        await hostapd.stop()


@async_test
async def test_station_source_follows_hostapd_restarts(sock):
    async with UbusBroker(sock):
        source, task, events = await start_source(sock, ["wlan0", "wlan1"])
        # hostapd appears after sroamd
        wlan0 = await FakeHostapd(sock, "wlan0", [S1]).start()
        assert await next_item(events) == StationEvent("wlan0", MAC1, True)
        wlan1 = await FakeHostapd(sock, "wlan1", [S2]).start()
        assert await next_item(events) == StationEvent("wlan1", MAC2, True)
        await wlan1.disassoc(S2)   # (subscribed: get_clients came after)
        assert await next_item(events) == StationEvent("wlan1", MAC2, False)
        # wifi reload: hostapd goes (its stations with it) and comes back
        await wlan0.stop()
        assert await next_item(events) == StationEvent("wlan0", MAC1, False)
        wlan0 = FakeHostapd(sock, "wlan0", [S3])
        wlan0.clients[S4] = {"auth": True, "assoc": True, "authorized": False}
        await wlan0.start()
        assert await next_item(events) == StationEvent("wlan0", MAC3, True)
        await wlan0.disassoc(S3)
        assert await next_item(events) == StationEvent("wlan0", MAC3, False)
        assert events.empty()       # S4: not authorized, not claimed
        await stop_source(task)
        for h in (wlan0, wlan1):
            await h.stop()


@async_test
async def test_station_source_reconciles_after_ubusd_restart(sock):
    broker = UbusBroker(sock)
    await broker.start()
    hostapd = await FakeHostapd(sock, "wlan0", [S1, S2]).start()
    source, task, events = await start_source(sock, ["wlan0"])
    assert {await next_item(events) for _ in range(2)} == {
        StationEvent("wlan0", MAC1, True), StationEvent("wlan0", MAC2, True)}
    await broker.stop()
    await asyncio.wait_for(hostapd.client.wait_disconnected(), WAIT)
    del hostapd.clients[S1]     # left while we could not hear it
    hostapd.clients[S2]["authorized"] = False   # and S2 lost its authorization
    hostapd.clients[S3] = {"auth": True, "assoc": True, "authorized": True}
    await broker.start()
    assert [await next_item(events) for _ in range(3)] == [
        StationEvent("wlan0", MAC1, False), StationEvent("wlan0", MAC2, False),
        StationEvent("wlan0", MAC3, True)]
    await stop_source(task)
    await hostapd.stop()
    await broker.stop()
