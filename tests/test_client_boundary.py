"""Who is a client: only hostapd's word (or, with no station source, a frame's
Ethernet source) claims a MAC, never what a packet says inside; and what
packets from unknown MACs can make the daemon keep is bounded (issue 9,
"Clients").

Two kinds of test, both with the real daemon (python3 -m sroamd):

  ubus      the daemon as a process against the test ubusd
            (tests/ubus_broker.py, which speaks the bytes of a real ubusd: no
            ubusd can run here) where a stand-in hostapd.<ifname> object
            (test_ubus_client.FakeHostapd: OpenWrt hostapd's get_clients
            replies and notifications) tells it about stations.  The
            interface does not exist: only the station side is exercised.
            Observed through `ubus call sroamd clients|status`.
  netns     the daemon in an AP namespace (tests/daemon_netns.py), clients
            in namespaces on the AP's air bridge: udhcpc as a victim, and
            raw DHCP frames (forged chaddr, random source MACs) sent from a
            client namespace through a packet socket.
"""

import asyncio
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from daemon_netns import Daemon, close_daemons, in_netns, lease_table
from floodpeer import REPO, free_port, wait_listening
from netlab import Lab, missing_requirements, wait_for
from sroamd.wire import dhcp
from sroamd.wire.ip import BROADCAST_MAC, ipv4_udp_frame
from test_ubus_client import FakeHostapd, async_test, client
from ubus_broker import UbusBroker

# -- the station side: the daemon against the test ubusd ---------------------

IFNAME = "sroamdbd0"  # not a real interface: only the ubus side is exercised
M1, M2, M3, M4, M5 = ("02:00:00:00:bb:0%d" % i for i in range(1, 6))


@pytest.fixture
def sock():
    d = tempfile.mkdtemp(prefix="ubus")
    yield os.path.join(d, "ubus.sock")
    shutil.rmtree(d)


class UbusDaemon:
    """python3 -m sroamd with --station-source ubus on the broker at sock."""

    def __init__(self, sock):
        self.sock = sock
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sroamd", "-d", "2", "-f", str(self.port),
             "--station-source", "ubus", "--ubus-socket", sock, "-P", "192.0.2.0/24",
             "--state-dir", os.path.dirname(sock), "--sync-grace", "0", IFNAME],
            cwd=REPO, stderr=self.log)
        self.ubus = client(sock)

    async def start(self):
        await asyncio.get_running_loop().run_in_executor(None, wait_listening, self.port)
        await self.ubus.connect()
        await self.until(lambda: self.call("status"))
        return self

    async def call(self, method):
        try:
            return await self.ubus.call("sroamd", method)
        except Exception:
            return None

    async def served(self) -> set[str]:
        """The MACs the daemon has claimed (ubus call sroamd clients)."""
        return {c["mac"] for c in (await self.call("clients"))["clients"]}

    async def until(self, predicate, timeout=5.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await predicate()
            if result:
                return result
            assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
            await asyncio.sleep(0.05)

    async def stop(self) -> str:
        await self.ubus.close()
        self.proc.terminate()
        await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 10)
        self.log.seek(0)
        text = self.log.read().decode()
        assert self.proc.returncode == 0, text
        assert "Traceback" not in text, text
        return text


async def run_with_daemon(sock, hostapd_factory, body):
    """A broker, a stand-in hostapd (hostapd_factory()), the daemon; body(daemon, hostapd)."""
    broker = UbusBroker(sock)
    await broker.start()
    hostapd = await hostapd_factory().start()
    daemon = text = None

    async def subscribed():
        return hostapd.listed   # (the daemon has asked get_clients)

    try:
        daemon = await UbusDaemon(sock).start()
        await daemon.until(subscribed)
        await body(daemon, hostapd)
    finally:
        if daemon is not None:
            text = await daemon.stop()
        await hostapd.stop()
        await broker.stop()
    return text


