"""The daemon on ubus: hostapd's stations in, kicks out, `ubus call sroamd ...`.

A real sroamd process talks to the test broker (it speaks ubusd's bytes, see
test_ubus_wire.py) where a stand-in hostapd publishes hostapd.<ifname>; a
flood test peer plays another AP.
"""

import asyncio
import os
import shutil
import tempfile
import time

import pytest

from floodpeer import FloodPeer
from sroamd.store import association_key
from sroamd.wire.flood import Update
from test_ubus_client import async_test, next_item
from ubus_daemon import sroamd_on_ubus, until

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


@async_test
async def test_daemon_follows_hostapd_kicks_and_answers_status(sock):
    loop = asyncio.get_running_loop()
    observer = None
    async with sroamd_on_ubus(sock, IFNAME, [MAC1], ["-P", "192.0.2.0/24"],
                              os.path.dirname(sock), debug=2) as daemon:
        try:
            hostapd, ubus, roams, port = daemon.hostapd, daemon.ubus, daemon.roams, daemon.port

            # A station already there when the daemon starts (get_clients).
            clients = await until(daemon.served)
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
        finally:
            if observer is not None:
                observer.close()
    assert daemon.returncode == 0, daemon.log
    assert "Traceback" not in daemon.log, daemon.log
