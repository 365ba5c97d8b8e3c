#!/usr/bin/env python3
"""`make demo`: see sroamd roam a client around three APs, with a ping running.

Builds the rig of the end-to-end tests (tests/rig.py) in network namespaces:
a server, three APs each running babeld, hostapd (802.1X) and sroamd, and a
client with wpa_supplicant, udhcpc and SLAAC.  Roams the client around the
APs while a UDP probe (every 10 ms) runs between the client and the server,
shows which AP serves it, its addresses, and each handover's outage, then
tears everything down (also on Ctrl-C).  Needs root.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from netlab import wait_for  # noqa: E402
from rig import PREFIX_V4, PREFIX_V6, SERVER_V4, SERVER_V6, Rig, outage_ms, read_probes  # noqa: E402

INTERVAL_MS = 10


def say(text=""):
    print(text, flush=True)


def who_serves(rig, client) -> str:
    v4 = client.ipv4()
    serving = [ap.name for ap in rig.aps if v4 and rig.serves(ap, f"{v4}/32")]
    return ", ".join(serving) or "nobody"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times around the three APs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("make demo needs root: it builds network namespaces")

    say("Building: server, three APs (babeld + hostapd + sroamd), one client ...")
    with Rig() as rig:
        say(f"  server {SERVER_V4} / {SERVER_V6}; sroamd hands out {PREFIX_V4} and /64s of {PREFIX_V6}")
        client = rig.add_client("c1")
        say(f"  client {client.mac} authenticated (802.1X) at ap1; DHCP and SLAAC ...")
        v4, v6 = rig.wait_addresses(client)
        say(f"  client has {v4} and {v6} ({client.prefix64()})")
        for address in (v4, v6):
            wait_for(lambda: rig.ping(rig.server, address, timeout=0.5), timeout=20,
                     what=f"server reaches client at {address}")
        say(f"  served by: {who_serves(rig, client)}; the server reaches it over IPv4 and IPv6")
        probes = rig.start_udp_probe(client, interval_ms=INTERVAL_MS)
        say(f"\nRoaming, with a UDP probe every {INTERVAL_MS} ms client <-> server:")
        say(f"  {'handover':14} {'served by':10} {'IPv4':14} {'IPv6 /64':26} outage")
        order = rig.aps[1:] + rig.aps[:1]
        outages = []
        for n in range(args.rounds * len(order)):
            target = order[n % len(order)]
            source = client.at.name
            moved, _ = rig.roam(client, target)
            time.sleep(1.5)
            outage = outage_ms(read_probes(probes), moved, moved + 1.5, INTERVAL_MS)
            outages.append(outage)
            say(f"  {source + ' -> ' + target.name:14} {who_serves(rig, client):10} "
                f"{client.ipv4() or '-':14} {client.prefix64() or '-':26} {outage:6.0f} ms")
        same = client.ipv4() == v4 and client.ipv6() == v6
        say(f"\nThe client kept {v4} and {v6} through {len(outages)} handovers: {same}.")
        say(f"Outage per handover: median {sorted(outages)[len(outages) // 2]:.0f} ms, "
            f"worst {max(outages):.0f} ms (802.1X ~20 ms, sroamd ~1.5 ms, the rest is Babel: "
            "bench/roam.py splits it).")
        say("Tearing down ...")
    say("Done: every namespace and process is gone.")


if __name__ == "__main__":
    main()