@async_test
async def test_assoc_alone_never_claims_authorized_does_and_leaving_gives_up(sock):
    async def body(daemon, hostapd):
        # The association request (WPA/802.1X not done, or refused by usteer):
        # nothing.  The next station, authorized, is claimed: by then the
        # first one's request has been handled.
        await hostapd.assoc(M1, authorized=False)
        await hostapd.assoc(M2)
        await daemon.until(lambda: _has(daemon, M2))
        await asyncio.sleep(0.5)
        assert await daemon.served() == {M2}
        # sta-authorized claims it.
        await hostapd.authorized(M1)
        await daemon.until(lambda: _has(daemon, M1))
        # Every notification OpenWrt's hostapd sends for a station leaving.
        for method, mac in (("disassoc", M1), ("deauth", M2)):
            await hostapd.leave(method, mac)
            await daemon.until(lambda: _lacks(daemon, mac))
        for method in ("local-deauth", "inactive-deauth"):
            await hostapd.assoc(M3)
            await daemon.until(lambda: _has(daemon, M3))
            await hostapd.leave(method, M3)
            await daemon.until(lambda: _lacks(daemon, M3))
        assert await daemon.served() == set()
        status = await daemon.call("status")
        assert status["stations"]["association_requests"] == 4
        assert status["stations"]["event_errors"] == 0

    await run_with_daemon(sock, lambda: FakeHostapd(sock, IFNAME), body)


@async_test
async def test_only_authorized_clients_of_get_clients_count(sock):
    """At start and after hostapd restarts (resubscription), get_clients
    says who is there: only "authorized": true counts."""
    def first():
        hostapd = FakeHostapd(sock, IFNAME, [M1])
        hostapd.clients[M2] = {"auth": True, "assoc": True, "authorized": False}
        hostapd.clients[M3] = {"auth": True, "assoc": True}     # no flag
        return hostapd

    async def body(daemon, hostapd):
        await daemon.until(lambda: _has(daemon, M1))
        await asyncio.sleep(0.5)
        assert await daemon.served() == {M1}
        # wifi reload: hostapd goes (and its stations with it), a new one comes
        await hostapd.stop()
        await daemon.until(lambda: _lacks(daemon, M1))
        again = FakeHostapd(sock, IFNAME, [M4])
        again.clients[M5] = {"auth": True, "assoc": True, "authorized": False}
        await again.start()
        await daemon.until(lambda: _has(daemon, M4))
        await asyncio.sleep(0.5)
        assert await daemon.served() == {M4}
        await again.stop()

    await run_with_daemon(sock, first, body)


@async_test
async def test_get_clients_fallback_for_hostapd_without_sta_authorized(sock):
    """An older hostapd: assoc, then only get_clients says when the station
    is authorized; the daemon polls it and claims the station then."""
    async def body(daemon, hostapd):
        await hostapd.assoc(M1, authorized=False)
        await hostapd.assoc(M2, authorized=False)
        await asyncio.sleep(1.0)
        assert await daemon.served() == set()
        await hostapd.authorized(M1)        # (no notification: the table only)
        await daemon.until(lambda: _has(daemon, M1), timeout=10)
        assert await daemon.served() == {M1}
        status = (await daemon.call("status"))["stations"]
        assert status["authorized_by_polling"] == 1 and status["pending"] == 1

    await run_with_daemon(sock, lambda: FakeHostapd(sock, IFNAME, says_authorized=False), body)


async def _has(daemon, mac):
    return mac in await daemon.served()


async def _lacks(daemon, mac):
    return mac not in await daemon.served()


# -- the packet side: the daemon in a namespace, raw frames from clients ------

_missing = missing_requirements("busybox")
netns = pytest.mark.skipif(_missing is not None, reason=str(_missing))

PREFIX4, PREFIX6, GATEWAY = "192.0.2.0/24", "2001:db8:4444::/48", "192.0.2.1"
GW = socket.inet_aton(GATEWAY)
ZERO = bytes(4)


def Service(lab, ns, extra=(), stations=()):
    return Daemon(lab, ns, ["-d", "1", "-P", PREFIX4, "-P", PREFIX6, "-a", GATEWAY,
                            *extra, "wl0"], stations=stations)


