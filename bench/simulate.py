#!/usr/bin/env python3
"""The flooding simulation (tests/simnet.py) over many random schedules.

Runs schedules seed START .. START+N-1 (each a random topology of 3-12
nodes, delays up to 2 s per hop, resets, partitions, restarts, roams and DHCP
exchanges; see tests/simnet.py) against the real store, flooding, roaming
and lease code, and checks the invariants after each.  Prints the failing
seeds as it goes, then one JSON object on its last line:

  schedules, failed, failures          {invariant: {count, seeds (first 20)}}
  wall_s, schedules_per_s, simulated_s (total simulated time)
  messages_per_schedule, updates_per_schedule   mean / p50 / p99 / max
  convergence_s   time from the heal to the last message, over the
                  schedules that went quiet: p50 / p90 / p99 / max
  lost_messages_per_schedule           in flight when a connection broke
  concurrent_kicks  stations kicked from their AP after concurrent claims
                    (counted, not failed: see tests/simnet.py)
  lost_with_crashes  acknowledged writes every holder of which crashed
                    before another learned them (counted, not failed)

Usage: python3 bench/simulate.py [--schedules N] [--start S] [--jobs J]
                                 [--code DIR]   (DIR holds the sroamd package
                                                 to test, e.g. an old checkout)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values):
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 1), "p50": percentile(values, 50),
            "p99": percentile(values, 99), "max": max(values)}


def run_range(bounds):
    import simnet
    start, stop = bounds
    out = []
    for seed in range(start, stop):
        r = simnet.run_schedule(seed)
        out.append((seed, sorted(r.failures), r.messages, r.updates, r.lost_messages,
                    r.simulated, r.converged_after, getattr(r, "concurrent_kicks", 0),
                    getattr(r, "lost_with_crashes", 0)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--code", help="directory holding the sroamd package to test")
    args = parser.parse_args()
    code = os.path.abspath(args.code) if args.code else ROOT
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    sys.path.insert(0, code)
    import sroamd
    import simnet  # noqa: F401  (imported before the workers fork)
    commit = None
    try:
        commit = subprocess.run(["git", "-C", code, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    print(f"sroamd from {os.path.dirname(sroamd.__file__)} ({commit or 'not a git checkout'})",
          flush=True)

    step = 50
    ranges = [(s, min(s + step, args.start + args.schedules))
              for s in range(args.start, args.start + args.schedules, step)]
    started = time.perf_counter()
    rows = []
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            batches = pool.imap(run_range, ranges)
            for batch in batches:
                rows.extend(batch)
                report(batch, len(rows), args.schedules)
    else:
        for bounds in ranges:
            batch = run_range(bounds)
            rows.extend(batch)
            report(batch, len(rows), args.schedules)
    wall = time.perf_counter() - started

    failures = {}
    for seed, failed, *_ in rows:
        for name in failed:
            entry = failures.setdefault(name, {"count": 0, "seeds": []})
            entry["count"] += 1
            if len(entry["seeds"]) < 20:
                entry["seeds"].append(seed)
    converged = [row[6] for row in rows if row[6] is not None]
    result = {
        "code": code, "commit": commit,
        "schedules": len(rows), "failed": sum(1 for row in rows if row[1]),
        "failures": dict(sorted(failures.items())),
        "wall_s": round(wall, 2), "schedules_per_s": round(len(rows) / wall, 1),
        "simulated_s": round(sum(row[5] for row in rows), 1),
        "messages_per_schedule": spread([row[2] for row in rows]),
        "updates_per_schedule": spread([row[3] for row in rows]),
        "lost_messages_per_schedule": round(statistics.fmean(row[4] for row in rows), 2),
        "concurrent_kicks": sum(row[7] for row in rows),
        "lost_with_crashes": sum(row[8] for row in rows),
        "convergence_s": {"n": len(converged),
                          **{f"p{p}": round(percentile(converged, p), 2) for p in (50, 90, 99)},
                          "max": round(max(converged), 2)} if converged else None,
    }
    print(json.dumps(result))
    return 0


def report(batch, done, total):
    for seed, failed, *_ in batch:
        if failed:
            print(f"seed {seed}: {', '.join(failed)}", flush=True)
    if done % 1000 == 0 or done == total:
        print(f"{done}/{total} schedules", flush=True)


if __name__ == "__main__":
    sys.exit(main())
