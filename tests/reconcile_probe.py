"""The client service in-process in a network namespace, against the kernel's
routing table; run by tests/test_route_reconcile_netns.py as
`ip netns exec NS PYTHON tests/reconcile_probe.py SCENARIO NS` (a namespace
entered this way has its own /sys, which the link table reads).  Prints one
JSON object on its last line.
"""

import asyncio
import ipaddress
import json
import subprocess
import sys
import time

from sroamd.client_service import ClientService
from sroamd.config import Config
from sroamd.store import Store, ipv4_lease_key, ipv6_lease_key

A = bytes.fromhex("020000000001")
A_V4 = "192.0.2.77"
A_V6 = "2001:db8:4444:7::"
STALE_V4 = "192.0.2.99"


def ip(ns, *args) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def routes44(ns) -> str:
    return ip(ns, "-4", "route", "show", "proto", "44") + \
        ip(ns, "-6", "route", "show", "proto", "44")


def config() -> Config:
    return Config(ipv4_prefix=ipaddress.ip_network("192.0.2.0/24"),
                  ipv6_prefix=ipaddress.ip_network("2001:db8:4444::/48"),
                  gateway=ipaddress.ip_address("192.0.2.1"), interfaces=["wl0"])


def give_a_leases(store: Store) -> None:
    store.put(ipv4_lease_key(ipaddress.ip_address(A_V4).packed), A, 1800)
    store.put(ipv6_lease_key(ipaddress.ip_address(A_V6).packed[:8]), A, 3600)


def setup_wl0(ns: str) -> None:
    """wl0 as the network configuration would have it (again after a down)."""
    ip(ns, "link", "set", "wl0", "up")
    ip(ns, "addr", "replace", "fe80::44/64", "dev", "wl0", "nodad")