def make_ap(lab, name):
    ap = lab.access_point(name)
    ap.ns.addr("wl0", f"{GATEWAY}/24")
    ap.ns.ip("addr", "add", "fe80::44/64", "dev", "wl0")
    return ap


def make_client(lab, ap, prefix):
    return lab.client(f"{prefix}{secrets.token_hex(2)}", ap,
                      ifname=f"{prefix}{secrets.token_hex(3)}")


def udhcpc_lease(lab, client) -> str:
    """busybox udhcpc once; the address it was given."""
    out = os.path.join(lab.dir, f"udhcpc-{client.name}.out")
    script = out + ".sh"
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\n[ "$1" = bound ] && echo "$ip" >> {out}\nexit 0\n')
    os.chmod(script, 0o755)
    client.ns.run("busybox", "udhcpc", "-i", client.ifname, "-f", "-q", "-n", "-t", "4",
                  "-T", "1", "-s", script, timeout=20)
    with open(out) as f:
        return f.read().split()[-1]


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def dhcp_frame(src: bytes, kind: int, chaddr: bytes, ciaddr: bytes = ZERO,
               options: dict | None = None) -> bytes:
    """A DHCP message from Ethernet source src, broadcast, naming chaddr."""
    message = dhcp.DhcpMessage(xid=random.getrandbits(32), ciaddr=ciaddr,
                               chaddr=chaddr + bytes(10),
                               options={dhcp.OPT_MESSAGE_TYPE: kind, **(options or {})})
    return ipv4_udp_frame(src, BROADCAST_MAC, ZERO if kind != dhcp.INFORM else ciaddr,
                          b"\xff" * 4, dhcp.CLIENT_PORT, dhcp.SERVER_PORT, dhcp.build(message))


def send_frames(client, frames, per_second: float | None = None) -> None:
    """Send Ethernet frames from inside the client's namespace (a packet
    socket made by a thread that entered it), at most per_second."""
    def send():
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
            s.bind((client.ifname, 0))
            start = time.monotonic()
            for i, frame in enumerate(frames):
                if per_second and i % 100 == 0:
                    delay = start + i / per_second - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                s.send(frame)
    in_netns(client.ns.name, send)


def flood(service, client, frames, chunk: int = 100) -> int:
    """Send frames in chunks small enough for the daemon's socket buffer,
    each once the daemon has taken those before it in (or stopped taking
    any: lost to a full buffer on a busy machine); the number of DHCP
    messages the daemon received meanwhile."""
    def received():
        return sum(service.status()["service"]["dhcp"]["received"].values())

    start = last = received()
    for i in range(0, len(frames), chunk):
        send_frames(client, frames[i:i + chunk])
        stalled = time.monotonic() + 0.5
        while last < start + i + chunk and time.monotonic() < stalled:
            time.sleep(0.01)
            now = received()
            if now > last:
                last, stalled = now, time.monotonic() + 0.5
    return received() - start


def dropped(service) -> dict:
    return service.status()["service"]["dhcp"]["dropped"]


def served(service) -> set[str]:
    return {c["mac"] for c in service.call("clients")["clients"]}


def routes44(ap) -> str:
    return ap.ns.ip("-4", "route", "show", "proto", "44")


@pytest.fixture
def lab():
    if _missing:
        pytest.skip(str(_missing))
    with Lab(dad=False) as lab:
        try:
            yield lab
        finally:
            close_daemons(lab)


