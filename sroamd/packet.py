"""Packet sockets: whole Ethernet frames out, Router Solicitations and DHCP in.

One send-only socket (protocol 0: it receives nothing) carries every frame
sroamd sends to clients: DHCP replies, RAs, ARP replies, NAs.  Addressing a
frame by interface name means an interface that went away and came back
with a new index needs nothing special.

One receive socket takes IPv6 frames with a kernel (classic BPF) filter
that passes only ICMPv6 Router Solicitations, so the forwarded traffic of
the roaming interfaces never reaches Python.  The client's MAC is the
frame's source address.

DHCP is received the same way, so that the frame's source address is known
(a client is claimed on it, never on the ``chaddr`` inside the message): one
packet socket per roaming interface, bound to it, with a filter that passes
only unfragmented IPv4/UDP to port 67 (DHCP_FILTER).  ``parse_dhcp_frame``
checks the headers the kernel's UDP stack would have checked (lengths, IPv4
header checksum, UDP checksum when present and not yet computed: a datagram
sent by this host or by a local veth peer with checksum offload carries only
the partial sum, which the kernel says with TP_STATUS_CSUMNOTREADY in the
PACKET_AUXDATA of the frame: DhcpReceiver then hands the frame on with the
UDP checksum field set to 0, "no checksum").  A UDP socket stays bound to
port 67 on the interface, so that unicast renewals find a socket (no ICMP
port unreachable) and relays can be answered, with a filter that drops
everything it would receive (DROP_ALL_FILTER): each message is read once,
from the packet socket.  A fragmented DHCP message is not received (no
client fragments one; the kernel would have reassembled it for the UDP
socket).
"""

from __future__ import annotations

import array
import socket
import sys

from typing import NamedTuple

from construct import Bytes, Int8un, Int16un, Int32un, Int64un, Padding, Struct

from sroamd.wire.ip import ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, internet_checksum

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY, TP_STATUS_CSUM_VALID = 1 << 3, 1 << 7
TPACKET_AUXDATA_LEN = 20  # struct tpacket_auxdata (tp_status first, u32)
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = range(5)
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
BPF_JSET_K, BPF_LDX_B_MSH, BPF_LD_H_IND = 0x45, 0xB1, 0x48
DHCP_SERVER_PORT = 67

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

# Accept IPv4 (ethertype at 12), protocol UDP (byte 14+9), not a fragment
# (neither More Fragments nor an offset, bytes 14+6..7), destination port 67
# (after the IPv4 header, whatever its length: X = 4 * IHL).
DHCP_FILTER = [
    (BPF_LD_H_ABS, 0, 0, 12),
    (BPF_JEQ_K, 0, 8, ETH_P_IP),
    (BPF_LD_B_ABS, 0, 0, 23),
    (BPF_JEQ_K, 0, 6, IPPROTO_UDP),
    (BPF_LD_H_ABS, 0, 0, 20),
    (BPF_JSET_K, 4, 0, 0x3FFF),
    (BPF_LDX_B_MSH, 0, 0, 14),
    (BPF_LD_H_IND, 0, 0, 16),
    (BPF_JEQ_K, 0, 1, DHCP_SERVER_PORT),
    (BPF_RET_K, 0, 0, 0x40000),
    (BPF_RET_K, 0, 0, 0),
]

