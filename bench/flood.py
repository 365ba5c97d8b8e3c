#!/usr/bin/env python3
"""Flooding benchmark: real sroamd processes on loopback.

  chain20_p50_ms / chain20_p99_ms  one update across a chain of 20 daemons
                                   (test peer -> node 0 -> ... -> node 19 ->
                                   test peer), sent one at a time
  burst10k_chain20_s               a burst of 10,000 updates written at once
                                   into the head of a chain of 20 daemons; a
                                   new peer connects to the head as soon as
                                   the burst is written: time from the
                                   burst's first byte until that peer holds
                                   all 10,000 (the head's dump and what it
                                   relays meanwhile)
  burst10k_tail_s                  the same burst: until a peer of the tail
                                   (node 19) holds them all
  cpu_us_per_update                CPU (user + system, /proc) of the 20
                                   daemons during the burst, per datum per
                                   daemon (the head also dumps to the new peer)
  dump10k_s                        a new peer connects to a daemon holding
                                   10,000 leases: time until it has them all
  rss10k_mb                        resident memory of that daemon
  bytes_per_datum                  that daemon's RSS growth per datum while it
                                   takes --extra more data (past the first
                                   10,000, so allocator warm-up is left out);
                                   the daemon serves no clients (a relay)
  store_bytes_per_lease,           in process: the bytes the Store allocates
  store_bytes_per_lease_indexed    (tracemalloc) per lease received, without
                                   and with its MAC index (made on a node that
                                   serves clients, at its first lookup), one
                                   client per lease (no MAC shared)
  full_gc_ms_50k                   a full garbage collection (gc.collect())
                                   with that store of --extra leases, indexed,
                                   alive: the pause sroamd's collector makes
                                   once a minute (sroamd/collector.py)

--quota PERCENT runs the burst again with every daemon confined to PERCENT
of one core (cgroup v1 cpu.cfs_quota_us, one group per daemon: each is an
access point): burst10k_chain20_s_ap, burst10k_tail_s_ap.  An AP's CPU is
10 to 20 times slower than this machine; 5 % of a core is the slow end.

A burst run that fails (a timeout, a daemon gone) is recorded as a bad
sample and the next one runs; figures are medians of the good samples.  The
JSON on the last line says how many samples were bad; the exit status is 1
when a figure has no good sample at all (a partial run).

Usage: python3 bench/flood.py [--updates N] [--chain N] [--burst N]
                              [--samples N] [--quota PERCENT]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from floodpeer import FloodPeer, Node, free_port  # noqa: E402
from procstat import CpuQuota, cpu_seconds, loadavg, rss_kb  # noqa: E402
from sroamd.store import ipv4_lease_key  # noqa: E402
from sroamd.wire.flood import Update  # noqa: E402

try:
    from sroamd.wire.flood import build_updates  # noqa: E402
except ImportError:  # a tree from before issue 11 (to measure it side by side)
    from sroamd.wire.flood import build_update  # noqa: E402

    def build_updates(updates):
        return b"".join(build_update(u) for u in updates)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_chain(length: int, quota: float | None, groups: list) -> list:
    """length daemons, each connected to the one before; with quota, each in
    a cgroup of its own limited to quota % of a core."""
    nodes = []
    for _ in range(length):
        node = Node(free_port(), [nodes[-1].port] if nodes else [], debug=0)
        nodes.append(node)
        if quota:
            group = CpuQuota(quota, "flood")
            groups.append(group)
            group.add(node.proc.pid)
    return nodes


def wait_connected(nodes, timeout: float) -> FloodPeer:
    """A peer of the tail that sees a probe sent into the head."""
    source, sink = FloodPeer(nodes[0].port), FloodPeer(nodes[-1].port)
    probe = Update(ipv4_lease_key(bytes([198, 51, 100, 1])), 0, b"\x02" * 6, 600)
    source.send(probe)
    if not sink.wait_for(lambda p: p.has(probe.key), timeout=timeout):
        raise RuntimeError("chain did not connect")
    source.close()
    return sink


def chain_latency(length: int, updates: int) -> list[float]:
    nodes = []
    try:
        nodes = start_chain(length, None, [])
        source = FloodPeer(nodes[0].port)
        sink = wait_connected(nodes, 60)
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


def burst_updates(count: int, salt: int) -> list[Update]:
    return [Update(ipv4_lease_key((0x0A000000 + n).to_bytes(4, "big")), salt,
                   (0x020000000000 + n).to_bytes(6, "big"), 1800) for n in range(count)]


def wait_all(peers: dict, keys: set, timeout: float) -> dict:
    """Poll the peers (name -> FloodPeer) until each holds every key; the time
    at which each did (perf_counter), None for those that did not."""
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(peers) and time.monotonic() < deadline:
        for name, peer in peers.items():
            if name in done:
                continue
            peer.poll(0.002)
            if peer.closed:
                done[name] = None
            elif len(peer.data) >= len(keys) and keys <= peer.data.keys():
                done[name] = time.perf_counter()
    return done


def burst(length: int, count: int, quota: float | None, timeout: float) -> dict:
    """One burst sample (see the module doc)."""
    nodes, groups = [], []
    try:
        nodes = start_chain(length, quota, groups)
        tail = wait_connected(nodes, 120 if quota else 60)
        feeder = FloodPeer(nodes[0].port)
        updates = burst_updates(count, 1)
        keys = {u.key for u in updates}
        raw = build_updates(updates)
        time.sleep(0.5)  # let the chain settle (the probe's relays, dumps)
        cpu_before = [cpu_seconds(n.proc.pid) for n in nodes]
        load = loadavg()
        start = time.perf_counter()
        feeder.send_raw(raw)
        fresh = FloodPeer(nodes[0].port)
        done = wait_all({"head": fresh, "tail": tail}, keys, timeout)
        # The CPU of the burst: until the daemons are quiet again.
        time.sleep(0.3)
        cpu_after = [cpu_seconds(n.proc.pid) for n in nodes]
        for name in ("head", "tail"):
            if done.get(name) is None:
                peer = fresh if name == "head" else tail
                raise RuntimeError(f"{name}: {len(keys & peer.data.keys())} of {count} "
                                   f"within {timeout} s")
        cpu = sum(after - before for before, after in zip(cpu_before, cpu_after))
        throttled = [g.throttled() for g in groups]
        return {"head_s": done["head"] - start, "tail_s": done["tail"] - start,
                "cpu_s": cpu, "cpu_us_per_update": cpu / (count * length) * 1e6,
                "load_before": load,
                "throttled_periods": sum(t.get("nr_throttled", 0) for t in throttled)}
    finally:
        for node in nodes:
            node.kill()
        for group in groups:
            group.remove()


def dump_and_memory(count: int, extra: int) -> dict:
    node = Node(free_port(), [], debug=0)
    try:
        feeder = FloodPeer(node.port)
        feeder.send_raw(build_updates(burst_updates(count, 0)))
        check = FloodPeer(node.port)
        if not check.wait_for(lambda p: len(p.data) >= count, timeout=60):
            raise RuntimeError(f"node holds only {len(check.data)} of {count} leases")
        check.close()
        start = time.perf_counter()
        fresh = FloodPeer(node.port)
        if not fresh.wait_for(lambda p: len(p.data) >= count, timeout=30):
            raise RuntimeError("dump incomplete")
        dump_s = time.perf_counter() - start
        fresh.close()
        rss10k = rss_kb(node.proc.pid)
        # Memory per datum: extra more data (other keys), RSS growth.
        more = [Update(ipv4_lease_key((0x0B000000 + n).to_bytes(4, "big")), 0,
                       (0x040000000000 + n).to_bytes(6, "big"), 1800) for n in range(extra)]
        for i in range(0, extra, 10000):
            feeder.send_raw(build_updates(more[i:i + 10000]))
        check = FloodPeer(node.port)
        if not check.wait_for(lambda p: len(p.data) >= count + extra, timeout=120):
            raise RuntimeError(f"node holds only {len(check.data)} of {count + extra} data")
        check.close()
        time.sleep(0.5)
        rss_more = rss_kb(node.proc.pid)
        return {"dump_s": dump_s, "rss10k_mb": rss10k / 1024,
                "bytes_per_datum": (rss_more - rss10k) * 1024 / extra}
    finally:
        node.kill()


def store_memory(count: int) -> dict:
    """The Store's own allocations per lease (see the module doc)."""
    import gc
    import tracemalloc
    from sroamd.store import IPV4_LEASE, Store
    from sroamd.wire.flood import parse_stream
    raw = build_updates([Update(ipv4_lease_key((0x0C000000 + n).to_bytes(4, "big")), 0,
                                (0x060000000000 + n).to_bytes(6, "big"), 1800)
                         for n in range(count)])
    result = {}
    for indexed in (False, True):
        gc.collect()
        tracemalloc.start()
        store = Store()
        if indexed:
            store.lease_of(b"\0" * 6, IPV4_LEASE)  # (what a node serving clients does)
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(raw), 65536 // 20 * 20):  # (whole TLVs of 20 bytes)
            for update in parse_stream(raw[start:start + 65536 // 20 * 20])[0]:
                store.receive(update.key, update.seqno, update.value, update.time)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        if indexed:
            start = time.perf_counter()
            gc.collect()
            result["full_gc_ms"] = (time.perf_counter() - start) * 1000
        if len(store) != count:
            raise RuntimeError(f"the store holds {len(store)} of {count}")
        result["indexed" if indexed else "plain"] = grown / count
        del store
    return result


def sampled(what: str, samples: int, fn, bad: list) -> list:
    good = []
    for i in range(samples):
        try:
            good.append(fn())
            shown = good[-1] if isinstance(good[-1], dict) else f"{len(good[-1])} values"
            print(f"{what} sample {i}: {shown}", file=sys.stderr)
        except Exception as e:  # recorded, counted; the next sample runs
            bad.append({"what": what, "sample": i, "error": f"{type(e).__name__}: {e}"})
            print(f"{what} sample {i}: BAD: {e}", file=sys.stderr)
    return good


def median_of(samples: list, key: str, digits: int = 3):
    if not samples:
        return None
    return round(statistics.median(s[key] for s in samples), digits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--chain", type=int, default=20)
    parser.add_argument("--leases", type=int, default=10000)
    parser.add_argument("--burst", type=int, default=10000)
    parser.add_argument("--extra", type=int, default=50000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--quota", type=float, default=0.0,
                        help="also run the burst with each daemon at this %% of a core")
    args = parser.parse_args()

    bad: list = []
    load_start = loadavg()
    latency = sampled("chain latency", 1, lambda: chain_latency(args.chain, args.updates), bad)
    bursts = sampled("burst", args.samples,
                     lambda: burst(args.chain, args.burst, None, 60), bad)
    memory = sampled("dump and memory", 1, lambda: dump_and_memory(args.leases, args.extra), bad)
    in_process = sampled("store memory", 1, lambda: store_memory(args.extra), bad)
    ap = []
    if args.quota:
        ap = sampled(f"burst at {args.quota} % of a core", 1,
                     lambda: burst(args.chain, args.burst, args.quota, 900), bad)
    result = {
        "chain20_p50_ms": round(percentile(latency[0], 50), 3) if latency else None,
        "chain20_p99_ms": round(percentile(latency[0], 99), 3) if latency else None,
        "updates": len(latency[0]) if latency else 0,
        "burst10k_chain20_s": median_of(bursts, "head_s"),
        "burst10k_tail_s": median_of(bursts, "tail_s"),
        "cpu_us_per_update": median_of(bursts, "cpu_us_per_update", 2),
        "burst_samples": [{k: round(v, 3) for k, v in s.items()} for s in bursts],
        "dump10k_s": median_of(memory, "dump_s", 4),
        "rss10k_mb": median_of(memory, "rss10k_mb", 2),
        "bytes_per_datum": median_of(memory, "bytes_per_datum", 0),
        "store_bytes_per_lease": median_of(in_process, "plain", 0),
        "store_bytes_per_lease_indexed": median_of(in_process, "indexed", 0),
        "full_gc_ms_50k": median_of(in_process, "full_gc_ms", 1),
        "burst": args.burst, "chain": args.chain,
        "loadavg_start": load_start, "loadavg_end": loadavg(),
        "bad_samples": len(bad), "bad": bad,
    }
    if args.quota:
        result.update({
            "quota_percent": args.quota,
            "burst10k_chain20_s_ap": median_of(ap, "head_s"),
            "burst10k_tail_s_ap": median_of(ap, "tail_s"),
            "cpu_us_per_update_ap": median_of(ap, "cpu_us_per_update", 2),
        })
    wanted = ["chain20_p50_ms", "burst10k_chain20_s", "dump10k_s", "bytes_per_datum"]
    if args.quota:
        wanted.append("burst10k_chain20_s_ap")
    result["complete"] = all(result[k] is not None for k in wanted)
    print(json.dumps(result))
    if not result["complete"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
