#!/usr/bin/env python3
"""CPU per message of the wire formats, in process: sroamd's code paths
(compiled construct, batches) against construct interpreting the same
declarations (what sroamd did before issue 11).

  flood_parse_us / flood_build_us   one Update TLV, in a burst of 10,000
  dhcp_parse_us / dhcp_build_us     an ACK with 8 options (parse, build)
  ..._interpreted_us                the same declarations, interpreted
  udp_frame_us, na_us, arp_us       a DHCP reply's Ethernet/IPv4/UDP frame,
                                    the NA and ARP sent to a client that arrived
  rs_parse_us, ra_frame_us          an RS frame parsed (with its options), an
                                    RA frame built (SLLA, a prefix, RDNSS)
  ubus_...                          ubus frames: a hostapd notification and a
                                    get_clients reply parsed, sroamd's status and
                                    leases replies built (bench/ubus_frames.py)

CPU time (time.process_time), the best of --repeat runs (the machine is
shared: the best run is the one least disturbed).  JSON on the last line.
Usage: python3 bench/wire.py [--repeat N]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sroamd import neighbours  # noqa: E402
from sroamd.store import ipv4_lease_key  # noqa: E402
from sroamd.wire import dhcp, icmpv6, ip  # noqa: E402
from sroamd.wire.flood import (UPDATE_TLV, Update, build_updates, parse_stream)  # noqa: E402
from procstat import best_us  # noqa: E402
from ubus_frames import ubus_figures  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    r = args.repeat

    n = 10000
    updates = [Update(ipv4_lease_key((0x0A000000 + i).to_bytes(4, "big")), i & 0xFFFF,
                      (0x020000000000 + i).to_bytes(6, "big"), 1800) for i in range(n)]
    raw = build_updates(updates)
    assert parse_stream(raw)[0] == updates
    tlvs = [raw[i * 20:(i + 1) * 20] for i in range(n)]  # (each Update TLV is 20 bytes here)
    fields = [{"seqno": u.seqno, "time": u.time, "key": u.key, "value": u.value}
              for u in updates]

    ack = dhcp.DhcpMessage(op=dhcp.BOOTREPLY, xid=5, yiaddr=bytes([198, 18, 0, 5]),
                           chaddr=b"\x02" * 6 + bytes(10), options={
                               53: dhcp.ACK, 54: bytes([198, 18, 0, 1]), 51: 1800, 58: 1600,
                               59: 1700, 1: b"\xff\xff\xff\xff", 3: [bytes([198, 18, 0, 1])],
                               6: [bytes([192, 0, 2, 53])]})
    ack_raw = dhcp.build(ack)
    ack_fields = {
        "op": ack.op, "htype": ack.htype, "hlen": ack.hlen, "hops": 0, "xid": ack.xid,
        "secs": 0, "flags": 0, "ciaddr": bytes(4), "yiaddr": ack.yiaddr,
        "siaddr": bytes(4), "giaddr": bytes(4), "chaddr": ack.chaddr, "sname": bytes(64),
        "file": bytes(128), "trailer": b"",
        "options": [{"code": c, "body": v} for c, v in ack.options.items()]
        + [{"code": dhcp.OPT_END, "body": None}]}
    assert dhcp.DHCP.build(ack_fields) == ack_raw[:len(dhcp.DHCP.build(ack_fields))]
    k = 2000
    mac, lladdr = b"\x02" * 6, b"\xfe\x80" + bytes(13) + b"\x44"

    rs = icmpv6.build_frame(icmpv6.build_rs(icmpv6.NdOptions(source_lladdr=mac)), mac,
                            icmpv6.multicast_mac(icmpv6.ALL_ROUTERS), lladdr, icmpv6.ALL_ROUTERS)
    ra_options = icmpv6.NdOptions(
        source_lladdr=mac, prefixes=[icmpv6.PrefixInfo(bytes.fromhex("20010db8" "44440001")
                                                       + bytes(8), 64, 3600, 1800)],
        rdnss_lifetime=600, rdnss=[bytes.fromhex("20010db8123400000000000000000042")])

    result = {
        "flood_parse_us": best_us(lambda: parse_stream(raw), n, r),
        "flood_build_us": best_us(lambda: build_updates(updates), n, r),
        "flood_parse_interpreted_us": best_us(lambda: [UPDATE_TLV.parse(t) for t in tlvs], n, r),
        "flood_build_interpreted_us": best_us(lambda: [UPDATE_TLV.build(f) for f in fields], n, r),
        "dhcp_parse_us": best_us(lambda: [dhcp.parse(ack_raw) for _ in range(k)], k, r),
        "dhcp_build_us": best_us(lambda: [dhcp.build(ack) for _ in range(k)], k, r),
        "dhcp_parse_interpreted_us": best_us(lambda: [dhcp.DHCP.parse(ack_raw) for _ in range(k)],
                                             k, r),
        "dhcp_build_interpreted_us": best_us(lambda: [dhcp.DHCP.build(ack_fields)
                                                      for _ in range(k)], k, r),
        "udp_frame_us": best_us(lambda: [ip.ipv4_udp_frame(mac, mac, bytes(4), bytes(4), 67, 68,
                                                           ack_raw) for _ in range(k)], k, r),
        "na_us": best_us(lambda: [neighbours.na_announcement(mac, lladdr, mac)
                                  for _ in range(k)], k, r),
        "arp_us": best_us(lambda: [neighbours.arp_announcement(mac, bytes([198, 18, 0, 1]), mac)
                                   for _ in range(k)], k, r),
        "rs_parse_us": best_us(lambda: [icmpv6.options_of(icmpv6.parse_frame(rs).body)
                                        for _ in range(k)], k, r),
        "ra_frame_us": best_us(lambda: [icmpv6.build_frame(icmpv6.build_ra(1800, ra_options),
                                                           mac, mac, lladdr, lladdr)
                                        for _ in range(k)], k, r),
    }
    result.update(ubus_figures(r))
    result["loadavg"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
