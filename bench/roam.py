#!/usr/bin/env python3
"""Handover benchmark: a client roams around three APs of a real Babel domain.

Uses the rig of the end-to-end tests (tests/rig.py: babeld, hostapd with
802.1X, wpa_supplicant, udhcpc and sroamd in network namespaces; needs root).
A UDP probe every 10 ms from the client to the server is echoed back, and a
TCP stream runs beside it for the whole run (it must survive every roam).
For each roam:

  outage     the longest run of lost probes around the roam (ms): the gap
             between the send times of the echoed probes on either side,
             less one interval
  auth       radio moved -> the new AP's hostapd accepts the station (802.1X)
  sroamd     station event -> routes installed and ARP/NA sent, as the new
             AP's sroamd measures it ("handled in X ms" in its log)
  babel      the rest, until the server's babeld installed the client's /32
             via the new AP: babel = srv - auth - sroamd (--star: the core
             router's, the server's next hop)
  routers    when each router switched, from babeld's local interface
             (`monitor`, tests/babel_monitor.py), ms after the radio moved:
             new+ (the new AP redistributes the /32), old- (the old AP stops
             redistributing it), old (the old AP routes it via the new AP),
             other (the third AP does), srv (the server does)

An outage longer than the window (--window, 1.5 s) is not an error: the
benchmark waits up to --max-wait for the probes to come back, records the
outage it saw (at least the window; --max-wait if they never came back) and
counts it (over_window, never_back).  A roam that fails (no association
within 10 s) is counted too (failed), and the run goes on.

Prints a line per roam, then one JSON object on its last line: roams, failed,
addr_kept, tcp_survived, over_window, never_back, outage p50/p95/max, the
parts (auth, sroamd, babel: p50/p95), the routers' switch times (p50/p95),
CPU (sroamd's per roam, each babeld's per second), the load average, and
per_roam (each roam's figures).

Usage: sudo python3 bench/roam.py [--roams 40] [--babel 'default hello-interval 0.1' ...]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from babel_monitor import first_via, first_xroute  # noqa: E402
from netlab import wait_for  # noqa: E402
from rig import Rig, read_probes, tcp_count  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    values = [v for v in values if v is not None]
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def handled_ms(log: str, mac: str, skip: int) -> float | None:
    """The handling time of mac's last association in a sroamd log (after skip chars)."""
    found = re.findall(rf"station {mac} associated, handled in ([0-9.]+) ms", log[skip:])
    return float(found[-1]) if found else None


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def outage_after(probes, moved: float, interval_ms: float) -> tuple[float | None, float | None]:
    """(outage ms, send time of the first probe echoed after it) around a
    roam at `moved`: the longest gap between the send times of consecutive
    echoed probes sent from 0.5 s before, less one interval.  (None, None)
    while no probe sent after the roam has been echoed (not back yet)."""
    sent = [p[1] for p in probes if p[1] >= moved - 0.5]
    after = [s for s in sent if s > moved]
    if not after or len(sent) < 2:
        return None, None
    gaps = [(b - a, b) for a, b in zip(sent, sent[1:])]
    gap, back = max(gaps)
    return max(0.0, gap * 1000 - interval_ms), back


