"""The DHCP and RS packet sockets keep a crowd's frames while the event loop
is busy (issue 11): 400 DISCOVERs arriving while nobody reads are all there
to read afterwards.  On the real kernel, in a scratch network namespace
(root only): a veth pair, sroamd's DhcpReceiver on one end, a raw socket
sending on the other.

With the kernel's default receive buffer (208 KB, charged 1-2 KB a frame)
167 of 400 were kept; the DHCP bench with 10,000 leases lost 154 of 2,000
exchanges so during a pause of the loop.
"""

import json
import os
import secrets
import subprocess
import sys

import pytest

from netlab import missing_requirements

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLOOD_WHILE_NOT_READING = r"""
import json, os, socket, time
from sroamd import packet
from sroamd.wire import dhcp, ip

receiver = packet.DhcpReceiver("wl0")
sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
count = 400
for n in range(count):
    mac = bytes([2, 0, 0, 0, n >> 8, n & 0xFF])
    message = dhcp.DhcpMessage(op=dhcp.BOOTREQUEST, xid=n, chaddr=mac + bytes(10),
                               options={dhcp.OPT_MESSAGE_TYPE: dhcp.DISCOVER})
    frame = ip.ipv4_udp_frame(mac, ip.BROADCAST_MAC, bytes(4), b"\xff" * 4, 68, 67,
                              dhcp.build(message))
    sender.sendto(frame, ("wl1", 0))
time.sleep(0.2)
received = 0
while receiver.receive() is not None:
    received += 1
buffer = receiver.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
print(json.dumps({"sent": count, "received": received, "buffer": buffer}))
"""


@pytest.fixture
def netns():
    name = f"sroamd-pb-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["link", "set", "lo", "up"],
                     ["link", "add", "wl0", "type", "veth", "peer", "name", "wl1"],
                     ["link", "set", "wl0", "up"], ["link", "set", "wl1", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_dhcp_frames_of_a_crowd_wait_while_the_loop_is_busy(netns):
    cp = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                         FLOOD_WHILE_NOT_READING], capture_output=True, text=True, timeout=60,
                        env=dict(os.environ, PYTHONPATH=ROOT))
    assert cp.returncode == 0, cp.stderr[-3000:]
    result = json.loads(cp.stdout.strip().splitlines()[-1])
    assert result["buffer"] >= 2 * (1 << 20)  # (the kernel doubles what is asked)
    assert result["received"] == result["sent"], result
