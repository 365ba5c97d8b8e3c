#!/usr/bin/env python3
"""Address allocation benchmark: sroamd.leases on a /16, in-process.

CPU time (time.process_time) of one Leases.ipv4_lease() for a client that
has no lease yet (what a DISCOVER from a new client costs the leases layer,
the store update and its listeners included), median and p99 in
microseconds, for

  empty_us     an empty 10.0.0.0/16 (each client's address stays taken)
  ten_free_us  the same /16 with 10 free addresses (each new lease is
               released again, untimed, so 10 stay free)
  full_us      a full /16 (the answer is "none free")
  ipv6_full_us a full 2001:db8::/48 (65,535 /64s; the first is never given)

and the memory of the bitmaps.  A sample that fails is counted in "errors"
and left out; the benchmark goes on.

Prints progress, then one JSON object on its last line.
Usage: python3 bench/alloc.py [--ops N]
"""

import argparse
import ipaddress
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sroamd.config import Config  # noqa: E402
from sroamd.leases import OFFER_TIME, Leases  # noqa: E402
from sroamd.store import Store, ipv4_lease_key, ipv6_lease_key  # noqa: E402

V4 = ipaddress.ip_network("10.0.0.0/16")
V6 = ipaddress.ip_network("2001:db8::/48")
errors = 0


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def make() -> tuple[Store, Leases]:
    store = Store()
    config = Config(ipv4_prefix=V4, ipv6_prefix=V6, gateway=ipaddress.ip_address("10.0.0.1"))
    return store, Leases(store, config, random.Random(1))


def mac(n: int) -> bytes:
    return (0x020000000000 + n).to_bytes(6, "big")


def fill_v4(store: Store, leave_free: int) -> list[bytes]:
    """Lease every usable address but leave_free of them; returns those."""
    first, last = int(V4.network_address) + 2, int(V4.broadcast_address) - 1
    free = set(random.Random(2).sample(range(first, last + 1), leave_free))
    for value in range(first, last + 1):
        if value not in free:
            store.put(ipv4_lease_key(value.to_bytes(4, "big")), mac(value), 3600)
    return [v.to_bytes(4, "big") for v in sorted(free)]


def timed(fn, ops: int, undo=None) -> list[float]:
    """CPU microseconds of each fn(i) (undo(i, result) after it, untimed)."""
    global errors
    samples = []
    for i in range(ops):
        try:
            start = time.process_time()
            result = fn(i)
            samples.append((time.process_time() - start) * 1e6)
            if undo is not None:
                undo(i, result)
        except Exception as e:  # a bad sample never ends the benchmark
            errors += 1
            print(f"sample {i}: {e!r}", file=sys.stderr)
    return samples


def summary(name: str, samples: list[float]) -> dict:
    if not samples:
        return {f"{name}_p50_us": None, f"{name}_p99_us": None}
    out = {f"{name}_p50_us": round(statistics.median(samples), 1),
           f"{name}_p99_us": round(percentile(samples, 99), 1)}
    print(f"{name}: p50 {out[name + '_p50_us']} us, p99 {out[name + '_p99_us']} us "
          f"({len(samples)} ops)", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    ops = parser.parse_args().ops
    result: dict = {"ops": ops}

    store, leases = make()
    samples = timed(lambda i: leases.ipv4_lease(mac(1_000_000 + i), None, OFFER_TIME), ops)
    result.update(summary("empty", samples))

    store, leases = make()
    free = fill_v4(store, 10)

    def release(i, datum):
        leases.release_ipv4(datum.value, datum.key[1:])
    samples = timed(lambda i: leases.ipv4_lease(mac(2_000_000 + i), None, OFFER_TIME), ops,
                    undo=release)
    result.update(summary("ten_free", samples))
    result["ten_free_all_found"] = leases.v4.free == 10 and len(free) == 10

    store, leases = make()
    fill_v4(store, 0)
    samples = timed(lambda i: leases.ipv4_lease(mac(3_000_000 + i), None, OFFER_TIME), ops)
    result.update(summary("full", samples))
    result["full_answered_none"] = leases.ipv4_lease(mac(4_000_000), None, 10) is None

    store, leases = make()
    base = int(V6.network_address) >> 64
    for n in range(1, 1 << 16):
        store.put(ipv6_lease_key((base | n).to_bytes(8, "big")), mac(n), 3600)
    samples = timed(lambda i: leases.ipv6_lease(mac(5_000_000 + i)), ops)
    result.update(summary("ipv6_full", samples))

    result["bitmap_bytes_per_16"] = len(leases.v4.bitmap.bits) + len(leases.v4.bitmap.full)
    result["errors"] = errors
    print(json.dumps(result))


if __name__ == "__main__":
    main()
