"""The daemon on ubus: hostapd's stations in, kicks out, `ubus call sroamd ...`.

A real sroamd process talks to the test broker (it speaks ubusd's bytes, see
test_ubus_wire.py) where a stand-in hostapd publishes hostapd.<ifname>; a
flood test peer plays another AP.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from floodpeer import REPO, FloodPeer, free_port, wait_listening
from sroamd.store import association_key
from sroamd.wire.flood import Update
from test_ubus_client import FakeHostapd, async_test, client, next_item
from ubus_broker import UbusBroker

IFNAME = "sroamdut0"  # not a real interface: only the ubus side is exercised
MAC1, MAC2 = "02:00:00:00:aa:01", "02:00:00:00:aa:02"
OTHER_NODE = bytes.fromhex("0123456789abcdef")


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


@pytest.fixture
def sock():
    d = tempfile.mkdtemp(prefix="ubus")
    yield os.path.join(d, "ubus.sock")
    shutil.rmtree(d)


async def until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@async_test
async def test_daemon_follows_hostapd_kicks_and_answers_status(sock):
    broker = UbusBroker(sock)
    await broker.start()
    hostapd = await FakeHostapd(sock, IFNAME, macs=[MAC1]).start()
    port = free_port()
    log = tempfile.TemporaryFile()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sroamd", "-d", "2", "-f", str(port), "--station-source", "ubus",
         "--ubus-socket", sock, "-P", "192.0.2.0/24", "--state-dir", os.path.dirname(sock),
         "--sync-grace", "0", IFNAME], cwd=REPO, stderr=log)
    loop = asyncio.get_running_loop()
    observer = None
    try:
        await loop.run_in_executor(None, wait_listening, port)
        ubus = client(sock)
        await ubus.connect()
        roams = asyncio.Queue()
        await ubus.listen("sroamd.roam", lambda event, data: roams.put_nowait(data))

        async def served():
            try:
                return (await ubus.call("sroamd", "clients"))["clients"]
            except Exception:
                return None

        # A station already there when the daemon starts (get_clients).
        clients = await until(served)
        assert clients == [{"mac": MAC1, "interface": IFNAME}]
        status = await ubus.call("sroamd", "status")
        assert status["interfaces"] == [IFNAME] and status["clients"] == 1
        node_id = bytes.fromhex(status["node_id"])

        # A new association is claimed in the replicated store.
        observer = FloodPeer(port)
        await hostapd.assoc(MAC2)
        key = association_key(mac_bytes(MAC2))
        assert await loop.run_in_executor(None, observer.wait_for,
                                          lambda p: p.has(key, node_id), 5)
        seqno = observer.data[key].seqno

        # Another AP claims it: the daemon kicks the station from hostapd.
        observer.send(Update(key, (seqno + 1) & 0xFFFF, OTHER_NODE, 5400))
        kicked = await next_item(hostapd.del_client)
        assert kicked["addr"] == MAC2 and kicked["deauth"] is True
        assert isinstance(kicked["reason"], int) and isinstance(kicked["ban_time"], int)
        event = await next_item(roams)
        assert event == {"mac": MAC2, "action": "left", "interface": IFNAME,
                         "to": OTHER_NODE.hex()}
        clients = (await ubus.call("sroamd", "clients"))["clients"]
        assert [c["mac"] for c in clients] == [MAC1]
        status = await ubus.call("sroamd", "status")
        assert status["roams_out"] == 1 and status["associations"] == 2

        # Disassociation gives the station up: the store says nobody holds it.
        await hostapd.disassoc(MAC1)
        key1 = association_key(mac_bytes(MAC1))
        assert await loop.run_in_executor(None, observer.wait_for,
                                          lambda p: p.has(key1, b""), 5)
        peers = await ubus.call("sroamd", "peers")
        assert any(s["established"] for s in peers["sessions"])
        assert (await ubus.call("sroamd", "leases")) == {"leases": [], "total": 0,
                                                         "truncated": False}

        # The station comes back from the other AP. Both roams are kept, newest
        # first, for a status page that was not listening to the events.
        await hostapd.assoc(MAC2)
        arrival = await next_item(roams)
        assert arrival == {"mac": MAC2, "action": "arrived", "interface": IFNAME,
                           "from": OTHER_NODE.hex()}
        history = await ubus.call("sroamd", "roams")
        assert history["total"] == 2 and history["limit"] == 100
        assert [{k: r[k] for k in r if k not in ("time", "age")}
                for r in history["roams"]] == [arrival, event]
        assert all(r["age"] <= 10 and abs(r["time"] - time.time()) <= 10
                   for r in history["roams"])
        await ubus.close()
    finally:
        if observer is not None:
            observer.close()
        daemon.terminate()
        # (waited for off the loop: the broker must keep serving the daemon's goodbyes)
        await loop.run_in_executor(None, daemon.wait, 10)
        await hostapd.stop()
        await broker.stop()
        log.seek(0)
        text = log.read().decode()
    assert daemon.returncode == 0, text
    assert "Traceback" not in text, text