DROP_ALL_FILTER = [(BPF_RET_K, 0, 0, 0)]


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program to sock (SO_ATTACH_FILTER)."""
    code = b"".join(SOCK_FILTER.build({"code": c, "jt": t, "jf": f, "k": k})
                    for c, t, f, k in program)
    # The kernel copies the program during setsockopt; the buffer only has
    # to live until then.
    buffer = array.array("B", code)
    fprog = SOCK_FPROG.build({"len": len(program), "filter": buffer.buffer_info()[0]})
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class FrameError(ValueError):
    """A frame that is not a well-formed IPv4/UDP datagram to port 67; args[0]
    is the reason, a counter name."""


class DhcpFrame(NamedTuple):
    eth_src: bytes
    eth_dst: bytes
    ip_src: bytes
    ip_dst: bytes
    payload: bytes  # the UDP payload: the DHCP message


def parse_dhcp_frame(frame: bytes) -> DhcpFrame:
    """An Ethernet frame (IPv4, UDP to port 67) -> DhcpFrame; FrameError otherwise.

    Checks what the kernel's UDP stack would: IPv4 version, header length
    and checksum, not a fragment, total length within the frame (Ethernet
    padding is cut off), UDP length, and the UDP checksum unless it is 0
    (none)."""
    if len(frame) < 14 + 20 + 8:
        raise FrameError("truncated")
    if frame[12:14] != b"\x08\x00":
        raise FrameError("not_ipv4")
    version_ihl = frame[14]
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20:
        raise FrameError("bad_ip_header")
    total = int.from_bytes(frame[16:18], "big")
    if total < ihl + 8 or 14 + total > len(frame):
        raise FrameError("truncated")
    header = frame[14:14 + ihl]
    if internet_checksum(header) != 0:
        raise FrameError("bad_checksum")
    if int.from_bytes(frame[20:22], "big") & 0x3FFF:
        raise FrameError("fragment")
    if frame[23] != IPPROTO_UDP:
        raise FrameError("not_udp")
    ip_src, ip_dst = frame[26:30], frame[30:34]
    udp = frame[14 + ihl:14 + total]
    if int.from_bytes(udp[2:4], "big") != DHCP_SERVER_PORT:
        raise FrameError("not_dhcp")
    udp_len = int.from_bytes(udp[4:6], "big")
    if udp_len < 8 or udp_len > len(udp):
        raise FrameError("truncated")
    udp = udp[:udp_len]
    if udp[6:8] != b"\0\0":
        pseudo = ip_src + ip_dst + bytes((0, IPPROTO_UDP)) + udp_len.to_bytes(2, "big")
        if internet_checksum(pseudo + udp) != 0:
            raise FrameError("bad_checksum")
    return DhcpFrame(frame[6:12], frame[0:6], ip_src, ip_dst, udp[8:])


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
        attach_filter(self.sock, RS_FILTER)
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


_AUX_SPACE = socket.CMSG_SPACE(TPACKET_AUXDATA_LEN)


def _without_udp_checksum(frame: bytes) -> bytes:
    """frame (IPv4/UDP, as DHCP_FILTER passes) with the UDP checksum field 0."""
    at = 14 + (frame[14] & 0x0F) * 4 + 6 if len(frame) > 14 else len(frame)
    if at + 2 > len(frame):
        return frame
    return frame[:at] + b"\0\0" + frame[at + 2:]


class DhcpReceiver:
    """DHCP frames (IPv4/UDP to port 67) arriving on one interface.

    The socket is made with protocol 0 (it receives nothing), filtered, and
    only then bound to the interface and IPv4: no frame gets in unfiltered.
    Raises OSError if the interface does not exist."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET,
                                  socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
        try:
            attach_filter(self.sock, DHCP_FILTER)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.bind((ifname, ETH_P_IP))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> bytes | None:
        """The next frame received for this host (unicast to its MAC,
        broadcast or multicast), or None when there is none queued.  Frames
        we send and frames to other hosts (promiscuous mode) are skipped.  A
        frame whose UDP checksum the kernel has not computed yet (or has
        verified already) comes with that field set to 0 (none)."""
        while True:
            try:
                data, ancillary, _, address = self.sock.recvmsg(4096, _AUX_SPACE)
            except BlockingIOError:
                return None
            except OSError:
                # e.g. ENETDOWN when the interface went away: nothing more.
                return None
            if address[2] not in (PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST):
                continue
            for level, kind, value in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= 4:
                    status = int.from_bytes(value[:4], sys.byteorder)
                    if status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID):
                        return _without_udp_checksum(data)
            return data

    def close(self) -> None:
        self.sock.close()
