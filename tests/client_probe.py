"""Client-side packet tool for the namespace tests (run inside a client namespace).

    client_probe.py rs IFNAME [--unspecified] [--bad]
        send an RS (from :: without source link-layer option with
        --unspecified; preceded by malformed ones with --bad), print the RAs
        addressed to our MAC as JSON
    client_probe.py sniff IFNAME SECONDS
        print "listening", then the ARP replies and NAs addressed to our MAC
        (JSON) once both are seen or SECONDS have passed
    client_probe.py dhcp-garbage IFNAME
        broadcast malformed DHCP messages to port 67
"""

import json
import socket
import sys
import time

from sroamd.wire import arp, dhcp, icmpv6
from sroamd.wire.icmpv6 import ALL_ROUTERS, UNSPECIFIED, NdOptions
from sroamd.wire.ip import BROADCAST_MAC, ipv4_udp_frame


def our_mac(ifname):
    with open(f"/sys/class/net/{ifname}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def link_local(mac):
    return b"\xfe\x80" + bytes(6) + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]


def receive(sock, mac, seconds, want):
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline and not want(seen):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        if data[:6] == mac:
            seen.append(data)
    return seen


def rs(ifname, unspecified, bad):
    mac = our_mac(ifname)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((ifname, 0))
    src = UNSPECIFIED if unspecified else link_local(mac)
    options = NdOptions() if unspecified else NdOptions(source_lladdr=mac)
    good = icmpv6.build_frame(icmpv6.build_rs(options), mac, icmpv6.multicast_mac(ALL_ROUTERS),
                              src, ALL_ROUTERS)
    frames = []
    if bad:
        frames += [good[:-1] + bytes([good[-1] ^ 0x55]),  # bad checksum
                   icmpv6.build_frame(icmpv6.build_rs(options), mac,
                                      icmpv6.multicast_mac(ALL_ROUTERS), src, ALL_ROUTERS, 64),
                   good[:18] + b"\x00\x03" + good[20:]]  # payload length too short
    frames.append(good)
    for frame in frames:
        sock.send(frame)
    ras = []
    for data in receive(sock, mac, 3.0, lambda seen: any(
            d[12:14] == b"\x86\xdd" and d[54] == 134 for d in seen)):
        if data[12:14] != b"\x86\xdd" or data[54] != 134:
            continue
        frame = icmpv6.parse_frame(data)
        options = icmpv6.options_of(frame.body)
        ras.append({"ip_dst": socket.inet_ntop(socket.AF_INET6, frame.ip_dst),
                    "ip_src": socket.inet_ntop(socket.AF_INET6, frame.ip_src),
                    "checksum_ok": frame.checksum_ok,
                    "router_lifetime": frame.body.router_lifetime,
                    "prefixes": [socket.inet_ntop(socket.AF_INET6, p.prefix) for p in options.prefixes],
                    "valid": [p.valid_lifetime for p in options.prefixes],
                    "rdnss": [socket.inet_ntop(socket.AF_INET6, a) for a in options.rdnss],
                    "rdnss_lifetime": options.rdnss_lifetime})
    print(json.dumps(ras))


def sniff(ifname, seconds):
    mac = our_mac(ifname)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((ifname, 0))
    print("listening", flush=True)

    def kinds(frames):
        out = set()
        for d in frames:
            if d[12:14] == b"\x08\x06":
                out.add("arp")
            elif d[12:14] == b"\x86\xdd" and len(d) > 54 and d[54] in (134, 136):
                out.add("na" if d[54] == 136 else "ra")
        return out

    frames = receive(sock, mac, seconds, lambda seen: {"arp", "na", "ra"} <= kinds(seen))
    result = {}
    for data in frames:
        if data[12:14] == b"\x08\x06":
            ether, message = arp.parse_frame(data)
            result["arp"] = {"op": message.op, "src_mac": ether.src.hex(),
                             "sender_mac": message.sender_mac.hex(),
                             "sender_ip": socket.inet_ntoa(message.sender_ip)}
        elif data[12:14] == b"\x86\xdd" and len(data) > 54 and data[54] == 136:
            frame = icmpv6.parse_frame(data)
            result["na"] = {"override": frame.body.flags.override, "checksum_ok": frame.checksum_ok,
                            "target": socket.inet_ntop(socket.AF_INET6, frame.body.target),
                            "tlla": (icmpv6.options_of(frame.body).target_lladdr or b"").hex()}
        elif data[12:14] == b"\x86\xdd" and len(data) > 54 and data[54] == 134:
            result["ra"] = True
    print(json.dumps(result), flush=True)


def dhcp_garbage(ifname):
    mac = our_mac(ifname)
    good = dhcp.build(dhcp.DhcpMessage(chaddr=mac + bytes(10), options={53: dhcp.DISCOVER}))
    garbage = [good[:100],  # truncated
               good[:236] + b"\x63\x82\x53\x00" + good[240:],  # bad cookie
               good[:240] + bytes.fromhex("3d40010203"),  # option past the end
               good[:240] + bytes(1000)]  # endless pad
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    for payload in garbage:
        sock.sendto(ipv4_udp_frame(mac, BROADCAST_MAC, bytes(4), b"\xff" * 4, 68, 67, payload),
                    (ifname, 0))
    print(json.dumps({"sent": len(garbage)}))


if __name__ == "__main__":
    mode, ifname = sys.argv[1], sys.argv[2]
    if mode == "rs":
        rs(ifname, "--unspecified" in sys.argv, "--bad" in sys.argv)
    elif mode == "sniff":
        sniff(ifname, float(sys.argv[3]))
    else:
        dhcp_garbage(ifname)
