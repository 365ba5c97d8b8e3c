"""Roaming end to end: three APs (babeld + hostapd + sroamd), a server, clients.

Real babeld, hostapd (wired 802.1X), wpa_supplicant, busybox udhcpc and the
kernel's SLAAC in network namespaces (tests/rig.py).  Roaming = moving the
client's port to another AP's air bridge and authenticating again.
"""

import threading
import time

import pytest

from netlab import missing_requirements, wait_for

_missing = missing_requirements("babeld", "hostapd", "wpa_supplicant", "busybox")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

if _missing is None:
    from rig import SERVER_V4, SERVER_V6, Rig, tcp_count


@pytest.fixture(scope="module")
def rig():
    with Rig() as rig:
        yield rig


def reaches(rig, ns, address, timeout=15):
    """Within timeout, a ping from ns to address gets through."""
    return wait_for(lambda: rig.ping(ns, address, timeout=0.5), timeout=timeout,
                    what=f"ping {address}")


def check_served_only_by(rig, client, v4, prefix):
    """The client's routes are at its AP only, and the server reaches it there."""
    here = client.at
    wait_for(lambda: rig.serves(here, f"{v4}/32") and rig.serves(here, prefix), timeout=5,
             what=f"routes at {here.name}")
    for ap in rig.aps:
        if ap is not here:
            wait_for(lambda: not rig.serves(ap, f"{v4}/32") and not rig.serves(ap, prefix),
                     timeout=5, what=f"routes gone from {ap.name}")
    reaches(rig, rig.server, v4)
    reaches(rig, rig.server, client.ipv6())


def test_client_gets_addresses_and_reaches_server(rig):
    client = rig.add_client("c1")
    v4, v6 = rig.wait_addresses(client)
    assert v4.startswith("192.0.2.") and v6.startswith("2001:db8:4444:")
    check_served_only_by(rig, client, v4, client.prefix64())
    reaches(rig, client.ns, SERVER_V4)
    reaches(rig, client.ns, SERVER_V6)


def test_roams_keep_addresses_and_tcp_connection(rig):
    client = rig.clients[0]
    v4, prefix = client.ipv4(), client.prefix64()
    stream, out = rig.start_tcp_stream(client)
    for target in (rig.aps[1], rig.aps[2], rig.aps[0]):
        old = client.at
        rig.roam(client, target)
        check_served_only_by(rig, client, v4, prefix)
        # The old AP kicked the station (hostapd forgets it a little later).
        wait_for(lambda: not old.hostapd.authorized(client.mac), timeout=5,
                 what=f"{old.name} kicked {client.mac}")
        assert "kicking it" in rig.sroamd_log(old)
        assert (client.ipv4(), client.prefix64()) == (v4, prefix)
        count = tcp_count(out)
        wait_for(lambda: tcp_count(out) > count, timeout=10, what="tcp stream going on")
    assert stream.alive() and tcp_count(out) > 0
    stream.stop()


def test_two_clients_roam_at_once_in_opposite_directions(rig):
    ap1, ap2 = rig.aps[0], rig.aps[1]
    c1 = rig.clients[0]
    if c1.at is not ap1:
        rig.roam(c1, ap1)
    c2 = rig.add_client("c2", ap2)
    rig.wait_addresses(c2)
    before = {c: (c.ipv4(), c.prefix64()) for c in (c1, c2)}
    for c in (c1, c2):
        check_served_only_by(rig, c, *before[c])

    errors = []

    def roam(client, target):
        try:
            rig.roam(client, target)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=roam, args=(c1, ap2)),
               threading.Thread(target=roam, args=(c2, ap1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for c in (c1, c2):
        assert (c.ipv4(), c.prefix64()) == before[c]
        check_served_only_by(rig, c, *before[c])


def test_sroamd_killed_and_restarted_loses_nothing(rig):
    ap = rig.aps[1]
    served_here = [c for c in rig.clients if c.at is ap]
    assert served_here
    leases = {c.mac: rig.leases_of(ap, c.mac) for c in rig.clients}
    assert all(len(found) == 2 for found in leases.values()), leases

    ap.sroamd.kill()  # SIGKILL: no goodbye, routes left behind
    rig.start_sroamd(ap)
    # Its peers give it the whole store back.
    wait_for(lambda: all(rig.leases_of(ap, c.mac) == leases[c.mac] for c in rig.clients),
             timeout=15, what="store back on the restarted node")
    for c in served_here:
        c.supplicant.reauthenticate()  # the client associates again
    for c in rig.clients:
        assert (c.ipv4(), c.prefix64()) in [(a, p) for a in leases[c.mac] for p in leases[c.mac]]
        check_served_only_by(rig, c, c.ipv4(), c.prefix64())
    for other in rig.aps:
        for c in rig.clients:
            assert rig.leases_of(other, c.mac) == leases[c.mac], other.name
