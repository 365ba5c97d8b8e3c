"""Run sroamd's client service (DHCP, RA, routes) with a store and flooding.

A stand-in for the daemon's composition root while it does not wire the
client service yet, for the namespace tests and bench/dhcp.py:

    python3 tests/client_service_runner.py CONTROL_SOCKET [--prefill N]
        [--refresh SECONDS] -- SROAMD_ARGS...

SROAMD_ARGS are sroamd's own command line (-P, -N, -a, -f, -F, interfaces).
CONTROL_SOCKET (a unix socket, reachable from outside the namespace) takes
one JSON object per line and answers one per line:
    {"cmd": "status"}                          counters
    {"cmd": "arrived", "ifname": I, "mac": M}  client_arrived
    {"cmd": "left", "mac": M}                  client_left
    {"cmd": "leases"}                          live leases: address -> MAC
    {"cmd": "assoc_bench", "ifname": I, "n": N}
        N x (client_arrived of a client with leases; client_left); returns
        the durations of client_arrived in ms (routes installed, ARP/NA sent)
SIGTERM stops it cleanly (final RAs, routes removed).
"""

import asyncio
import json
import os
import signal
import sys
import time

from sroamd.cli import load_config
from sroamd.client_service import ClientService
from sroamd.flood import Flooder
from sroamd.leases import IPV6_LEASE_TIME
from sroamd.store import IPV4_LEASE, IPV6_LEASE, Store


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def lease_text(datum) -> str:
    import ipaddress
    if datum.kind == IPV4_LEASE:
        return str(ipaddress.IPv4Address(datum.key[1:]))
    return f"{ipaddress.IPv6Address(datum.key[1:] + bytes(8))}/64"


async def main(argv: list[str]) -> None:
    split = argv.index("--")
    control_path, runner_args = argv[0], argv[1:split]
    _, config = load_config(argv[split + 1:])
    prefill = int(runner_args[runner_args.index("--prefill") + 1]) if "--prefill" in runner_args else 0
    refresh = float(runner_args[runner_args.index("--refresh") + 1]) if "--refresh" in runner_args else None
    store = Store()
    node_id = os.urandom(8)
    kwargs = {"refresh_interval": refresh} if refresh else {}
    service = ClientService(store, config, node_id, **kwargs)
    for _ in range(prefill):
        service.leases.ipv4_lease(os.urandom(6), None, 86400)
    flooder = Flooder(store, config.port, config.peers) if config.port or config.peers else None
    if flooder:
        await flooder.start()
    await service.start()

    async def expire_loop():
        while True:
            await asyncio.sleep(0.5)
            service.on_expired(store.expire())

    def command(request: dict) -> dict:
        cmd = request["cmd"]
        if cmd == "status":
            return service.status()
        if cmd == "arrived":
            service.client_arrived(request["ifname"], bytes.fromhex(request["mac"].replace(":", "")))
            return {"ok": True}
        if cmd == "left":
            service.client_left(bytes.fromhex(request["mac"].replace(":", "")))
            return {"ok": True}
        if cmd == "leases":
            now = store.clock()
            return {lease_text(d): mac_text(d.value) if len(d.value) == 6 else d.value.hex()
                    for d in store if d.kind in (IPV4_LEASE, IPV6_LEASE) and d.expires > now}
        if cmd == "assoc_bench":
            times = []
            for _ in range(request["n"]):
                mac = b"\x02" + os.urandom(5)
                service.leases.ipv4_lease(mac, None, 600)
                service.leases.ipv6_lease(mac, IPV6_LEASE_TIME)
                start = time.perf_counter()
                service.client_arrived(request["ifname"], mac)
                times.append((time.perf_counter() - start) * 1000)
                routed = len(service.routed.get(mac, ()))
                service.client_left(mac)
                if routed != 2:
                    return {"error": f"{routed} routes installed for {mac_text(mac)}"}
            return {"ms": times, "announced": service.announced}
        return {"error": f"unknown command {cmd!r}"}

    async def serve(reader, writer):
        try:
            while line := await reader.readline():
                try:
                    answer = command(json.loads(line))
                except Exception as e:  # report, keep serving
                    answer = {"error": repr(e)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, control_path)
    expiry = asyncio.get_running_loop().create_task(expire_loop())
    stop = asyncio.Event()
    for signo in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signo, stop.set)
    print("ready", flush=True)
    await stop.wait()
    expiry.cancel()
    server.close()
    await service.stop()
    if flooder:
        await flooder.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
