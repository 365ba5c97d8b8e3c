"""A real sroamd on a test ubusd, with a stand-in hostapd.IFNAME: what the
ubus tests (tests/test_daemon_ubus.py) and the LuCI tests' captured replies
(tests/test_luci_app.py) both start.  ubusd itself cannot run here: the
broker is tests/ubus_broker.py, the smallest honest stand-in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from floodpeer import REPO, free_port, wait_listening
from test_ubus_client import FakeHostapd, client
from ubus_broker import UbusBroker


async def until(predicate, timeout=5.0):
    """The first true result of the coroutine function predicate, polled."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@dataclass
class DaemonOnUbus:
    port: int  # its flooding port
    hostapd: FakeHostapd
    ubus: object  # a ubus client, connected
    roams: asyncio.Queue = field(default_factory=asyncio.Queue)  # sroamd.roam events
    returncode: int | None = None  # (after the context)
    log: str = ""  # its stderr (after the context)

    async def served(self):
        """sroamd's `clients` reply, or None while it does not answer."""
        try:
            return (await self.ubus.call("sroamd", "clients"))["clients"]
        except Exception:
            return None


@asynccontextmanager
async def sroamd_on_ubus(sock: str, ifname: str, macs: list[str], args: list[str],
                         state_dir: str, debug: int = 1):
    """The broker on sock, hostapd.ifname with stations macs, and
    `sroamd --station-source ubus ... args ifname`; on leaving, the daemon
    is terminated (waited for off the loop: the broker must keep serving its
    goodbyes), then hostapd and the broker stop."""
    broker = UbusBroker(sock)
    await broker.start()
    hostapd = await FakeHostapd(sock, ifname, macs=macs).start()
    port = free_port()
    log = tempfile.TemporaryFile()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sroamd", "-d", str(debug), "-f", str(port),
         "--station-source", "ubus", "--ubus-socket", sock, *args, "--state-dir", state_dir,
         "--sync-grace", "0", ifname], cwd=REPO, stderr=log)
    loop = asyncio.get_running_loop()
    running = None
    try:
        await loop.run_in_executor(None, wait_listening, port)
        running = DaemonOnUbus(port, hostapd, client(sock))
        await running.ubus.connect()
        await running.ubus.listen("sroamd.roam",
                                  lambda event, data: running.roams.put_nowait(data))
        yield running
        await running.ubus.close()
    finally:
        daemon.terminate()
        await loop.run_in_executor(None, daemon.wait, 10)
        await hostapd.stop()
        await broker.stop()
        log.seek(0)
        if running is not None:
            running.returncode = daemon.returncode
            running.log = log.read().decode()
