#!/usr/bin/env python3
"""Handover benchmark: a client roams around three APs of a real Babel domain.

Uses the rig of the end-to-end tests (tests/rig.py: babeld, hostapd with
802.1X, wpa_supplicant, udhcpc and sroamd in network namespaces; needs root).
A UDP probe every 10 ms from the client to the server is echoed back; for
each roam:

  outage     the longest run of lost probes around the roam (ms)
  auth       radio moved -> the new AP's hostapd accepts the station (EAPOL)
  sroamd     station event -> routes installed and ARP/NA sent, as the new
             AP's sroamd measures it ("handled in X ms" in its log)
  routing    the rest of the outage: outage - auth - sroamd, which is the
             time Babel takes to move the route (the old AP drops its route
             as soon as the association datum reaches it; traffic flows
             again once babeld has spread the new AP's route)

Prints a line per roam, then one JSON object on its last line with roams,
addr_kept, sroamd_p50_ms, outage_p50_ms, outage_p95_ms, outage_max_ms (and
the parts: auth_p50_ms, routing_p50_ms, routing_p95_ms).
Usage: sudo python3 bench/roam.py [--roams N]
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from netlab import wait_for  # noqa: E402
from rig import Rig, outage_ms, read_probes  # noqa: E402

INTERVAL_MS = 10
SETTLE = 1.5  # seconds after a roam before the next one: the outage window


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def handled_ms(log: str, mac: str, skip: int) -> float | None:
    """The handling time of mac's last association in a sroamd log (after skip chars)."""
    found = re.findall(rf"station {mac} associated, handled in ([0-9.]+) ms", log[skip:])
    return float(found[-1]) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roams", type=int, default=21)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/roam.py needs root (network namespaces)")

    results = []
    with Rig(debug=1) as rig:
        client = rig.add_client("c1")
        v4, v6 = rig.wait_addresses(client)
        prefix = client.prefix64()
        wait_for(lambda: rig.ping(rig.server, v4, timeout=0.5), timeout=20, what="server reaches client")
        probes_out = rig.start_udp_probe(client, interval_ms=INTERVAL_MS)
        time.sleep(1)
        order = rig.aps[1:] + rig.aps[:1]
        for n in range(args.roams):
            target = order[n % len(order)]
            log_mark = len(rig.sroamd_log(target))
            moved, connected = rig.roam(client, target)
            time.sleep(SETTLE)
            probes = read_probes(probes_out)
            outage = outage_ms(probes, moved, moved + SETTLE, INTERVAL_MS)
            sroamd_ms = handled_ms(rig.sroamd_log(target), client.mac, log_mark)
            kept = (client.ipv4(), client.prefix64()) == (v4, prefix)
            auth = (connected - moved) * 1000
            routing = max(0.0, outage - auth - (sroamd_ms or 0))
            results.append({"to": target.name, "outage_ms": round(outage, 1),
                            "auth_ms": round(auth, 1), "sroamd_ms": sroamd_ms,
                            "routing_ms": round(routing, 1), "kept": kept})
            print(f"roam {n + 1:2d} -> {target.name}: outage {outage:6.1f} ms = auth "
                  f"{auth:5.1f} + sroamd {sroamd_ms} + routing {routing:6.1f}; "
                  f"addresses kept: {kept}", file=sys.stderr)

    outages = [r["outage_ms"] for r in results]
    sroamd = [r["sroamd_ms"] for r in results if r["sroamd_ms"] is not None]
    routing = [r["routing_ms"] for r in results]
    auth = [r["auth_ms"] for r in results]
    print(json.dumps({
        "roams": len(results),
        "addr_kept": sum(r["kept"] for r in results),
        "sroamd_p50_ms": round(statistics.median(sroamd), 3) if sroamd else None,
        "outage_p50_ms": round(percentile(outages, 50), 1),
        "outage_p95_ms": round(percentile(outages, 95), 1),
        "outage_max_ms": round(max(outages), 1),
        "auth_p50_ms": round(statistics.median(auth), 1),
        "routing_p50_ms": round(percentile(routing, 50), 1),
        "routing_p95_ms": round(percentile(routing, 95), 1),
    }))


if __name__ == "__main__":
    main()