def same_prefix(a: str, b: str) -> bool:
    return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roams", type=int, default=40)
    parser.add_argument("--window", type=float, default=1.5,
                        help="seconds after a roam in which the probes should be back")
    parser.add_argument("--max-wait", type=float, default=10.0,
                        help="seconds to wait for the probes after a roam, at most")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="seconds of quiet after the probes are back and Babel has moved")
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--babel", action="append", default=[],
                        help="a babeld statement for every router (after the rig's defaults)")
    parser.add_argument("--sroamd-arg", action="append", default=[],
                        help="a command-line option for every sroamd")
    parser.add_argument("--star", action="store_true",
                        help="topology: the server and each AP on a link of their own to a core "
                             "router, not all on one backbone link")
    parser.add_argument("--trace", action="store_true",
                        help="print every babeld monitor event about the client's routes")
    parser.add_argument("--label", default="", help="a name for this run, echoed in the JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/roam.py needs root (network namespaces)")

    results = []
    load_before = loadavg()
    with Rig(debug=1, babel=args.babel, sroamd_args=args.sroamd_arg, star=args.star) as rig:
        client = rig.add_client("c1")
        v4, v6 = rig.wait_addresses(client)
        prefix = client.prefix64()
        host = f"{v4}/32"
        wait_for(lambda: rig.ping(rig.server, v4, timeout=0.5), timeout=20, what="server reaches client")
        monitors = rig.babel_monitors()
        next_hop = {ap.name: rig.backbone_link_local(ap) for ap in rig.aps}
        tcp, tcp_out = rig.start_tcp_stream(client)
        probes_out = rig.start_udp_probe(client, interval_ms=args.interval_ms)
        time.sleep(1)
        pids = {f"sroamd-{ap.name}": ap.sroamd.pid for ap in rig.aps}
        pids.update({f"babeld-{ap.name}": ap.babeld.pid for ap in rig.aps})
        pids["babeld-srv"] = rig.server_babeld.pid
        if rig.core is not None:
            pids["babeld-core"] = rig.core_babeld.pid
        cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        run_start = time.monotonic()
        order = rig.aps[1:] + rig.aps[:1]
        # The router whose switch ends Babel's part: the server, or in a star
        # the core router (the server's route always points at it).
        switch = "core" if args.star else "srv"
        for n in range(args.roams):
            target = order[n % len(order)]
            old = client.at
            third = next(ap for ap in rig.aps if ap is not old and ap is not target)
            log_mark = len(rig.sroamd_log(target))
            record = {"n": n + 1, "from": old.name, "to": target.name}
            try:
                moved, connected = rig.roam(client, target)
            except Exception as e:  # counted, and the run goes on
                record["failed"] = f"{type(e).__name__}: {e}"
                results.append(record)
                print(f"roam {n + 1:2d} -> {target.name}: FAILED {record['failed']}", file=sys.stderr)
                time.sleep(args.window)
                continue
            # Wait for the probes (and the server's route) to come back.
            new_hop = next_hop[target.name]
            outage = back = None
            while True:
                now = time.monotonic()
                outage, back = outage_after(read_probes(probes_out), moved, args.interval_ms)
                srv_moved = first_via(monitors[switch].since(moved), host, new_hop)
                if outage is not None and now - back > 0.1 and srv_moved is not None \
                        and now >= moved + 0.2:
                    break
                if now > moved + args.max_wait:
                    break
                time.sleep(0.05)
            never_back = outage is None
            if never_back:
                outage = args.max_wait * 1000
            time.sleep(args.settle)
            events = {name: m.since(moved) for name, m in monitors.items()}

            def ms(t):
                return None if t is None else round((t - moved) * 1000, 1)

            routers = {
                "new+": ms(first_xroute(events[target.name], host, "add")),
                "old-": ms(first_xroute(events[old.name], host, "flush")),
                "old": ms(first_via(events[old.name], host, new_hop)),
                "other": ms(first_via(events[third.name], host, new_hop)),
                "srv": ms(first_via(events[switch], host, new_hop)),
            }
            routers6 = {"srv6": ms(first_via(events[switch], prefix, new_hop)),
                        "old6-": ms(first_xroute(events[old.name], prefix, "flush"))}
            sroamd_ms = handled_ms(rig.sroamd_log(target), client.mac, log_mark)
            auth = (connected - moved) * 1000
            babel = None
            if routers["srv"] is not None:
                babel = round(max(0.0, routers["srv"] - auth - (sroamd_ms or 0)), 1)
            kept = (client.ipv4(), client.prefix64()) == (v4, prefix)
            record.update({"outage_ms": round(outage, 1), "over_window": outage >= args.window * 1000,
                           "never_back": never_back, "auth_ms": round(auth, 1),
                           "sroamd_ms": sroamd_ms, "babel_ms": babel, "routers": routers,
                           "routers6": routers6, "kept": kept})
            results.append(record)
            if args.trace:
                for name, evs in events.items():
                    for e in evs:
                        if same_prefix(e.prefix, host) or same_prefix(e.prefix, prefix):
                            hop = next((a for a, h in next_hop.items() if h == e.via), e.via)
                            print(f"    {ms(e.at):7.1f} {name:4s} {e.op} {e.kind} {e.prefix} "
                                  f"installed {e.installed} metric {e.metric} via {hop}",
                                  file=sys.stderr)
            print(f"roam {n + 1:2d} {old.name}->{target.name}: outage {outage:6.1f} ms = auth "
                  f"{auth:5.1f} + sroamd {sroamd_ms} + babel {babel}; routers (ms) "
                  + " ".join(f"{k} {v}" for k, v in {**routers, **routers6}.items())
                  + ("" if kept else "; ADDRESSES CHANGED")
                  + (" OVER WINDOW" if record["over_window"] else ""), file=sys.stderr)
        elapsed = time.monotonic() - run_start
        cpu = {name: cpu_seconds(pid) - cpu_start[name] for name, pid in pids.items()}
        count = tcp_count(tcp_out)
        time.sleep(0.5)
        tcp_survived = tcp.alive() and count > 0 and tcp_count(tcp_out) > count

    done = [r for r in results if "failed" not in r]
    outages = [r["outage_ms"] for r in done]

    def stat(values, digits=1):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        return round(percentile(values, 50), digits), round(percentile(values, 95), digits)

    summary = {
        "label": args.label,
        "topology": "star" if args.star else "one backbone link",
        "babel": rig.babel,
        "sroamd_args": args.sroamd_arg,
        "roams": len(results),
        "failed": len(results) - len(done),
        "addr_kept": sum(r["kept"] for r in done),
        "tcp_survived": tcp_survived,
        "over_window": sum(r["over_window"] for r in done),
        "never_back": sum(r["never_back"] for r in done),
        "outage_p50_ms": stat(outages)[0],
        "outage_p95_ms": stat(outages)[1],
        "outage_max_ms": round(max(outages), 1) if outages else None,
        "over_250_ms": sum(o > 250 for o in outages),
        "over_500_ms": sum(o > 500 for o in outages),
        "auth_p50_ms": stat(r["auth_ms"] for r in done)[0],
        "sroamd_p50_ms": stat((r["sroamd_ms"] for r in done), 3)[0],
        "sroamd_p95_ms": stat((r["sroamd_ms"] for r in done), 3)[1],
        "babel_p50_ms": stat(r["babel_ms"] for r in done)[0],
        "babel_p95_ms": stat(r["babel_ms"] for r in done)[1],
        "routers_p50_ms": {k: stat(r["routers"][k] for r in done)[0]
                           for k in ("new+", "old-", "old", "other", "srv")},
        "routers_p95_ms": {k: stat(r["routers"][k] for r in done)[1]
                           for k in ("new+", "old-", "old", "other", "srv")},
        "srv6_p50_ms": stat(r["routers6"]["srv6"] for r in done)[0],
        "sroamd_cpu_ms_per_roam": round(sum(v for k, v in cpu.items() if k.startswith("sroamd"))
                                        * 1000 / max(1, len(done)), 2),
        "babeld_cpu_ms_per_s": {k.removeprefix("babeld-"): round(v * 1000 / elapsed, 2)
                                for k, v in cpu.items() if k.startswith("babeld")},
        "load_before": load_before,
        "load_after": loadavg(),
        # each roam: outage, 802.1X, sroamd, Babel (ms) and the routers' switch times
        "per_roam": [{k: r.get(k) for k in ("n", "from", "to", "outage_ms", "auth_ms", "sroamd_ms",
                                            "babel_ms", "routers", "failed")} for r in results],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
