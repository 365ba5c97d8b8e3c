"""The real daemon (python3 -m sroamd) in a netlab namespace, inspected from outside.

For tests/test_client_service_netns.py and bench/dhcp.py.  Only the daemon's
own interfaces are used:

  ubus      a test ubusd (tests/ubus_broker.py) on a socket in the Lab's
            directory (unix sockets are files: the daemon in its namespace
            reaches it), run with its own event loop in a background thread;
            ``status()`` is ``ubus call sroamd status``.  Optionally a stand-in
            hostapd.<ifname> (test_ubus_client.FakeHostapd) on the same
            broker gives the daemon station events (--station-source ubus);
            otherwise --station-source none.
  flooding  the daemon listens with -f FLOOD_PORT; ``peer()`` connects a
            tests/floodpeer.py FloodPeer to it from inside the namespace (the
            socket is made by a thread that has entered the namespace with
            setns; a socket stays in the namespace it was made in, and the
            thread's switch does not touch the rest of the test process).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import signal
import sys
import threading
import time

from floodpeer import FloodPeer
from netlab import wait_for
from sroamd.ubus_client import UbusClient, UbusError
from ubus_broker import UbusBroker

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FLOOD_PORT = 4444
CLONE_NEWNET = 0x40000000


def in_netns(name: str, fn):
    """fn() run by a fresh thread inside network namespace `name`; its result."""
    outcome = {}

    def target():
        try:
            with open(f"/run/netns/{name}") as f:
                if hasattr(os, "setns"):  # Python 3.12+
                    os.setns(f.fileno(), CLONE_NEWNET)
                else:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
            outcome["value"] = fn()
        except BaseException as e:  # handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class UbusThread:
    """A test ubusd and a client of it, on an event loop in a background thread."""

    def __init__(self, path: str):
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ubus", daemon=True)
        self.thread.start()
        self.broker = UbusBroker(path)
        self.hostapds = []
        self.run(self.broker.start())
        self.client = self.run(self._client())

    async def _client(self):
        client = UbusClient(self.path, timeout=5.0, min_backoff=0.01, max_backoff=0.05)
        await client.connect()
        return client

    def run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, obj: str, method: str, args: dict | None = None):
        return self.run(self.client.call(obj, method, args or {}))

    def fake_hostapd(self, ifname: str):
        from test_ubus_client import FakeHostapd

        async def start():
            return await FakeHostapd(self.path, ifname).start()
        hostapd = self.run(start())
        self.hostapds.append(hostapd)
        return hostapd

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            for hostapd in self.hostapds:
                self.run(hostapd.stop())
            self.run(self.client.close())
            self.run(self.broker.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class Daemon:
    """`python3 -m sroamd ARGS` in namespace ns, with its own ubusd.

    stations: interfaces for which a stand-in hostapd gives station events
    (``station(ifname, "assoc"|"disassoc", mac)``); none by default.
    profile: run it under cProfile, its statistics written there at exit.
    """

    def __init__(self, lab, ns, args, stations=(), timeout: float = 10.0,
                 profile: str | None = None):
        self.ns = ns
        self.proc = None
        self.peers: list[FloodPeer] = []
        self.ubus = UbusThread(os.path.join(lab.dir, f"ubus-{ns.short}-{secrets.token_hex(2)}.sock"))
        lab.__dict__.setdefault("sroamd_daemons", []).append(self)  # close_daemons(lab)
        self.hostapd = {ifname: self.ubus.fake_hostapd(ifname) for ifname in stations}
        # profile: a file the daemon's cProfile statistics are written to at
        # its exit (SIGTERM: a clean exit), for finding where its time goes.
        python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
        argv = ["env", f"PYTHONPATH={ROOT}", *python, "-m", "sroamd",
                "--ubus-socket", self.ubus.path,
                "--station-source", "ubus" if stations else "none",
                "--state-dir", os.path.join(lab.dir, f"state-{ns.short}"),
                # Not about the startup sync (tests that are pass their own
                # --sync-grace after this one): serve at once.
                "--sync-grace", "0",
                "-f", str(FLOOD_PORT), *args]
        self.proc = ns.spawn(argv, name="sroamd")
        wait_for(self._ready, timeout, interval=0.05, what=f"sroamd in {ns.name}")

    def _ready(self):
        if not self.proc.alive():
            raise RuntimeError(f"sroamd exited: {self.proc.output()[-3000:]}")
        try:
            status = self.status()
        except UbusError:  # not published yet
            return None
        return status if self.ubus.run(self._subscribed()) else None

    async def _subscribed(self) -> bool:
        """Whether the daemon follows each stand-in hostapd (the broker's view)."""
        paths = self.ubus.broker.paths
        return all(f"hostapd.{ifname}" in paths and paths[f"hostapd.{ifname}"].subscribers
                   for ifname in self.hostapd)

    def status(self) -> dict:
        """ubus call sroamd status (the client service's counters in ["service"])."""
        return self.ubus.call("sroamd", "status")

    def call(self, method: str) -> dict:
        return self.ubus.call("sroamd", method)

    def station(self, ifname: str, event: str, mac: str) -> None:
        """hostapd's notification `event` ("assoc", "disassoc") for station mac."""
        hostapd = self.hostapd[ifname]
        self.ubus.run(getattr(hostapd, event)(mac))

    def peer(self, timeout: float = 5.0) -> FloodPeer:
        """A flood test peer connected to the daemon, from inside its namespace."""
        peer = in_netns(self.ns.name, lambda: FloodPeer(FLOOD_PORT, "127.0.0.1", timeout))
        self.peers.append(peer)
        return peer

    def close_peers(self) -> None:
        """Disconnect our flood peers, and wait for the daemon to see it.

        (Python 3.11's asyncio logs a traceback, "Exception in callback
        StreamReaderProtocol.connection_made", when sroamd stops with an
        incoming flooding session still open: the cancelled session task.)"""
        if not self.peers:
            return
        for peer in self.peers:
            peer.close()
        self.peers.clear()
        wait_for(lambda: not any(s["peer"].startswith("127.0.0.1:")
                                 for s in self.call("peers")["sessions"]), 5,
                 what="flood peer sessions closed")

    def stop(self, timeout: float = 10.0) -> str:
        """SIGTERM; asserts a clean exit; returns the log."""
        self.close_peers()
        self.proc.signal(signal.SIGTERM)
        self.proc.popen.wait(timeout)
        log = self.proc.output()
        assert self.proc.popen.returncode == 0, log[-3000:]
        assert "shutting down" in log and "Traceback" not in log, log[-3000:]
        return log

    def close(self) -> None:
        """Stop the daemon (if still running) before its ubusd; idempotent."""
        for peer in self.peers:
            peer.close()
        self.peers.clear()
        if self.proc is not None:
            self.proc.stop(timeout=10)
        self.ubus.close()


def close_daemons(lab) -> None:
    """Close every Daemon started in lab (before the Lab itself closes)."""
    for daemon in reversed(lab.__dict__.get("sroamd_daemons", [])):
        daemon.close()


def lease_table(peer: FloodPeer, settle: float = 0.05) -> dict[str, str]:
    """The live leases the daemon flooded to peer: address (IPv4, or IPv6
    /64 prefix) -> MAC ("" for a released lease), after reading for `settle` s."""
    from sroamd.status import lease_address
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not peer.poll(max(0.001, deadline - time.monotonic())):
            break
    table = {}
    for key, update in peer.data.items():
        address = lease_address(key)
        if address is None or update.time == 0:
            continue
        value = update.value
        table[address] = ":".join(f"{b:02x}" for b in value) if len(value) == 6 else value.hex()
    return table
