"""Packet sockets: whole Ethernet frames out, Router Solicitations in.

One send-only socket (protocol 0: it receives nothing) carries every frame
sroamd sends to clients: DHCP replies, RAs, ARP replies, NAs.  Addressing a
frame by interface name means an interface that went away and came back
with a new index needs nothing special.

One receive socket takes IPv6 frames with a kernel (classic BPF) filter
that passes only ICMPv6 Router Solicitations, so the forwarded traffic of
the roaming interfaces never reaches Python.  The client's MAC is the
frame's source address.
"""

from __future__ import annotations

import array
import socket
import sys

from construct import Bytes, Int8un, Int16un, Int32un, Int64un, Padding, Struct

from sroamd.wire.ip import ETH_P_IPV6

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
ALL_ROUTERS_MAC = b"\x33\x33\x00\x00\x00\x02"

# struct sock_filter / sock_fprog / packet_mreq (linux/filter.h, if_packet.h),
# in the machine's byte order.
SOCK_FILTER = Struct("code" / Int16un, "jt" / Int8un, "jf" / Int8un, "k" / Int32un)
_POINTER_64 = sys.maxsize > 2 ** 32
SOCK_FPROG = Struct("len" / Int16un, Padding(6 if _POINTER_64 else 2),
                    "filter" / (Int64un if _POINTER_64 else Int32un))
PACKET_MREQ = Struct("ifindex" / Int32un, "type" / Int16un, "alen" / Int16un,
                     "address" / Bytes(8))

BPF_LD_H_ABS, BPF_LD_B_ABS, BPF_JEQ_K, BPF_RET_K = 0x28, 0x30, 0x15, 0x06

# Accept IPv6 (ethertype at 12), next header ICMPv6 (byte 14+6), type 133
# (byte 14+40); no extension headers, as RSs have none.
RS_FILTER = [
    (BPF_LD_H_ABS, 0, 0, 12),
    (BPF_JEQ_K, 0, 5, ETH_P_IPV6),
    (BPF_LD_B_ABS, 0, 0, 20),
    (BPF_JEQ_K, 0, 3, 58),
    (BPF_LD_B_ABS, 0, 0, 54),
    (BPF_JEQ_K, 0, 1, 133),
    (BPF_RET_K, 0, 0, 0xFFFF),
    (BPF_RET_K, 0, 0, 0),
]


class PacketSender:
    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET,
                                  socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)

    def send(self, ifname: str, frame: bytes) -> None:
        """Send one frame now; raises OSError (ENODEV, ENXIO, ENOBUFS...)."""
        self.sock.sendto(frame, (ifname, 0))

    def close(self) -> None:
        self.sock.close()


class RsReceiver:
    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET,
                                  socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.htons(ETH_P_IPV6))
        program = b"".join(SOCK_FILTER.build({"code": c, "jt": t, "jf": f, "k": k})
                           for c, t, f, k in RS_FILTER)
        # The kernel copies the program during setsockopt; the buffer only
        # has to live until then.
        buffer = array.array("B", program)
        fprog = SOCK_FPROG.build({"len": len(RS_FILTER), "filter": buffer.buffer_info()[0]})
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        # Frames queued before the filter was attached.
        while True:
            try:
                self.sock.recv(1)
            except BlockingIOError:
                break

    def fileno(self) -> int:
        return self.sock.fileno()

    def join_all_routers(self, ifindex: int) -> None:
        """Make the interface accept frames to 33:33:00:00:00:02 (RSs), which
        a NIC with a multicast filter would drop unless someone joined."""
        mreq = PACKET_MREQ.build({"ifindex": ifindex, "type": PACKET_MR_MULTICAST, "alen": 6,
                                  "address": ALL_ROUTERS_MAC + b"\0\0"})
        self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    def receive(self) -> list[tuple[str, bytes]]:
        """(ifname, frame) of the RSs queued (incoming ones only)."""
        out = []
        while True:
            try:
                data, address = self.sock.recvfrom(2048)
            except BlockingIOError:
                return out
            except OSError:
                # e.g. ENETDOWN when an interface went away: go on.
                return out
            if address[2] != PACKET_OUTGOING:
                out.append((address[0], data))

    def close(self) -> None:
        self.sock.close()
