#!/usr/bin/env python3
"""Flooding benchmark: real sroamd processes on loopback.

  chain20_p50_ms / chain20_p99_ms  one update across a chain of 20 daemons
                                   (test peer -> node 0 -> ... -> node 19 ->
                                   test peer), sent one at a time
  dump10k_s                        a new peer connects to a daemon holding
                                   10,000 leases: time until it has them all
  rss10k_mb                        resident memory of that daemon

Prints progress, then one JSON object on its last line.
Usage: python3 bench/flood.py [--updates N] [--chain N]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from floodpeer import FloodPeer, Node, free_port  # noqa: E402
from sroamd.store import ipv4_lease_key  # noqa: E402
from sroamd.wire.flood import Update  # noqa: E402


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def chain_latency(length: int, updates: int) -> list[float]:
    nodes = []
    try:
        for i in range(length):
            nodes.append(Node(free_port(), [nodes[-1].port] if nodes else [], debug=0))
        source, sink = FloodPeer(nodes[0].port), FloodPeer(nodes[-1].port)
        # Wait until the chain is connected end to end.
        probe = Update(ipv4_lease_key(bytes([198, 51, 100, 1])), 0, b"\x02" * 6, 600)
        source.send(probe)
        if not sink.wait_for(lambda p: p.has(probe.key), timeout=60):
            raise RuntimeError("chain did not connect")
        latencies = []
        for n in range(updates):
            key = ipv4_lease_key((0xC6336400 + 2 + n % 250).to_bytes(4, "big"))
            update = Update(key, (n // 250 + 1) & 0xFFFF, n.to_bytes(6, "big"), 600)
            start = time.perf_counter()
            source.send(update)
            if not sink.wait_for(lambda p: p.has(key, update.value), timeout=10):
                raise RuntimeError(f"update {n} lost")
            latencies.append((time.perf_counter() - start) * 1000)
        return latencies
    finally:
        for node in nodes:
            node.kill()


def dump_and_memory(count: int) -> tuple[float, float]:
    node = Node(free_port(), [], debug=0)
    try:
        feeder = FloodPeer(node.port)
        batch = []
        for n in range(count):
            key = ipv4_lease_key((0x0A000000 + n).to_bytes(4, "big"))
            batch.append(Update(key, 0, (0x020000000000 + n).to_bytes(6, "big"), 1800))
            if len(batch) == 500:
                feeder.send(*batch)
                batch = []
        if batch:
            feeder.send(*batch)
        check = FloodPeer(node.port)
        if not check.wait_for(lambda p: len(p.data) >= count, timeout=60):
            raise RuntimeError(f"node holds only {len(check.data)} of {count} leases")
        check.close()
        start = time.perf_counter()
        fresh = FloodPeer(node.port)
        if not fresh.wait_for(lambda p: len(p.data) >= count, timeout=30):
            raise RuntimeError("dump incomplete")
        dump_s = time.perf_counter() - start
        return dump_s, rss_mb(node.proc.pid)
    finally:
        node.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--chain", type=int, default=20)
    parser.add_argument("--leases", type=int, default=10000)
    args = parser.parse_args()

    latencies = chain_latency(args.chain, args.updates)
    print(f"chain of {args.chain}: {len(latencies)} updates, "
          f"p50 {statistics.median(latencies):.2f} ms, max {max(latencies):.2f} ms", file=sys.stderr)
    dump_s, rss = dump_and_memory(args.leases)
    print(f"dump of {args.leases} leases: {dump_s:.3f} s; daemon RSS {rss:.1f} MB", file=sys.stderr)
    print(json.dumps({
        "chain20_p50_ms": round(percentile(latencies, 50), 3),
        "chain20_p99_ms": round(percentile(latencies, 99), 3),
        "updates": len(latencies),
        "dump10k_s": round(dump_s, 4),
        "rss10k_mb": round(rss, 2),
    }))


if __name__ == "__main__":
    main()