@netns
def test_spoofed_chaddr_does_not_claim_another_station(lab):
    """A station on AP2 sends DISCOVER, INFORM and RELEASE naming the MAC of
    a client served by AP1 (the attack of issue 9): AP2 does not claim it
    (so AP1 neither drops its routes nor kicks it), its lease stays, and the
    three messages are counted as dropped."""
    aps = [make_ap(lab, "ap1"), make_ap(lab, "ap2")]
    for i, ap in enumerate(aps):
        lab.backbone(ap.ns)
        ap.ns.addr("eth0", f"198.51.100.{i + 1}/24")
    services = [Service(lab, aps[0].ns),
                Service(lab, aps[1].ns, extra=("-F", "198.51.100.1:4444"))]
    observer = services[1].peer()
    victim = make_client(lab, aps[0], "v")
    address = udhcpc_lease(lab, victim)
    assert served(services[0]) == {victim.mac}
    wait_for(lambda: lease_table(observer).get(address) == victim.mac, 5,
             what="the victim's lease flooded to ap2")
    attacker = make_client(lab, aps[1], "x")
    own, target = mac_bytes(attacker.mac), mac_bytes(victim.mac)
    def received():
        return sum(services[1].status()["service"]["dhcp"]["received"].values())

    before = received()
    send_frames(attacker, [
        dhcp_frame(own, dhcp.DISCOVER, target),
        dhcp_frame(own, dhcp.INFORM, target, socket.inet_aton(address)),
        dhcp_frame(own, dhcp.RELEASE, target, socket.inet_aton(address),
                   {dhcp.OPT_SERVER_ID: GW}),
    ])
    wait_for(lambda: received() == before + 3, 5, what="the forged messages received")
    time.sleep(0.5)  # (what a claim would have set off: flooding, routes, kick)
    assert victim.mac not in served(services[1])
    assert served(services[0]) == {victim.mac}
    assert f"{address} dev wl0" in routes44(aps[0])
    assert lease_table(observer).get(address) == victim.mac
    assert dropped(services[1])["chaddr_mismatch"] == 3
    status = services[1].status()["service"]
    assert status["dhcp"]["sent"] == {} and status["packet_clients"] == 0


@netns
def test_with_a_station_source_only_stations_are_served(lab):
    """hostapd (stand-in, on ubus) has the victim as an authorized station,
    not the attacker: the attacker's DHCP and RS are dropped (not_station),
    as are its frames naming the victim (chaddr_mismatch); the victim is
    served; nothing the attacker sends claims anything."""
    ap = make_ap(lab, "ap1")
    service = Service(lab, ap.ns, stations=("wl0",))
    victim = make_client(lab, ap, "v")
    attacker = make_client(lab, ap, "x")
    service.station("wl0", "assoc", victim.mac)  # associated and authorized
    wait_for(lambda: served(service) == {victim.mac}, 5, what="the victim claimed")
    address = udhcpc_lease(lab, victim)
    own, target = mac_bytes(attacker.mac), mac_bytes(victim.mac)
    with pytest.raises(Exception):  # no offer for a MAC hostapd does not have
        attacker.ns.run("busybox", "udhcpc", "-i", attacker.ifname, "-f", "-q", "-n",
                        "-t", "2", "-T", "1", "-s", "/bin/true", timeout=20)
    send_frames(attacker, [dhcp_frame(own, dhcp.DISCOVER, target),
                           dhcp_frame(own, dhcp.RELEASE, target, socket.inet_aton(address),
                                      {dhcp.OPT_SERVER_ID: GW})])
    attacker.ns.run("sh", "-c", f"ip link set {attacker.ifname} down; "
                    f"sysctl -qw net.ipv6.conf.{attacker.ifname}.accept_ra=1; "
                    f"ip link set {attacker.ifname} up")  # the kernel sends RSs
    status = wait_for(lambda: (lambda s: s if s["rs_dropped"].get("not_station") else None)(
        service.status()["service"]), 10, what="the attacker's RS dropped")
    assert status["dhcp"]["dropped"].get("not_station", 0) >= 2
    assert status["dhcp"]["dropped"]["chaddr_mismatch"] == 2
    assert served(service) == {victim.mac}
    assert f"{address} dev wl0" in routes44(ap)
    assert status["packet_clients"] == 0 and status["station_source"] is True


FLOOD = 20_000


