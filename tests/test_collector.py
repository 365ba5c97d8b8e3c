"""sroamd.collector: full garbage collections on a timer, not on the heuristic.

Each case runs in a fresh interpreter (freezing and thresholds are
process-wide: they must not leak into the other tests)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = r"""
import asyncio, gc, json, sys
from sroamd import collector

full = []
gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2
                    and full.append(1))
if sys.argv[1] == "tuned":
    collector.freeze_startup()
full.clear()
# Thousands of clients arriving: long-lived containers, well past the
# quarter of growth that makes CPython start full collections.
kept = [{"client": i, "leases": [i]} for i in range(300000)]
out = {"heuristic_full": len(full), "threshold2": gc.get_threshold()[2],
       "frozen": gc.get_freeze_count() > 0}


async def timer():
    task = asyncio.get_running_loop().create_task(collector.collect_periodically(0.05))
    await asyncio.sleep(0.2)
    task.cancel()

before = len(full)
asyncio.run(timer())
out["timer_full"] = len(full) - before
print(json.dumps(out))
"""


def run(mode: str) -> dict:
    cp = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                        timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert cp.returncode == 0, cp.stderr[-2000:]
    return json.loads(cp.stdout.strip().splitlines()[-1])


def test_full_collections_come_from_the_timer_only():
    untuned, tuned = run("untuned"), run("tuned")
    assert untuned["heuristic_full"] >= 1  # (what happens without: the control)
    assert tuned["heuristic_full"] == 0 and tuned["frozen"]
    assert tuned["threshold2"] == 1 << 30
    assert tuned["timer_full"] >= 2