async def until(predicate, timeout: float, what: str) -> float:
    """Seconds until predicate() held (polling every 20 ms)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def flap_and_delete(netns):
    out = {}
    store = Store()
    # A long periodic interval first: the flap is repaired by the link
    # notifications alone.
    service = ClientService(store, config(), b"\1" * 8, reconcile_interval=3600,
                            adopt_hold=0)
    service.synced()
    await service.start()
    try:
        give_a_leases(store)
        service.client_arrived("wl0", A)
        out["before"] = routes44(netns)
        index = service.links.get("wl0").index
        # Down and up again at once (one command: the link table may read
        # the interface only after both), same ifindex.
        subprocess.run(["ip", "-batch", "-"], check=True, text=True,
                       input="link set wl0 down\nlink set wl0 up\n")
        out["flushed"] = routes44(netns)
        setup_wl0(netns)
        out["flap_s"] = await until(lambda: A_V4 in routes44(netns)
                                    and A_V6 in routes44(netns), 3, "routes after a flap")
        out["same_index"] = service.links.get("wl0").index == index
        # Deleted by hand: back at the next periodic reconcile.
        service.reconcile_interval = 0.5
        service._reconcile_timer.cancel()
        service._arm_reconcile()
        ip(netns, "route", "del", f"{A_V4}/32", "dev", "wl0", "proto", "44")
        ip(netns, "-6", "route", "del", f"{A_V6}/64", "dev", "wl0", "proto", "44")
        out["delete_s"] = await until(lambda: A_V4 in routes44(netns)
                                      and A_V6 in routes44(netns), 3,
                                      "deleted routes back")
        # Nobody's proto-44 route on wl0 goes; on another interface, or
        # another protocol's (babeld's) on wl0, are left alone.
        ip(netns, "route", "add", f"{STALE_V4}/32", "dev", "wl0", "proto", "44")
        ip(netns, "route", "add", "192.0.2.98/32", "dev", "other0", "proto", "44")
        ip(netns, "route", "add", "192.0.2.97/32", "dev", "wl0", "proto", "babel")
        out["stale_s"] = await until(lambda: STALE_V4 not in routes44(netns), 3,
                                     "unwanted route removed")
        await asyncio.sleep(1.2)  # two more reconciles
        out["after"] = routes44(netns)
        out["babel"] = ip(netns, "route", "show", "192.0.2.97/32")
        out["status"] = service.status()["routes"]
    finally:
        await service.stop()
    return out


async def restart(netns):
    out = {}
    store = Store()
    first = ClientService(store, config(), b"\1" * 8, reconcile_interval=0.3, adopt_hold=0)
    first.synced()
    await first.start()
    give_a_leases(store)
    first.client_arrived("wl0", A)
    await first.stop()  # a restart: SIGTERM from procd
    out["after_stop"] = routes44(netns)
    out["final_ras"] = first.ra.sent["final"]
    # A client that left while we were down: its route is nobody's now.
    ip(netns, "route", "add", f"{STALE_V4}/32", "dev", "wl0", "proto", "44", "metric", "128")
    # The new instance: empty store, not synced.
    store = Store()
    second = ClientService(store, config(), b"\1" * 8, reconcile_interval=0.3,
                           adopt_hold=0.5)
    second.leases.allocation_allowed = False
    await second.start()
    try:
        await asyncio.sleep(1.0)  # several reconciles, and past the hold
        out["held"] = second.status()["routes"]["held"]
        out["while_syncing"] = routes44(netns)
        # The peers' dump brings A's leases; hostapd's station is claimed again.
        give_a_leases(store)
        second.client_arrived("wl0", A)
        second.synced()
        out["synced_s"] = await until(lambda: STALE_V4 not in routes44(netns), 3,
                                      "unwanted route removed once synced")
        await asyncio.sleep(0.7)
        out["after_sync"] = routes44(netns)
        out["status"] = second.status()["routes"]
        # Stop for good (the init script's stop): nothing left, final RAs.
        second.stop_for_good()
    finally:
        await second.stop()
    out["after_final_stop"] = routes44(netns)
    out["final_ras_2"] = second.ra.sent["final"]
    return out


MANY = 4000  # routes in the kernel (the bench's DHCP runs leave as many)


async def many_routes(netns):
    """The periodic reconcile with MANY routes wanted: whether the event
    loop runs other work while it reads them (issue 11: it stalled), and
    what it makes of routes that change meanwhile."""
    out = {}
    service = ClientService(Store(), config(), b"\1" * 8, reconcile_interval=3600,
                            adopt_hold=0)
    service.synced()
    await service.start()
    try:
        index = service.links.get("wl0").index
        base = int(ipaddress.ip_address("198.18.0.0"))
        keys = [(base + i).to_bytes(4, "big") for i in range(MANY)]
        for key in keys:
            service.routes.add(index, key, 32, "wl0")
        # One deleted by hand: the reconcile must put it back.
        ip(netns, "route", "del", "198.18.0.7/32", "dev", "wl0", "proto", "44")
        before = service.routes.reconciles
        turns = []  # the reconcile's progress at each turn of the loop another task got

        async def other_work():
            while service.routes.reconciles == before:
                turns.append(service.routes.reconciles)
                if len(turns) == 2:
                    # Changes while the dump is read: a route added, one removed.
                    service.routes.add(index, bytes([198, 19, 0, 1]), 32, "wl0")
                    service.routes.remove(keys[-1], 32)
                await asyncio.sleep(0)

        worker = asyncio.get_running_loop().create_task(other_work())
        service._reconcile_timer.cancel()
        service._on_reconcile_timer()  # (what its timer does)
        start = time.monotonic()
        await until(lambda: service.routes.reconciles > before, 10, "the reconcile")
        out["reconcile_s"] = time.monotonic() - start
        await worker
        out["turns_during"] = len(turns)
        shown = ip(netns, "-4", "route", "show", "proto", "44").splitlines()
        out["kernel_routes"] = len(shown)
        out["has_new"] = any(line.startswith("198.19.0.1 ") for line in shown)
        out["has_removed"] = any(line.startswith(str(ipaddress.ip_address(keys[-1])) + " ")
                                 for line in shown)
        out["has_deleted_by_hand"] = any(line.startswith("198.18.0.7 ") for line in shown)
        out["status"] = service.status()["routes"]
        out["armed_again"] = service._reconcile_timer is not None
    finally:
        service.stop_for_good()
        await service.stop()
    out["after_stop"] = len(routes44(netns).splitlines())
    return out


async def late_shadows(netns):
    """A client leaves (its routes withdrawn with shadow routes, deleted
    SHADOW_HOLD later) and sroamd stops for good at once: the shadows go at
    stop, and the timers that still fire after it must do nothing."""
    out = {}
    store = Store()
    service = ClientService(store, config(), b"\1" * 8, reconcile_interval=3600, adopt_hold=0)
    service.synced()
    await service.start()
    give_a_leases(store)
    service.client_arrived("wl0", A)
    out["before"] = routes44(netns)
    service.client_left(A)
    service.stop_for_good()
    await service.stop()
    await asyncio.sleep(0.2)  # past SHADOW_HOLD: the withdrawal's timers fire
    out["failures"] = dict(service.routes.failures)
    out["shadows"] = service.routes.shadows
    out["after"] = ip(netns, "-4", "route", "show", "proto", "45") + \
        ip(netns, "-6", "route", "show", "proto", "45") + routes44(netns)
    return out


BURST = 300  # clients whose leases arrive in one flooded burst


async def burst(netns):
    """Leases of BURST clients served here flooded in at once (one store
    update after another, as a flooding session applies a dump): their
    routes go to the kernel in batches (several requests per netlink
    datagram, Rtnl.change_routes), one of them refused by the kernel."""
    from sroamd.rtnl import BATCH
    out = {}
    store = Store()
    service = ClientService(store, config(), b"\1" * 8, reconcile_interval=3600,
                            adopt_hold=0)
    service.synced()
    await service.start()
    calls = {"change_route": 0, "change_routes": [], "sendmsg": 0}
    rtnl = service.routes.rtnl
    single, batched = rtnl.change_route, rtnl.change_routes

    def change_route(*args):
        calls["change_route"] += 1
        return single(*args)

    def change_routes(changes):
        calls["change_routes"].append(len(changes))
        return batched(changes)

    class CountingSocket:  # (the datagrams sent: what batching is about)
        def __init__(self, sock):
            self.sock = sock

        def send(self, data):
            calls["sendmsg"] += 1
            return self.sock.send(data)

        def __getattr__(self, name):
            return getattr(self.sock, name)

    rtnl.change_route, rtnl.change_routes = change_route, change_routes
    rtnl.sock = CountingSocket(rtnl.sock)
    try:
        macs = [bytes([2, 0, 0, 0, i >> 8, i & 0xFF]) for i in range(BURST)]
        addresses = [bytes([198, 18, i >> 8, i & 0xFF]) for i in range(BURST)]
        for mac in macs:
            service.client_arrived("wl0", mac)  # (no lease yet: no route)
        # One of them is taken by someone else's route of the same metric:
        # the kernel refuses ours (EEXIST) in the middle of a batch.
        ip(netns, "route", "add", "198.18.0.7/32", "dev", "wl0", "proto", "babel",
           "metric", "128")
        await asyncio.sleep(0)
        calls["change_route"], calls["change_routes"], calls["sendmsg"] = 0, [], 0
        for mac, address in zip(macs, addresses):
            store.put(ipv4_lease_key(address), mac, 1800)
        await asyncio.sleep(0)  # the next turn: the batch
        await asyncio.sleep(0)
        out["batches"] = list(calls["change_routes"])
        out["single"] = calls["change_route"]
        out["sendmsg_add"] = calls["sendmsg"]
        out["kernel_after_add"] = ip(netns, "-4", "route", "show", "proto", "44")
        out["status_after_add"] = service.status()["routes"]
        calls["sendmsg"] = 0
        for mac, address in zip(macs, addresses):  # all released at once
            service.leases.release_ipv4(mac, address)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        out["sendmsg_remove"] = calls["sendmsg"]
        out["kernel_after_remove"] = ip(netns, "-4", "route", "show", "proto", "44")
        out["status_after_remove"] = service.status()["routes"]
        out["batch"] = BATCH
    finally:
        service.stop_for_good()
        await service.stop()
    return out


def main():
    scenario, ns = sys.argv[1], sys.argv[2]
    out = asyncio.run({"flap": flap_and_delete, "restart": restart,
                       "many": many_routes, "burst": burst,
                       "late_shadows": late_shadows}[scenario](ns))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