@netns
def test_random_macs_leave_bounded_state(lab):
    """20,000 RELEASEs, then 20,000 DISCOVERs, each from its own random MAC
    (frame source = chaddr): without a station source no RELEASE serves
    anything (before: 20,000 "served clients"), and the DISCOVERs make at
    most max_packet_clients clients and max_offers offers; with a station
    source none of them is served, and a station still gets its lease."""
    ap = make_ap(lab, "ap1")
    service = Service(lab, ap.ns)
    flooder = make_client(lab, ap, "f")
    rng = random.Random(9)

    def random_mac():
        return bytes([rng.randrange(256) & 0xFE | 0x02]) + rng.randbytes(5)

    frames, macs = [], set()
    for _ in range(FLOOD):
        mac = random_mac()
        macs.add(mac_text(mac))
        frames.append(dhcp_frame(mac, dhcp.RELEASE, mac, rng.randbytes(4),
                                 {dhcp.OPT_SERVER_ID: GW}))
    assert flood(service, flooder, frames) >= FLOOD * 0.95
    # (Those served are the hosts on the link that sent RSs: the flooder's
    # and the bridge's kernels; none of the random MACs.)
    status = service.status()
    assert not served(service) & macs and status["clients"] < 5
    assert status["associations"] == status["clients"]
    assert status["service"]["packet_clients"] == status["clients"]
    assert status["service"]["dhcp"]["events"]["release_refused"] >= FLOOD * 0.95

    frames = []
    for _ in range(FLOOD):
        mac = random_mac()
        frames.append(dhcp_frame(mac, dhcp.DISCOVER, mac))
    assert flood(service, flooder, frames) >= FLOOD * 0.95
    status = service.status()
    cap = status["service"]["max_packet_clients"]
    offers = status["service"]["dhcp"]["max_offers"]
    assert (cap, offers) == (256, 63)  # a /24: its pool (at least 256), a quarter of it
    assert status["clients"] <= cap and status["associations"] <= cap
    assert status["service"]["packet_clients"] <= cap
    assert status["ipv4_leases"] <= offers and status["data"] <= cap + offers
    drops = status["service"]["dhcp"]["dropped"]
    assert drops.get("too_many_offers", 0) + drops.get("too_many_clients", 0) >= FLOOD * 0.9

    # With a station source: nothing from non-stations is served at all.
    ap2 = make_ap(lab, "ap2")
    guarded = Service(lab, ap2.ns, stations=("wl0",))
    flooder2 = make_client(lab, ap2, "f")
    station = make_client(lab, ap2, "s")
    guarded.station("wl0", "assoc", station.mac)
    frames = []
    for _ in range(FLOOD):
        mac = random_mac()
        frames.append(dhcp_frame(mac, dhcp.DISCOVER, mac))
    assert flood(guarded, flooder2, frames) >= FLOOD * 0.95
    assert guarded.status()["service"]["dhcp"]["dropped"]["not_station"] >= FLOOD * 0.95
    assert udhcpc_lease(lab, station)
    status = guarded.status()
    assert served(guarded) == {station.mac}
    assert status["ipv4_leases"] == 1 and status["service"]["packet_clients"] == 0


@netns
def test_unicast_to_port_67_finds_a_socket(lab):
    """DHCP is read from the packet socket, but the UDP socket on port 67
    stays (its filter drops all): a unicast renewal gets no ICMP port
    unreachable, which a connected UDP socket would see as ECONNREFUSED."""
    ap = make_ap(lab, "ap1")
    service = Service(lab, ap.ns)
    client = make_client(lab, ap, "u")
    address = udhcpc_lease(lab, client)
    client.ns.ip("addr", "add", f"{address}/32", "dev", client.ifname)
    client.ns.ip("route", "add", GATEWAY, "dev", client.ifname)
    message = dhcp.DhcpMessage(xid=1, ciaddr=socket.inet_aton(address),
                               chaddr=mac_bytes(client.mac) + bytes(10),
                               options={dhcp.OPT_MESSAGE_TYPE: dhcp.INFORM})

    def inform():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 68))
            s.connect((GATEWAY, 67))
            s.settimeout(2)
            s.send(dhcp.build(message))
            try:
                return s.recv(2048)     # (the ACK goes to the client's MAC, not here)
            except socket.timeout:
                return None
            except ConnectionRefusedError:
                return "refused"
    assert in_netns(client.ns.name, inform) != "refused"
    wait_for(lambda: service.status()["service"]["dhcp"]["sent"].get("ACK", 0) >= 2, 5,
             what="the INFORM answered")
